package io.tuneline.registry.jobs;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.Message;
import com.google.protobuf.util.Timestamps;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.CancelJob;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.JobStatus;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.proto.v1.ModelRegistered;
import io.tuneline.proto.v1.Stage;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.proto.v1.TrainingProgress;
import io.tuneline.registry.Fixtures;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.S3ProxyResource;
import jakarta.inject.Inject;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

@QuarkusTest
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class JobReadModelTest {
    private static final Instant T0 = Instant.parse("2026-11-24T10:00:00Z");

    @Inject JobReadModel readModel;

    /** One job's events, in the order the pipeline produces them, one second apart. */
    private record Timed(Message payload, Instant at, String id) {}

    private static List<Timed> successfulRun(String jobId) {
        List<Message> events = new ArrayList<>();
        events.add(
                Fixtures.job(jobId, "sentiment", 1e-3).toBuilder().setDisplayName("run").build());
        events.add(status(jobId, JobStatus.JOB_STATUS_INGESTING, "ingesting"));
        events.add(
                DatasetIngested.newBuilder()
                        .setJobId(jobId)
                        .setRaw(ArtifactRef.newBuilder().setSha256("f".repeat(64)))
                        .setValidRecords(72)
                        .build());
        events.add(status(jobId, JobStatus.JOB_STATUS_PREPROCESSING, "preprocessing"));
        events.add(DatasetPrepared.newBuilder().setJobId(jobId).build());
        events.add(status(jobId, JobStatus.JOB_STATUS_TRAINING, "training"));
        for (int step = 1; step <= 5; step++) {
            events.add(
                    TrainingProgress.newBuilder()
                            .setJobId(jobId)
                            .setStep(step * 10)
                            .setTotalSteps(50)
                            .setLoss(1.0 / step)
                            .setEtaSeconds(50 - step * 10)
                            .build());
        }
        events.add(TrainingCompleted.newBuilder().setJobId(jobId).build());
        events.add(status(jobId, JobStatus.JOB_STATUS_EVALUATING, "evaluating"));
        events.add(status(jobId, JobStatus.JOB_STATUS_REGISTERING, "registering"));
        events.add(
                ModelRegistered.newBuilder()
                        .setJobId(jobId)
                        .setModelName("sentiment")
                        .setVersion(3)
                        .build());
        events.add(status(jobId, JobStatus.JOB_STATUS_SUCCEEDED, "registered sentiment version 3"));
        List<Timed> timed = new ArrayList<>();
        for (int i = 0; i < events.size(); i++) {
            timed.add(new Timed(events.get(i), T0.plusSeconds(i), jobId + "-e" + i));
        }
        return timed;
    }

    private static JobStatusChanged status(String jobId, JobStatus s, String message) {
        return JobStatusChanged.newBuilder()
                .setJobId(jobId)
                .setStatus(s)
                .setMessage(message)
                .setChangedAt(Timestamps.now())
                .build();
    }

    private void apply(List<Timed> events) {
        for (Timed t : events) {
            readModel.apply(Fixtures.incoming(t.payload(), t.at(), t.id()));
        }
    }

    @Test
    void eventsInPipelineOrderGiveTheJobsStagesProgressAndOutcome() {
        apply(successfulRun("order-a"));

        JobView job = readModel.find("order-a").orElseThrow();
        assertThat(job.status()).isEqualTo("SUCCEEDED");
        assertThat(job.statusMessage()).isEqualTo("registered sentiment version 3");
        assertThat(job.stages())
                .containsEntry("queued", T0)
                .containsEntry("ingesting", T0.plusSeconds(1))
                .containsEntry("training", T0.plusSeconds(5))
                .containsEntry("finished", T0.plusSeconds(15));
        assertThat(job.progress().step()).isEqualTo(50);
        assertThat(job.progress().percent()).isEqualTo(100.0);
        assertThat(job.progress().loss()).isEqualTo(0.2);
        assertThat(job.registered()).isEqualTo(new JobView.Registration("sentiment", 3));
        assertThat(job.datasetRawSha256()).isEqualTo("f".repeat(64));
        assertThat(job.method()).isEqualTo("LORA");
        assertThat(job.eventCount()).isEqualTo(16);
        assertThat(job.timeline()).hasSize(16);
        assertThat(job.timeline().get(0).type()).isEqualTo("JobRequested");
        assertThat(job.timeline().get(15).summary()).containsEntry("status", "SUCCEEDED");
    }

    @Test
    void shuffledAndDuplicatedEventsLeaveTheSameJob() {
        apply(successfulRun("order-ref"));
        JobView reference = readModel.find("order-ref").orElseThrow();

        for (int seed = 1; seed <= 5; seed++) {
            String jobId = "order-shuffled-" + seed;
            List<Timed> events = new ArrayList<>(successfulRun(jobId));
            events.addAll(successfulRun(jobId)); // every event delivered twice, same ids
            Collections.shuffle(events, new Random(seed));
            apply(events);

            JobView shuffled = readModel.find(jobId).orElseThrow();
            assertThat(shuffled)
                    .as("seed %d", seed)
                    .usingRecursiveComparison()
                    .ignoringFields("jobId", "timeline")
                    .isEqualTo(reference);
            assertThat(shuffled.timeline())
                    .extracting(JobEventView::occurredAt)
                    .isSorted()
                    .hasSize(16);
        }
    }

    @Test
    void aLateNonFinalEventDoesNotReopenAFinishedJob() {
        List<Timed> events = successfulRun("late-progress");
        Timed progress = events.get(8);
        List<Timed> reordered = new ArrayList<>(events);
        reordered.remove(8);
        reordered.add(progress); // arrives after SUCCEEDED
        apply(reordered);

        JobView job = readModel.find("late-progress").orElseThrow();
        assertThat(job.status()).isEqualTo("SUCCEEDED");
        assertThat(job.progress().step()).isEqualTo(50);
    }

    @Test
    void aFailureKeepsItsStageCodeAndReasonAndTheLatestFinalWordWins() {
        String jobId = "failing";
        List<Timed> events = new ArrayList<>(successfulRun(jobId).subList(0, 7));
        events.add(
                new Timed(
                        JobFailed.newBuilder()
                                .setJobId(jobId)
                                .setStage(Stage.STAGE_TRAINING)
                                .setErrorCode("WORKER_CRASHED")
                                .setMessage("worker exited with 137 (out of memory?)")
                                .build(),
                        T0.plusSeconds(30),
                        "fail-1"));
        Collections.reverse(events);
        apply(events);

        JobView job = readModel.find(jobId).orElseThrow();
        assertThat(job.status()).isEqualTo("FAILED");
        assertThat(job.failure().stage()).isEqualTo("TRAINING");
        assertThat(job.failure().code()).isEqualTo("WORKER_CRASHED");
        assertThat(job.failure().reason()).contains("exited with 137");
        assertThat(job.stages()).containsEntry("finished", T0.plusSeconds(30));

        readModel.apply(
                Fixtures.incoming(
                        CancelJob.newBuilder().setJobId(jobId).setReason("stop").build(),
                        T0.plusSeconds(20),
                        "cancel-1"));
        readModel.apply(
                Fixtures.incoming(
                        status(jobId, JobStatus.JOB_STATUS_CANCELLED, "cancelled"),
                        T0.plusSeconds(40),
                        "cancelled-1"));
        JobView cancelled = readModel.find(jobId).orElseThrow();
        assertThat(cancelled.status()).isEqualTo("CANCELLED");
        assertThat(cancelled.cancelRequestedAt()).isEqualTo(T0.plusSeconds(20));
        assertThat(cancelled.failure().code()).isEqualTo("WORKER_CRASHED");
    }

    @Test
    void aRedeliveredEventIsStoredOnce() {
        JobRequested job = Fixtures.job("redelivered", "m", 1e-3);
        assertThat(readModel.apply(Fixtures.incoming(job, T0, "same-id"))).isPresent();
        assertThat(readModel.apply(Fixtures.incoming(job, T0, "same-id"))).isEmpty();
        assertThat(readModel.find("redelivered").orElseThrow().eventCount()).isEqualTo(1);
    }
}
