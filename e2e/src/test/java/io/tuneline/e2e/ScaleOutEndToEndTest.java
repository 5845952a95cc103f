package io.tuneline.e2e;

import static io.tuneline.e2e.LocalStack.get;
import static io.tuneline.e2e.LocalStack.platform;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.StoreSettings;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.common.utils.Utils;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Scale-out and load on the real stack: two instances of each stateless service in one consumer
 * group, {@value #DEFAULT_JOBS} small jobs published at once, and while they run: one instance of
 * ingestion and of evaluation killed with SIGKILL and left dead (the other takes its partitions),
 * one of preprocessing, the training controller and the registry killed with SIGKILL and started
 * again at once, and the Kafka broker restarted. Every job must end exactly once, with one run, one
 * evaluation and one version. The figures (stage latencies, time to the last job, who did what) go
 * to {@code target/load.md}.
 */
@Order(3)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@ExtendWith(LocalStack.class)
class ScaleOutEndToEndTest {
    /**
     * 9 in the README's test command, to keep CI within its 30 minutes on 2 cores (25 took 7 of
     * them); {@code bench/load.sh} and {@code -Dtuneline.load.jobs=100} run the 100.
     */
    static final int DEFAULT_JOBS = 9;

    /** {@code -Dtuneline.load.jobs=N} for a shorter or a longer run. */
    private final int jobs = Integer.getInteger("tuneline.load.jobs", DEFAULT_JOBS);

    /**
     * {@code -Dtuneline.load.faults=false} runs the load without kills or restarts: how the
     * benchmark ({@code bench/load.sh}) measures the speed-up of a second training slot.
     */
    private final boolean faults =
            Boolean.parseBoolean(System.getProperty("tuneline.load.faults", "true"));

    private final String run = Long.toString(System.currentTimeMillis() % 1_000_000);
    private final String model = "e2e-load-" + run;
    private static final List<String> STATELESS =
            List.of("ingestion", "preprocessing", "evaluation");
    private static final Map<String, String> INPUT_TOPIC =
            Map.of(
                    "ingestion", "finetune.jobs.requested",
                    "preprocessing", "finetune.datasets.ingested",
                    "evaluation", "finetune.training.completed");

    private final List<String> rows = new ArrayList<>();

    @AfterAll
    void writeResults() throws Exception {
        Path out = Path.of("target/load.md");
        Files.createDirectories(out.getParent());
        Files.writeString(out, String.join("\n", rows) + "\n");
        System.out.printf(
                "load results (%s):%n%s%n", out.toAbsolutePath(), String.join("\n", rows));
    }

    @Test
    @Order(1)
    void twoInstancesShareTheJobsAndNoKillOrRestartLosesOrDuplicatesOne() throws Exception {
        String base = uploadTinyBert();
        for (String s : STATELESS) {
            var scaled = platform("scale", s, "2");
            assertThat(scaled.exit()).as(scaled.output()).isZero();
        }
        // Both instances of each group hold partitions of its topic before the load starts.
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", LocalStack.KAFKA))) {
            for (String s : STATELESS) {
                await().atMost(Duration.ofSeconds(90))
                        .pollInterval(Duration.ofSeconds(1))
                        .ignoreExceptions()
                        .until(() -> membersHolding(admin, s, INPUT_TOPIC.get(s)) == 2);
            }
        }

        ObjectNode template = LocalStack.exampleJob("template");
        ((ObjectNode) template.path("base_model")).put("ref", base);
        ((ObjectNode) template.path("hyperparameters")).put("epochs", 1);
        ObjectNode evaluation = (ObjectNode) template.path("evaluation");
        evaluation.put("bootstrap_samples", 100);
        evaluation.remove("perturbations");
        evaluation.remove("gate");
        ((ObjectNode) template.path("registration")).put("model_name", model);
        List<String> ids = evenlySpreadIds();
        Instant published;
        try (var kafka = new io.tuneline.testing.KafkaTestClient(LocalStack.KAFKA)) {
            published = Instant.now();
            for (String id : ids) {
                ObjectNode job = template.deepCopy();
                job.put("job_id", id);
                kafka.publish("finetune.jobs.requested", id, job.toString());
            }
        }

        // Faults while the jobs run, each once the work it hits is under way.
        List<String> faults = new ArrayList<>();
        if (this.faults) {
            injectFaults(ids, faults);
        }

        // A busy 2-core machine gets through about 3 jobs a minute with one training slot.
        Map<String, JsonNode> done = awaitAllTerminal(Duration.ofMinutes(Math.max(25, jobs / 2)));
        Instant last = Instant.now();
        LocalStack.awaitNoConsumerLag();

        // Exactly once: every job SUCCEEDED once, with one training, one evaluation and one
        // version, whatever was killed or restarted around it.
        List<String> problems = new ArrayList<>();
        Map<String, List<Double>> latencies = new LinkedHashMap<>();
        for (String id : ids) {
            JsonNode job = get("/api/v1/jobs/" + id);
            if (!"SUCCEEDED".equals(job.path("status").asText())) {
                problems.add(id + " " + job.path("status").asText() + ": " + job.path("failure"));
                continue;
            }
            Map<String, Integer> counts = new TreeMap<>();
            for (JsonNode e : job.path("timeline")) {
                String type = e.path("type").asText();
                if (type.equals("JobStatusChanged")) {
                    type += "/" + e.path("summary").path("status").asText();
                }
                counts.merge(type, 1, Integer::sum);
            }
            for (String once :
                    List.of(
                            "JobRequested",
                            "DatasetIngested",
                            "DatasetPrepared",
                            "TrainingCompleted",
                            "EvaluationCompleted",
                            "ModelRegistered",
                            "JobStatusChanged/SUCCEEDED")) {
                if (counts.getOrDefault(once, 0) != 1) {
                    problems.add(id + ": " + counts.getOrDefault(once, 0) + " x " + once);
                }
            }
            if (counts.containsKey("JobFailed")) {
                problems.add(id + ": JobFailed in the timeline " + counts);
            }
            stageLatencies(job.path("stages"), latencies);
        }
        JsonNode versions = get("/api/v1/models/" + model + "/versions?size=200");
        Map<String, Integer> versionsByJob = new TreeMap<>();
        for (JsonNode v : versions.path("items")) {
            versionsByJob.merge(v.path("job_id").asText(), 1, Integer::sum);
        }
        versionsByJob.forEach(
                (job, n) -> {
                    if (n != 1) {
                        problems.add(job + ": " + n + " versions");
                    }
                });
        assertThat(problems).as("jobs not ended exactly once").isEmpty();
        assertThat(versionsByJob).as("one version per job").hasSize(jobs);
        assertThat(done).hasSize(jobs);

        // Scale-out: both instances of each stateless service did part of the work.
        Map<String, String> shares = new LinkedHashMap<>();
        for (String s : STATELESS) {
            int first = jobsIn(s, ids);
            int second = jobsIn(s + "-2", ids);
            assertThat(first).as("jobs %s's first instance worked on", s).isPositive();
            assertThat(second).as("jobs %s's second instance worked on", s).isPositive();
            shares.put(s, first + " / " + second);
        }

        long seconds = Duration.between(published, last).toSeconds();
        rows.add("| figure | value |");
        rows.add("|---|---|");
        rows.add("| jobs published at once | " + jobs + " |");
        rows.add(
                "| jobs terminal exactly once (SUCCEEDED, one run, one evaluation, one version) | "
                        + jobs
                        + " (0 lost, 0 duplicated, 0 stuck) |");
        rows.add("| time from publishing to the last job's end | " + seconds + " s |");
        rows.add(
                "| training runs at once (local executor) | "
                        + System.getProperty("tuneline.load.concurrency", "2")
                        + " |");
        shares.forEach(
                (s, share) ->
                        rows.add(
                                "| jobs "
                                        + s
                                        + "'s two instances worked on (first / second) | "
                                        + share
                                        + " |"));
        for (String f : faults) {
            rows.add("| fault | " + f + " |");
        }
        rows.add("");
        rows.add("| stage | p50 | p95 | max |");
        rows.add("|---|---|---|---|");
        latencies.forEach(
                (stage, values) ->
                        rows.add(
                                String.format(
                                        "| %s | %.1f s | %.1f s | %.1f s |",
                                        stage,
                                        percentile(values, 50),
                                        percentile(values, 95),
                                        percentile(values, 100))));
    }

    /** Kills and restarts, each once the work it hits is under way. */
    private void injectFaults(List<String> ids, List<String> faults) throws Exception {
        killWhen(
                ids,
                "ingestion-2",
                c -> c.atOrPast("PREPROCESSING") >= 3,
                false,
                faults,
                "one of the two ingestion instances");
        killWhen(
                ids,
                "preprocessing-2",
                c -> c.atOrPast("TRAINING") >= 3,
                true,
                faults,
                "one of the two preprocessing instances");
        killWhen(
                ids,
                "training",
                c -> c.atOrPast("EVALUATING") >= 3,
                true,
                faults,
                "the training controller (its workers stop with it; the restarted one resumes"
                        + " their runs)");
        killWhen(
                ids,
                "evaluation-2",
                c -> c.atOrPast("SUCCEEDED") >= 3,
                false,
                faults,
                "one of the two evaluation instances");
        killWhen(
                ids,
                "registry",
                c -> c.atOrPast("SUCCEEDED") >= Math.min(jobs / 4, jobs - 1),
                true,
                faults,
                "the registry");
        restartBrokerWhen(c -> c.atOrPast("SUCCEEDED") >= Math.min(jobs / 2, jobs - 1), faults);
    }

    private String uploadTinyBert() throws Exception {
        String prefix = "e2e-models/tiny-bert-" + run + "/";
        try (ArtifactStore store =
                new ArtifactStore(
                        new StoreSettings(
                                "http://127.0.0.1:9000",
                                "minioadmin",
                                "tuneline-local-secret",
                                "tuneline",
                                "us-east-1",
                                StoreSettings.MIN_PART_SIZE,
                                Duration.ofMinutes(1)))) {
            for (Map.Entry<String, byte[]> f : TinyBert.files(7).entrySet()) {
                store.put(store.uri(prefix + f.getKey()), f.getValue(), "application/octet-stream");
            }
        }
        return "s3://tuneline/" + prefix;
    }

    /**
     * Job ids whose keys fall on the topics' partitions in turn (Kafka's default partitioner:
     * murmur2 of the key), so that each instance gets its share from the first jobs on, as a real
     * workload's many keys would spread; a handful of sequential ids can land on one partition.
     */
    private List<String> evenlySpreadIds() throws Exception {
        int partitions;
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", LocalStack.KAFKA))) {
            partitions =
                    admin.describeTopics(List.of("finetune.jobs.requested"))
                            .allTopicNames()
                            .get()
                            .get("finetune.jobs.requested")
                            .partitions()
                            .size();
        }
        List<String> ids = new ArrayList<>();
        for (int n = 0; ids.size() < jobs; n++) {
            String id = String.format("e2e-load-%s-%03d", run, n);
            byte[] key = id.getBytes(java.nio.charset.StandardCharsets.UTF_8);
            if (Utils.toPositive(Utils.murmur2(key)) % partitions == ids.size() % partitions) {
                ids.add(id);
            }
        }
        return ids;
    }

    /** How many members of a service's consumer group hold partitions of its input topic. */
    private static long membersHolding(Admin admin, String group, String topic) throws Exception {
        var description = admin.describeConsumerGroups(List.of(group)).all().get().get(group);
        return description.members().stream()
                .map(MemberDescription::assignment)
                .filter(a -> a.topicPartitions().stream().anyMatch(p -> p.topic().equals(topic)))
                .count();
    }

    /** Job counts by how far they got, from the registry. */
    private record Counts(Map<String, Integer> byStatus) {
        private static final List<String> ORDER =
                List.of(
                        "QUEUED",
                        "INGESTING",
                        "PREPROCESSING",
                        "TRAINING",
                        "EVALUATING",
                        "REGISTERING",
                        "SUCCEEDED");

        int atOrPast(String status) {
            int from = ORDER.indexOf(status);
            int n = 0;
            for (Map.Entry<String, Integer> e : byStatus.entrySet()) {
                int at = ORDER.indexOf(e.getKey());
                if (at >= from || (at < 0 && !e.getKey().equals("QUEUED"))) {
                    n += e.getValue();
                }
            }
            return n;
        }
    }

    private Counts counts() throws Exception {
        Map<String, Integer> byStatus = new TreeMap<>();
        JsonNode page = get("/api/v1/jobs?model=" + model + "&size=200");
        for (JsonNode j : page.path("items")) {
            byStatus.merge(j.path("status").asText(), 1, Integer::sum);
        }
        return new Counts(byStatus);
    }

    private void awaitCounts(Predicate<Counts> condition) {
        await().atMost(Duration.ofMinutes(20))
                .pollInterval(Duration.ofMillis(500))
                .ignoreExceptions()
                .until(() -> condition.test(counts()));
    }

    /**
     * Once {@code when} holds, kills {@code component} with SIGKILL; with {@code restart} it is
     * started again at once ({@code ./platform up}, or {@code ./platform scale} for a second
     * instance), otherwise the other instance takes over its partitions.
     */
    private void killWhen(
            List<String> ids,
            String component,
            Predicate<Counts> when,
            boolean restart,
            List<String> faults,
            String what)
            throws Exception {
        awaitCounts(when);
        if (component.endsWith("-2")) {
            // The fault hits an instance at work: killed before its first job, it would prove
            // nothing about handing over partitions (and leave the share assertion to luck).
            await().atMost(Duration.ofMinutes(10))
                    .pollInterval(Duration.ofMillis(500))
                    .until(() -> jobsIn(component, ids) > 0);
        }
        Counts at = counts();
        List<Long> workersBefore = workers();
        LocalStack.killHard(component);
        long killed = System.nanoTime();
        String after;
        if (restart) {
            // Within the group's session timeout, so the restarted instance gets back only the
            // partitions its predecessor held: nothing moves away from the instance that lived.
            var up =
                    component.endsWith("-2")
                            ? platform("scale", component.substring(0, component.length() - 2), "2")
                            : platform("up");
            assertThat(up.exit()).as(up.output()).isZero();
            after =
                    "started again after "
                            + TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - killed)
                            + " s";
        } else {
            after = "not started again; the other instance took its partitions";
        }
        if (component.equals("training")) {
            // The killed controller's workers stop by themselves (checkpoint first): no run is
            // ever trained by two workers at once.
            await().atMost(Duration.ofSeconds(90))
                    .pollInterval(Duration.ofSeconds(1))
                    .until(() -> workers().stream().noneMatch(workersBefore::contains));
            after += "; its " + workersBefore.size() + " running worker(s) stopped";
        }
        faults.add("SIGKILL of " + what + " with " + at.byStatus() + " jobs by status: " + after);
    }

    private void restartBrokerWhen(Predicate<Counts> when, List<String> faults) throws Exception {
        awaitCounts(when);
        Counts at = counts();
        long pid = LocalStack.pidOf("kafka");
        new ProcessBuilder("kill", "-TERM", Long.toString(pid)).start().waitFor();
        long stopping = System.nanoTime();
        await().atMost(Duration.ofSeconds(60))
                .until(() -> ProcessHandle.of(pid).map(h -> !h.isAlive()).orElse(true));
        var up = platform("up");
        assertThat(up.exit()).as(up.output()).isZero();
        faults.add(
                "Kafka broker stopped and started again with "
                        + at.byStatus()
                        + " jobs by status: back after "
                        + TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - stopping)
                        + " s");
    }

    private Map<String, JsonNode> awaitAllTerminal(Duration atMost) {
        Map<String, JsonNode> done = new TreeMap<>();
        await().atMost(atMost)
                .pollInterval(Duration.ofSeconds(2))
                .ignoreExceptions()
                .until(
                        () -> {
                            JsonNode page = get("/api/v1/jobs?model=" + model + "&size=200");
                            done.clear();
                            for (JsonNode j : page.path("items")) {
                                if (List.of("SUCCEEDED", "FAILED", "CANCELLED")
                                        .contains(j.path("status").asText())) {
                                    done.put(j.path("job_id").asText(), j);
                                }
                            }
                            return done.size() == jobs;
                        });
        return done;
    }

    /** Worker processes of the local executor now running. */
    private static List<Long> workers() {
        return ProcessHandle.allProcesses()
                .filter(
                        h ->
                                h.info()
                                        .commandLine()
                                        .map(
                                                c ->
                                                        c.contains(
                                                                "io.tuneline.training.worker.TrainingWorker"))
                                        .orElse(false))
                .map(ProcessHandle::pid)
                .toList();
    }

    /**
     * How many of {@code ids} an instance's log names (its log lines carry the job id), rotated
     * logs included: a restarted instance rotates its log at start.
     */
    private static int jobsIn(String component, List<String> ids) throws Exception {
        StringBuilder text = new StringBuilder();
        Path log = LocalStack.log(component);
        try (var files = Files.list(log.getParent())) {
            for (Path f :
                    files.filter(
                                    f ->
                                            f.getFileName()
                                                    .toString()
                                                    .matches(
                                                            java.util.regex.Pattern.quote(
                                                                            log.getFileName()
                                                                                    .toString())
                                                                    + "(\\.\\d+)?"))
                            .toList()) {
                text.append(Files.readString(f));
            }
        }
        int n = 0;
        for (String id : ids) {
            if (text.indexOf("[" + id + "]") >= 0) {
                n++;
            }
        }
        return n;
    }

    private static void stageLatencies(JsonNode stages, Map<String, List<Double>> into) {
        String[][] spans = {
            {"ingestion", "ingesting", "preprocessing"},
            {"preprocessing", "preprocessing", "training"},
            {"training (queue included)", "training", "evaluating"},
            {"evaluation", "evaluating", "registering"},
            {"registration", "registering", "finished"},
            {"whole job", "requested", "finished"}
        };
        for (String[] s : spans) {
            if (stages.hasNonNull(s[1]) && stages.hasNonNull(s[2])) {
                double seconds =
                        Duration.between(
                                                Instant.parse(stages.path(s[1]).asText()),
                                                Instant.parse(stages.path(s[2]).asText()))
                                        .toMillis()
                                / 1000.0;
                into.computeIfAbsent(s[0], k -> new ArrayList<>()).add(seconds);
            }
        }
    }

    private static double percentile(List<Double> values, int p) {
        List<Double> sorted = values.stream().sorted().toList();
        int i = (int) Math.ceil(p / 100.0 * sorted.size()) - 1;
        return sorted.get(Math.max(0, Math.min(sorted.size() - 1, i)));
    }
}
