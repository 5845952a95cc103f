package io.tuneline.registry.jobs;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.tuneline.proto.v1.JobStatus;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.registry.Fixtures;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.S3ProxyResource;
import jakarta.inject.Inject;
import java.time.Duration;
import java.time.Instant;
import org.junit.jupiter.api.Test;

/** Jobs that went quiet are failed with the reason; jobs still reporting are left alone. */
@QuarkusTest
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class StalledJobWatchdogTest {
    @Inject JobReadModel readModel;
    @Inject StalledJobWatchdog watchdog;

    private void reach(String jobId, JobStatus status, String message, Instant at) {
        readModel.apply(
                Fixtures.incoming(
                        JobStatusChanged.newBuilder()
                                .setJobId(jobId)
                                .setStatus(status)
                                .setMessage(message)
                                .build(),
                        at,
                        null));
    }

    @Test
    void aJobSilentForLongerThanItsStageLimitFailsWithTheReasonAndOthersAreLeftAlone() {
        Instant t0 = Instant.now();
        readModel.apply(Fixtures.incoming(Fixtures.job("stalled-1", "stalled", 1e-3), t0, null));
        reach("stalled-1", JobStatus.JOB_STATUS_EVALUATING, "evaluating", t0.plusSeconds(1));
        readModel.apply(Fixtures.incoming(Fixtures.job("busy-1", "busy", 1e-3), t0, null));
        reach("busy-1", JobStatus.JOB_STATUS_TRAINING, "training, step 9", t0.plusSeconds(1));

        // Evaluation's limit is 6 h and training's 24 h (the defaults): at t0 + 7 h only the
        // evaluating job is stalled.
        Instant later = t0.plus(Duration.ofHours(7)).plusSeconds(30);
        assertThat(watchdog.check(later)).contains("stalled-1").doesNotContain("busy-1");
        // Reported once, not on every pass.
        assertThat(watchdog.check(later)).doesNotContain("stalled-1");

        await().atMost(Duration.ofSeconds(30))
                .until(() -> readModel.find("stalled-1").orElseThrow().status().equals("FAILED"));
        JobView failed = readModel.find("stalled-1").orElseThrow();
        assertThat(failed.failure().code()).isEqualTo(StalledJobWatchdog.ERROR_STAGE_STALLED);
        assertThat(failed.failure().stage()).isEqualTo("EVALUATION");
        assertThat(failed.failure().reason())
                .startsWith("no progress for 7h00m while evaluating (limit 6h00m")
                .contains("the evaluation service's log for job stalled-1");
        assertThat(readModel.find("busy-1").orElseThrow().status()).isEqualTo("TRAINING");
    }
}
