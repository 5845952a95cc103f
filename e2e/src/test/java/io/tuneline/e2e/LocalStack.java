package io.tuneline.e2e;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * The one-machine stack ({@code ./platform up}: Kafka, the S3 server, Prometheus and the five
 * services as processes), started once for all end-to-end test classes of the JVM and stopped
 * ({@code ./platform down}) after the last, with the fault injection the reliability tests use
 * switched on for their job ids only.
 */
final class LocalStack implements BeforeAllCallback, ExtensionContext.Store.CloseableResource {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String REGISTRY = "http://127.0.0.1:8080";
    static final String KAFKA = "127.0.0.1:9092";
    static final String TOKEN = "tuneline-local-token";
    static final Duration JOB_TIMEOUT = Duration.ofMinutes(10);

    /** Not 9090: a Debian-installed Prometheus may already run there. */
    static final int PROMETHEUS_PORT = 19090;

    /** Jobs whose evaluation takes {@link #SLOW_STAGE} longer: past SmallRye's 60 s limit. */
    static final String SLOW_JOBS = "e2e-slow-.*";

    static final Duration SLOW_STAGE = Duration.ofSeconds(75);

    /** Jobs at whose ingestion the ingestion service halts, as if killed, every time. */
    static final String HALTING_JOBS = "e2e-halt-.*";

    static final Path ROOT =
            Path.of(System.getProperty("tuneline.root", "..")).toAbsolutePath().normalize();
    static final Path HOME =
            Path.of(System.getProperty("tuneline.home", "target/e2e-home")).toAbsolutePath();

    private static final HttpClient HTTP =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    private static Instant started;

    @Override
    public void beforeAll(ExtensionContext context) throws Exception {
        ExtensionContext.Store store =
                context.getRoot().getStore(ExtensionContext.Namespace.GLOBAL);
        synchronized (LocalStack.class) {
            if (store.get(LocalStack.class) == null) {
                start();
                store.put(LocalStack.class, this);
            }
        }
    }

    /** When the stack was started: the start of the time range dashboards are checked over. */
    static Instant started() {
        return started;
    }

    private static void start() throws Exception {
        for (String tool : List.of("kcat", "prometheus")) {
            assertThat(onPath(tool))
                    .as(
                            "%s must be installed for the end-to-end test (apt-get install %s; .ci/run does)",
                            tool, tool)
                    .isTrue();
        }
        started = Instant.now();
        Result up = platform("up");
        assertThat(up.exit()).as("./platform up failed:%n%s", up.output()).isZero();
        assertThat(up.output()).contains("prometheus    up at");
    }

    @Override
    public void close() throws Exception {
        platform("down");
    }

    record Result(int exit, String output) {}

