package io.tuneline.e2e;

import static io.tuneline.e2e.LocalStack.SLOW_STAGE;
import static io.tuneline.e2e.LocalStack.awaitStatus;
import static io.tuneline.e2e.LocalStack.awaitTerminal;
import static io.tuneline.e2e.LocalStack.exampleJob;
import static io.tuneline.e2e.LocalStack.get;
import static io.tuneline.e2e.LocalStack.health;
import static io.tuneline.e2e.LocalStack.pidOf;
import static io.tuneline.e2e.LocalStack.platform;
import static io.tuneline.e2e.LocalStack.publishWithKcat;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Faults on the real stack: a stage that takes longer than every Kafka and SmallRye limit, a
 * service killed with SIGKILL in the middle of a job, and a job that kills its service each time it
 * is read. The stack's services run with fault injection for these tests' job ids only (see {@link
 * LocalStack}).
 */
@Order(2)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@ExtendWith(LocalStack.class)
class ReliabilityEndToEndTest {
    private static final int EVALUATION_PORT = 8084;

    private final String run = Long.toString(System.currentTimeMillis() % 1_000_000);

    /** What each fault did, as a Markdown table written to target/reliability.md at the end. */
    private final List<String> rows = new ArrayList<>();

    @AfterAll
    void writeResults() throws Exception {
        Path out = Path.of("target/reliability.md");
        Files.createDirectories(out.getParent());
        Files.writeString(
                out,
                "| fault | what the platform did | figures |\n|---|---|---|\n"
                        + String.join("\n", rows)
                        + "\n");
        System.out.printf("reliability results (%s):%n%s%n", out.toAbsolutePath(), rows);
    }

    private void row(String fault, String outcome, String figures) {
        rows.add("| " + fault + " | " + outcome + " | " + figures + " |");
    }

    @Test
    @Order(1)
    void aStageLongerThanEveryConsumerLimitHoldsUpNoOtherJobAndAKillMidStageRedoesItOnce()
            throws Exception {
        String slow = "e2e-slow-" + run;
        publishWithKcat(exampleJob(slow));
        awaitStatus(slow, List.of("EVALUATING"), LocalStack.JOB_TIMEOUT);
        long slowEvaluating = System.nanoTime();
        long otherStarted = System.nanoTime();

        // While the slow job's evaluation holds its record, another job goes through every stage,
        // evaluation included.
        String other = "e2e-beside-slow-" + run;
        publishWithKcat(exampleJob(other));
        JsonNode done = awaitTerminal(other);
        long otherSeconds = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - otherStarted);
        assertThat(done.path("status").asText()).as(done.toString()).isEqualTo("SUCCEEDED");
        assertThat(get("/api/v1/jobs/" + slow).path("status").asText())
                .as("the slow job is still in its evaluation")
                .isEqualTo("EVALUATING");

        // Past SmallRye's 60 s limit for an unacknowledged record, which used to stop the
        // consumer for good: the service stays healthy.
        await().atMost(SLOW_STAGE)
                .pollInterval(Duration.ofSeconds(1))
                .until(() -> System.nanoTime() - slowEvaluating > TimeUnit.SECONDS.toNanos(62));
        var healthy = health(EVALUATION_PORT);
        assertThat(healthy.statusCode()).as(healthy.body()).isEqualTo(200);
        assertThat(get("/api/v1/jobs/" + slow).path("status").asText()).isEqualTo("EVALUATING");

        // SIGKILL in the middle of the stage: the record was not committed, so the restarted
        // service evaluates the job again, once, and it ends with one registered version.
        long pid = pidOf("evaluation");
        Process kill = new ProcessBuilder("kill", "-9", Long.toString(pid)).start();
        assertThat(kill.waitFor(10, TimeUnit.SECONDS)).isTrue();
        await().atMost(Duration.ofSeconds(30))
                .until(() -> ProcessHandle.of(pid).map(h -> !h.isAlive()).orElse(true));
        var up = platform("up");
        assertThat(up.exit()).as(up.output()).isZero();

