package io.tuneline.e2e;

import static io.tuneline.e2e.LocalStack.SLOW_STAGE;
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
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerRecord;
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

    /** How long the S3 server stays away in the outage test. */
    private static final Duration OUTAGE = Duration.ofSeconds(20);

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
        // The injected delay comes first in its evaluation stage (before the stage reports
        // EVALUATING): the service's log says when it has begun.
        await().atMost(LocalStack.JOB_TIMEOUT)
                .pollInterval(Duration.ofSeconds(1))
                .until(
                        () ->
                                Files.readString(LocalStack.log("evaluation"))
                                        .contains(
                                                "[" + slow + "] fault injection: the stage takes"));
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
                .isNotIn("EVALUATING", "REGISTERING", "SUCCEEDED", "FAILED");
        assertThat(Files.readString(LocalStack.log("evaluation")))
                .doesNotContain("[" + slow + "] evaluated:");

        // Past SmallRye's 60 s limit for an unacknowledged record, which used to stop the
        // consumer for good: the service stays healthy.
        await().atMost(SLOW_STAGE)
                .pollInterval(Duration.ofSeconds(1))
                .until(() -> System.nanoTime() - slowEvaluating > TimeUnit.SECONDS.toNanos(62));
        var healthy = health(EVALUATION_PORT);
        assertThat(healthy.statusCode()).as(healthy.body()).isEqualTo(200);
        assertThat(Files.readString(LocalStack.log("evaluation")))
                .as("the slow job's evaluation is still held")
                .doesNotContain("[" + slow + "] evaluated:");

        // SIGKILL in the middle of the stage: the record was not committed, so the restarted
        // service evaluates the job again, once, and it ends with one registered version.
        LocalStack.killHard("evaluation");
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
                        + " s more (past SmallRye's default 60 s unacknowledged-record limit, which"
                        + " used to stop the consumer, and Kafka's 45 s session timeout)",
                "another job went through every stage meanwhile; evaluation health stayed UP",
                "other job done in " + otherSeconds + " s while the slow one was held");
        row(
                "evaluation service killed with SIGKILL in the middle of that evaluation, then"
                        + " started",
                "the uncommitted record was delivered again and evaluated once more (attempt 2, without the injected delay, which applies to a first start);"
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

    @Test
    @Order(3)
    void everyEventOfAJobDeliveredTwiceAndShuffledChangesNothing() throws Exception {
        String jobId = "e2e-replayed-" + run;
        publishWithKcat(exampleJob(jobId));
        JsonNode done = awaitTerminal(jobId);
        assertThat(done.path("status").asText()).as(done.toString()).isEqualTo("SUCCEEDED");
        String model = done.path("registered").path("model").asText();
        LocalStack.awaitNoConsumerLag();

        List<ConsumerRecord<String, byte[]>> events = new ArrayList<>();
        for (String topic : LocalStack.PIPELINE_TOPICS) {
            LocalStack.readAll(topic).stream()
                    .filter(r -> jobId.equals(r.key()))
                    .forEach(events::add);
        }
        Map<String, Set<String>> before = outcomeIds(jobId);
        int eventsBefore = get("/api/v1/jobs/" + jobId).path("timeline").size();

        // Every event twice, in a seeded shuffle: as a broker would after rebalances and producer
        // retries, and far worse than it does within one partition.
        List<ConsumerRecord<String, byte[]>> replay = new ArrayList<>(events);
        replay.addAll(events);
        java.util.Collections.shuffle(replay, new java.util.Random(42));
        try (var kafka = new io.tuneline.testing.KafkaTestClient(LocalStack.KAFKA)) {
            for (ConsumerRecord<String, byte[]> r : replay) {
                Map<String, String> headers = new java.util.LinkedHashMap<>();
                r.headers()
                        .forEach(
                                h ->
                                        headers.put(
                                                h.key(),
                                                new String(
                                                        h.value(),
                                                        java.nio.charset.StandardCharsets.UTF_8)));
                kafka.publish(r.topic(), r.key(), r.value(), headers);
            }
        }
        LocalStack.awaitNoConsumerLag();

        JsonNode after = get("/api/v1/jobs/" + jobId);
        assertThat(after.path("status").asText()).isEqualTo("SUCCEEDED");
        assertThat(versionsOf(model, jobId)).as("versions of %s", jobId).hasSize(1);
        // No stage ran again: no event with a new id where a run, an evaluation or a
        // registration would announce itself.
        assertThat(outcomeIds(jobId)).isEqualTo(before);
        row(
                "all "
                        + events.size()
                        + " events of a finished job published again, twice each,"
                        + " shuffled",
                "nothing ran again: same training, evaluation and registration events, one version,"
                        + " job still SUCCEEDED",
                replay.size()
                        + " records replayed; timeline "
                        + eventsBefore
                        + " events before, "
                        + after.path("timeline").size()
                        + " after");
    }

    /** The event ids of a job's training, evaluation and registration outcomes, by topic. */
    private static Map<String, Set<String>> outcomeIds(String jobId) throws Exception {
        Map<String, Set<String>> ids = new java.util.TreeMap<>();
        for (String topic :
                List.of(
                        "finetune.training.completed",
                        "finetune.evaluations.completed",
                        "finetune.models.registered")) {
            Set<String> set = new java.util.TreeSet<>();
            for (ConsumerRecord<String, byte[]> r : LocalStack.readAll(topic)) {
                if (jobId.equals(r.key())) {
                    set.add(io.tuneline.testing.KafkaTestClient.header(r, "ce_id"));
                }
            }
            ids.put(topic, set);
        }
        return ids;
    }

    @Test
    @Order(4)
    void anObjectStoreOutageDuringTrainingIsWaitedOutAndTheJobSucceeds() throws Exception {
        String jobId = "e2e-s3-outage-" + run;
        var job = exampleJob(jobId);
        ((com.fasterxml.jackson.databind.node.ObjectNode) job.path("hyperparameters"))
                .put("epochs", 12);
        publishWithKcat(job);
        await().atMost(LocalStack.JOB_TIMEOUT)
                .pollInterval(Duration.ofSeconds(1))
                .ignoreExceptions()
                .until(
                        () ->
                                get("/api/v1/jobs/" + jobId).path("progress").path("step").asLong()
                                        > 0);

        // The S3 server goes away in the middle of training, with checkpoints due meanwhile.
        LocalStack.killHard("s3");
        long down = System.nanoTime();
        // The outage itself: a fixed time with nothing to wait for (this sleep is the fault).
        Thread.sleep(OUTAGE.toMillis());
        var up = platform("up");
        assertThat(up.exit()).as(up.output()).isZero();
        long outage = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - down);

        JsonNode done = awaitTerminal(jobId);
        assertThat(done.path("status").asText()).as(done.toString()).isEqualTo("SUCCEEDED");
        // Nothing left counted as running once it is over.
        await().atMost(Duration.ofSeconds(60))
                .pollInterval(Duration.ofSeconds(2))
                .until(() -> runningRuns() == 0);
        row(
                "S3 server killed during training, back " + outage + " s later",
                "the worker's and the services' store calls waited with backoff; the job SUCCEEDED",
                "0 jobs stuck; `tuneline_training_runs{state=\"running\"}` back to 0");
    }

    @Test
    @Order(5)
    void noLogEventOrRegistryAnswerOfTheWholeRunCarriesASecret() throws Exception {
        // The configured secrets of the one-machine stack: the S3 server's secret key (as
        // ./platform configured it) and the registry's API token.
        String s3Secret =
                Files.readString(LocalStack.HOME.resolve("s3proxy.conf"))
                        .lines()
                        .filter(l -> l.startsWith("s3proxy.credential="))
                        .map(l -> l.substring("s3proxy.credential=".length()).trim())
                        .findFirst()
                        .orElseThrow();
        List<String> secrets = List.of(s3Secret, LocalStack.TOKEN);
        List<String> found = new ArrayList<>();
        int files = 0;
        try (var walk = Files.walk(LocalStack.HOME)) {
            for (Path f : walk.filter(Files::isRegularFile).toList()) {
                String name = f.getFileName().toString();
                // Logs (rotated ones too, and Kafka's segments, which hold every event), process
                // output, and the JSON, Markdown and HTML files in the store (reports, manifests).
                boolean text =
                        name.endsWith(".log")
                                || name.matches(".*\\.log\\.\\d+")
                                || name.endsWith(".out")
                                || name.endsWith(".json")
                                || name.endsWith(".md")
                                || name.endsWith(".html");
                if (!text) {
                    continue;
                }
                files++;
                String content = Files.readString(f, java.nio.charset.StandardCharsets.ISO_8859_1);
                for (String s : secrets) {
                    if (content.contains(s)) {
                        found.add(s + " in " + LocalStack.HOME.relativize(f));
                    }
                }
            }
        }
        int events = 0;
        for (String topic : LocalStack.PIPELINE_TOPICS) {
            for (String line : LocalStack.consume(topic)) {
                events++;
                for (String s : secrets) {
                    if (line.contains(s)) {
                        found.add(s + " in an event on " + topic);
                    }
                }
            }
        }
        int answers = 0;
        JsonNode jobs = get("/api/v1/jobs?size=100");
        for (JsonNode j : jobs.has("items") ? jobs.path("items") : jobs) {
            String id = j.path("job_id").asText();
            String body = get("/api/v1/jobs/" + id).toString();
            answers++;
            for (String s : secrets) {
                if (body.contains(s)) {
                    found.add(s + " in GET /api/v1/jobs/" + id);
                }
            }
        }
        assertThat(files).isGreaterThan(10);
        assertThat(events).isGreaterThan(50);
        assertThat(answers).isGreaterThan(5);
        assertThat(found).as("secrets found").isEmpty();
        row(
                "grep of every log, event and registry answer of the run for the S3 secret key and"
                        + " the API token",
                "none found",
                files + " files, " + events + " events, " + answers + " job answers; 0 secrets");
    }

    private static long runningRuns() throws Exception {
        var r =
                LocalStack.http()
                        .send(
                                java.net.http.HttpRequest.newBuilder(
                                                java.net.URI.create(
                                                        "http://127.0.0.1:8083/q/metrics"))
                                        .build(),
                                java.net.http.HttpResponse.BodyHandlers.ofString());
        double running = 0;
        for (String line : r.body().lines().toList()) {
            if (line.startsWith("tuneline_training_runs{") && line.contains("state=\"running\"")) {
                running += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        return Math.round(running);
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