    /** Runs {@code ./platform args...} against the test's state directory and waits for it. */
    static Result platform(String... args) throws IOException, InterruptedException {
        Files.createDirectories(HOME);
        List<String> command = new java.util.ArrayList<>();
        command.add(ROOT.resolve("platform").toString());
        command.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
        Map<String, String> env = pb.environment();
        env.put("TUNELINE_HOME", HOME.toString());
        env.put("TUNELINE_SKIP_BUILD", "1");
        env.put("TUNELINE_PROMETHEUS_PORT", Integer.toString(PROMETHEUS_PORT));
        env.put("TUNELINE_STAGES_FAULTS_DELAY_JOBS", SLOW_JOBS);
        env.put("TUNELINE_STAGES_FAULTS_DELAY", SLOW_STAGE.toString());
        env.put("TUNELINE_STAGES_FAULTS_DELAY_IN", "evaluation");
        env.put("TUNELINE_STAGES_FAULTS_HALT_JOBS", HALTING_JOBS);
        env.put("TUNELINE_STAGES_FAULTS_HALT_IN", "ingestion");
        // Two training runs at once, as the load test reports (-Dtuneline.load.concurrency).
        env.put(
                "TUNELINE_TRAINING_LOCAL_MAX_CONCURRENT_RUNS",
                System.getProperty("tuneline.load.concurrency", "2"));
        Process p = pb.start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(10, TimeUnit.MINUTES)).as("./platform %s ended", command).isTrue();
        return new Result(p.exitValue(), output);
    }

    /** The bundled example job under another id. */
    static ObjectNode exampleJob(String jobId) throws IOException {
        ObjectNode job =
                (ObjectNode) JSON.readTree(ROOT.resolve("examples/sentiment-inline.json").toFile());
        job.put("job_id", jobId);
        return job;
    }

    static void publishWithKcat(JsonNode job) throws Exception {
        Path file = Files.createTempFile(HOME.getParent(), "job-", ".json");
        Files.writeString(file, job.toString());
        Process kcat =
                new ProcessBuilder(
                                "kcat",
                                "-P",
                                "-b",
                                KAFKA,
                                "-t",
                                "finetune.jobs.requested",
                                "-k",
                                job.path("job_id").asText(),
                                file.toString())
                        .redirectErrorStream(true)
                        .start();
        String output = new String(kcat.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(kcat.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(kcat.exitValue()).as("kcat: %s", output).isZero();
    }

    /** The job as the registry shows it, once it is SUCCEEDED, FAILED or CANCELLED. */
    static JsonNode awaitTerminal(String jobId) {
        return awaitStatus(jobId, List.of("SUCCEEDED", "FAILED", "CANCELLED"), JOB_TIMEOUT);
    }

    static JsonNode awaitStatus(String jobId, List<String> statuses, Duration atMost) {
        JsonNode[] last = new JsonNode[1];
        await().atMost(atMost)
                .pollInterval(Duration.ofSeconds(1))
                .ignoreExceptions()
                .until(
                        () -> {
                            last[0] = get("/api/v1/jobs/" + jobId);
                            return statuses.contains(last[0].path("status").asText());
                        });
        return last[0];
    }

    static JsonNode get(String path) throws Exception {
        HttpResponse<String> r =
                HTTP.send(
                        HttpRequest.newBuilder(URI.create(REGISTRY + path)).build(),
                        HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).as("GET %s: %s", path, r.body()).isEqualTo(200);
        return JSON.readTree(r.body());
    }

    /** A service's health document ({@code /q/health}) and status code. */
    static HttpResponse<String> health(int port) throws Exception {
        return HTTP.send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/q/health"))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
    }

    static HttpClient http() {
        return HTTP;
    }

    /** The pid {@code ./platform} recorded for a component. */
    static long pidOf(String component) throws IOException {
        return Long.parseLong(Files.readString(HOME.resolve("pids/" + component + ".pid")).trim());
    }

    static Path log(String component) {
        return HOME.resolve("logs/" + component + ".log");
    }

    /**
     * Kills a component with SIGKILL, as a crash or an OOM kill would, and waits until it is gone.
     */
    static void killHard(String component) throws Exception {
        long pid = pidOf(component);
        Process kill = new ProcessBuilder("kill", "-9", Long.toString(pid)).start();
        assertThat(kill.waitFor(10, TimeUnit.SECONDS)).isTrue();
        await().atMost(Duration.ofSeconds(30))
                .until(() -> ProcessHandle.of(pid).map(h -> !h.isAlive()).orElse(true));
    }

    /** Every topic the pipeline's events travel on. */
    static final List<String> PIPELINE_TOPICS =
            List.of(
                    "finetune.jobs.requested",
                    "finetune.jobs.status",
                    "finetune.datasets.ingested",
                    "finetune.datasets.prepared",
                    "finetune.training.progress",
                    "finetune.training.completed",
                    "finetune.evaluations.completed",
                    "finetune.models.registered");

    /** Every record on a topic now, from the beginning. */
    static List<org.apache.kafka.clients.consumer.ConsumerRecord<String, byte[]>> readAll(
            String topic) {
        java.util.Properties props = new java.util.Properties();
        props.put("bootstrap.servers", KAFKA);
        props.put(
                "key.deserializer",
                org.apache.kafka.common.serialization.StringDeserializer.class.getName());
        props.put(
                "value.deserializer",
                org.apache.kafka.common.serialization.ByteArrayDeserializer.class.getName());
        List<org.apache.kafka.clients.consumer.ConsumerRecord<String, byte[]>> all =
                new java.util.ArrayList<>();
        try (var consumer =
                new org.apache.kafka.clients.consumer.KafkaConsumer<String, byte[]>(props)) {
            var partitions =
                    consumer.partitionsFor(topic).stream()
                            .map(
                                    p ->
                                            new org.apache.kafka.common.TopicPartition(
                                                    topic, p.partition()))
                            .toList();
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            var end = consumer.endOffsets(partitions);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (partitions.stream().anyMatch(p -> consumer.position(p) < end.get(p))) {
                assertThat(System.nanoTime()).as("reading %s", topic).isLessThan(deadline);
                consumer.poll(Duration.ofMillis(200)).forEach(all::add);
            }
        }
        return all;
    }

    /**
     * Waits until every service's consumer group has committed every record of its topics: what was
     * published has been handled.
     */
    static void awaitNoConsumerLag() {
        java.util.Properties props = new java.util.Properties();
        props.put("bootstrap.servers", KAFKA);
        try (var admin = org.apache.kafka.clients.admin.Admin.create(props)) {
            await().atMost(Duration.ofMinutes(3))
                    .pollInterval(Duration.ofSeconds(1))
                    .until(
                            () -> {
                                long lag = 0;
                                for (String group :
                                        List.of(
                                                "ingestion",
                                                "preprocessing",
                                                "training",
                                                "evaluation",
                                                "registry")) {
                                    var committed =
                                            admin.listConsumerGroupOffsets(group)
                                                    .partitionsToOffsetAndMetadata()
                                                    .get();
                                    var latest =
                                            admin.listOffsets(
                                                            committed.keySet().stream()
                                                                    .collect(
                                                                            java.util.stream
                                                                                    .Collectors
                                                                                    .toMap(
                                                                                            tp ->
                                                                                                    tp,
                                                                                            tp ->
                                                                                                    org
                                                                                                            .apache
                                                                                                            .kafka
                                                                                                            .clients
                                                                                                            .admin
                                                                                                            .OffsetSpec
                                                                                                            .latest())))
                                                    .all()
                                                    .get();
                                    for (var e : committed.entrySet()) {
                                        if (e.getValue() != null) {
                                            lag +=
                                                    latest.get(e.getKey()).offset()
                                                            - e.getValue().offset();
                                        }
                                    }
                                }
                                return lag == 0;
                            });
        }
    }

    /** The values of every record on a topic, read from the beginning with kcat. */
    static List<String> consume(String topic) throws Exception {
        return kcat(topic, "%s\\n");
    }

    /** Every record on a topic from the beginning, one line each in kcat's {@code format}. */
    static List<String> kcat(String topic, String format) throws Exception {
        Process kcat =
                new ProcessBuilder(
                                "kcat",
                                "-C",
                                "-b",
                                KAFKA,
                                "-t",
                                topic,
                                "-o",
                                "beginning",
                                "-e",
                                "-q",
                                "-f",
                                format)
                        .redirectErrorStream(true)
                        .start();
        String output = new String(kcat.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(kcat.waitFor(60, TimeUnit.SECONDS)).isTrue();
        return output.lines().toList();
    }

    private static boolean onPath(String tool) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            if (Files.isExecutable(Path.of(dir, tool))) {
                return true;
            }
        }
        return false;
    }
}