        JsonNode slowDone = awaitTerminal(slow);
        assertThat(slowDone.path("status").asText()).as(slowDone.toString()).isEqualTo("SUCCEEDED");
        String model = slowDone.path("registered").path("model").asText();
        assertThat(versionsOf(model, slow)).as("versions registered for %s", slow).hasSize(1);
        assertThat(Files.readString(LocalStack.log("evaluation")))
                .contains("evaluation stage started 1 time(s) before without finishing; attempt 2");
        long slowSeconds = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - slowEvaluating);
        row(
                "evaluation of one job takes "
                        + SLOW_STAGE.toSeconds()
                        + " s more (past SmallRye's"
                        + " 60 s unacknowledged-record limit)",
                "another job went through every stage meanwhile; evaluation health stayed UP",
                "other job done in " + otherSeconds + " s while the slow one was held");
        row(
                "evaluation service killed with SIGKILL in the middle of that evaluation, then"
                        + " started",
                "the uncommitted record was delivered again and evaluated once more (attempt 2);"
                        + " the job SUCCEEDED",
                "1 version registered for the job; "
                        + slowSeconds
                        + " s from EVALUATING to"
                        + " SUCCEEDED; 0 jobs lost or stuck");
    }

    @Test
    @Order(2)
    void aJobThatKillsItsServiceEveryTimeFailsAfterThreeStartsAndLaterJobsAreServed()
            throws Exception {
        String halting = "e2e-halt-" + run;
        publishWithKcat(exampleJob(halting));
        // Each start of ingestion reads the uncommitted record again and dies on it, as a real
        // crash loop would; an operator (or Kubernetes) starts it again each time.
        List<Integer> exits = new ArrayList<>();
        await().atMost(Duration.ofMinutes(8))
                .pollInterval(Duration.ofSeconds(1))
                .ignoreExceptions()
                .until(
                        () -> {
                            JsonNode job = get("/api/v1/jobs/" + halting);
                            if ("FAILED".equals(job.path("status").asText())) {
                                return true;
                            }
                            if (!alive("ingestion")) {
                                exits.add(platform("up").exit());
                            }
                            return false;
                        });
        JsonNode failed = get("/api/v1/jobs/" + halting);
        assertThat(failed.path("failure").path("stage").asText()).isEqualTo("INGESTION");
        assertThat(failed.path("failure").path("reason").asText())
                .contains("the ingestion service stopped 3 times while working on this job");
        assertThat(exits).as("restarts of the ingestion service").hasSizeGreaterThanOrEqualTo(3);
        row(
                "a job whose ingestion halts the ingestion service each time (a crash loop)",
                "restarted service read the uncommitted record again; after 3 starts the job"
                        + " FAILED with the reason and the consumer went on",
                exits.size()
                        + " restarts; reason: `"
                        + failed.path("failure").path("reason").asText()
                        + "`");

        // The consumer went on: the next job is served by the same ingestion service.
        await().atMost(Duration.ofMinutes(2)).until(() -> alive("ingestion"));
        String next = "e2e-after-halt-" + run;
        publishWithKcat(exampleJob(next));
        JsonNode done = awaitTerminal(next);
        assertThat(done.path("status").asText()).as(done.toString()).isEqualTo("SUCCEEDED");
        row(
                "a job published after the crash loop",
                "SUCCEEDED on the same ingestion service",
                "0 jobs lost");
    }

    private static boolean alive(String component) throws Exception {
        long pid = pidOf(component);
        return ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false);
    }

    /** The versions of {@code model} made by {@code jobId}. */
    private static List<JsonNode> versionsOf(String model, String jobId) throws Exception {
        JsonNode versions = get("/api/v1/models/" + model + "/versions");
        JsonNode items =
                versions.isArray()
                        ? versions
                        : versions.has("items")
                                ? versions.path("items")
                                : versions.path("versions");
        List<JsonNode> made = new ArrayList<>();
        for (JsonNode v : items) {
            if (jobId.equals(v.path("job_id").asText())) {
                made.add(v);
            }
        }
        return made;
    }
}
