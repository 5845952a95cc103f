package io.tuneline.e2e;

import static io.tuneline.e2e.LocalStack.JOB_TIMEOUT;
import static io.tuneline.e2e.LocalStack.REGISTRY;
import static io.tuneline.e2e.LocalStack.TOKEN;
import static io.tuneline.e2e.LocalStack.awaitTerminal;
import static io.tuneline.e2e.LocalStack.exampleJob;
import static io.tuneline.e2e.LocalStack.get;
import static io.tuneline.e2e.LocalStack.publishWithKcat;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The whole platform as a user runs it: {@code ./platform up} (real Kafka, S3 server, Prometheus
 * and the five services as processes), jobs published with {@code kcat}, followed through the
 * registry's API, artifacts downloaded through presigned URLs, and every dashboard query run
 * against the Prometheus that scraped it all.
 */
@Order(1)
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@ExtendWith(LocalStack.class)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class PlatformEndToEndTest {
    private static final String PROMETHEUS = "http://127.0.0.1:" + LocalStack.PROMETHEUS_PORT;

    /**
     * Dashboard queries that cannot return data on one machine, each with the reason. Everything
     * else must return data.
     */
    private static final Map<String, String> SKIPPED_QUERIES =
            Map.of(
                    "DCGM_FI_DEV_GPU_UTIL",
                    "NVIDIA DCGM exporter metrics exist only on GPU nodes",
                    "tuneline_serving_prompt_tokens_total",
                    "completions' token counters exist once a causal LM version is served; the"
                            + " stack registers classifiers only",
                    "tuneline_serving_generated_tokens_total",
                    "completions' token counters exist once a causal LM version is served; the"
                            + " stack registers classifiers only");

    /** deploy/local/prometheus.yml's scrape_interval. */
    private static final long SCRAPE_INTERVAL_SECONDS = 5;

    private final Path root = LocalStack.ROOT;
    private final HttpClient http = LocalStack.http();
    private final String run = Long.toString(System.currentTimeMillis() % 1_000_000);

    @Test
    @Order(1)
    void aJobPublishedWithKcatIsTrainedEvaluatedAndRegistered() throws Exception {
        String jobId = "e2e-ok-" + run;
        publishWithKcat(exampleJob(jobId));

        JsonNode job = awaitTerminal(jobId);
        assertThat(job.path("status").asText()).as(job.toString()).isEqualTo("SUCCEEDED");
        String model = job.path("registered").path("model").asText();
        long version = job.path("registered").path("version").asLong();
        assertThat(model).isEqualTo("sentiment-demo");
        assertThat(job.path("stages").fieldNames())
                .toIterable()
                .contains(
                        "queued",
                        "ingesting",
                        "preprocessing",
                        "training",
                        "evaluating",
                        "registering",
                        "finished");

        JsonNode v = get("/api/v1/models/" + model + "/versions/" + version);
        assertThat(v.path("job_id").asText()).isEqualTo(jobId);
        assertThat(v.path("gate").path("passed").asBoolean()).isTrue();
        double tuned =
                v.path("metrics").path("tuned_metrics").path("macro_f1").path("value").asDouble();
        double base =
                v.path("metrics").path("base_metrics").path("macro_f1").path("value").asDouble();
        assertThat(tuned).isGreaterThan(base);

        JsonNode downloads = get("/api/v1/models/" + model + "/versions/" + version + "/downloads");
        List<String> checked = new ArrayList<>();
        for (JsonNode d : downloads) {
            String name = d.path("name").asText();
            if (!name.equals("model/model.safetensors") && !name.equals("report.html")) {
                continue;
            }
            HttpResponse<byte[]> file =
                    http.send(
                            HttpRequest.newBuilder(URI.create(d.path("url").asText())).build(),
                            HttpResponse.BodyHandlers.ofByteArray());
            assertThat(file.statusCode()).as(name).isEqualTo(200);
            assertThat(sha256(file.body()))
                    .as("sha256 of %s", name)
                    .isEqualTo(d.path("sha256").asText());
            checked.add(name);
        }
        assertThat(checked).containsExactlyInAnyOrder("model/model.safetensors", "report.html");

        for (String topic : LocalStack.PIPELINE_TOPICS) {
            assertThat(keysOn(topic)).as("events of %s on %s", jobId, topic).contains(jobId);
        }
    }

    @Test
    @Order(2)
    void aJobWithABadDatasetFailsWithTheLineAndReason() throws Exception {
        String jobId = "e2e-bad-" + run;
        ObjectNode job = exampleJob(jobId);
        ObjectNode third = (ObjectNode) job.path("dataset").path("inline").path("records").get(2);
        third.put("label", "meh");
        publishWithKcat(job);

        JsonNode done = awaitTerminal(jobId);
        assertThat(done.path("status").asText()).as(done.toString()).isEqualTo("FAILED");
        assertThat(done.path("failure").path("stage").asText()).isEqualTo("INGESTION");
        assertThat(done.path("failure").path("reason").asText()).contains("3").contains("meh");
    }

    @Test
    @Order(3)
    void aJobCancelledDuringTrainingEndsCancelled() throws Exception {
        String jobId = "e2e-cancel-" + run;
        ObjectNode job = exampleJob(jobId);
        ((ObjectNode) job.path("hyperparameters")).put("epochs", 200);
        publishWithKcat(job);

        // The registry knows the job only once it has consumed its first event: 404 until then.
        await().atMost(JOB_TIMEOUT)
                .pollInterval(Duration.ofSeconds(1))
                .ignoreExceptions()
                .until(
                        () ->
                                get("/api/v1/jobs/" + jobId).path("progress").path("step").asLong()
                                        > 0);
        HttpResponse<String> cancel =
                http.send(
                        HttpRequest.newBuilder(
                                        URI.create(
                                                REGISTRY
                                                        + "/api/v1/jobs/"
                                                        + jobId
                                                        + "/cancel?reason=e2e"))
                                .header("Authorization", "Bearer " + TOKEN)
                                .POST(HttpRequest.BodyPublishers.noBody())
                                .build(),
                        HttpResponse.BodyHandlers.ofString());
        assertThat(cancel.statusCode()).as(cancel.body()).isEqualTo(202);

        JsonNode done = awaitTerminal(jobId);
        assertThat(done.path("status").asText()).as(done.toString()).isEqualTo("CANCELLED");
        assertThat(done.path("status_message").asText()).contains("cancelled: e2e");
        assertThat(keysOn("finetune.jobs.control")).contains(jobId);
    }

    @Test
    @Order(4)
    void everyDashboardQueryReturnsDataFromTheRealPrometheus() throws Exception {
        serveTheRegisteredVersion();
        // Wait until Prometheus has scraped every service (serving included) twice after the last
        // job and the last serving request, so that rate() has two samples of each new series.
        Instant lastJob = Instant.now().plusSeconds(2 * SCRAPE_INTERVAL_SECONDS);
        await().atMost(Duration.ofSeconds(60))
                .pollInterval(Duration.ofSeconds(1))
                .until(
                        () -> {
                            JsonNode r =
                                    prometheus(
                                            "/api/v1/query?query="
                                                    + enc(
                                                            "min(timestamp(up{job=\"tuneline\"})) and count(up{job=\"tuneline\"} == 1) == 6"));
                            JsonNode v =
                                    r.path("data").path("result").path(0).path("value").path(1);
                            return !v.isMissingNode()
                                    && Double.parseDouble(v.asText()) > lastJob.getEpochSecond();
                        });

        Instant started = LocalStack.started();
        Instant end = Instant.now();
        long window = Math.max(60, Duration.between(started, end).toSeconds() + 30);
        List<String> empty = new ArrayList<>();
        List<String> skipped = new ArrayList<>();
        int checked = 0;
        try (var files = Files.list(root.resolve("deploy/grafana/dashboards"))) {
            for (Path file : files.sorted().toList()) {
                JsonNode dashboard = LocalStack.JSON.readTree(file.toFile());
                for (JsonNode panel : dashboard.path("panels")) {
                    for (JsonNode target : panel.path("targets")) {
                        String expr = target.path("expr").asText();
                        if (expr.isEmpty()) {
                            continue;
                        }
                        String where = file.getFileName() + " / " + panel.path("title").asText();
                        String skip =
                                SKIPPED_QUERIES.keySet().stream()
                                        .filter(expr::contains)
                                        .findFirst()
                                        .orElse(null);
                        if (skip != null) {
                            skipped.add(where + ": " + SKIPPED_QUERIES.get(skip));
                            continue;
                        }
                        String query =
                                expr.replace("$namespace", ".*")
                                        .replace("$service", ".*")
                                        .replace("$__rate_interval", "30s")
                                        .replace("$__range", window + "s");
                        JsonNode result =
                                prometheus(
                                        "/api/v1/query_range?query="
                                                + enc(query)
                                                + "&start="
                                                + started.minusSeconds(30).getEpochSecond()
                                                + "&end="
                                                + end.getEpochSecond()
                                                + "&step=5");
                        assertThat(result.path("status").asText())
                                .as("%s: %s", where, result)
                                .isEqualTo("success");
                        if (result.path("data").path("result").isEmpty()) {
                            empty.add(where + ": " + query);
                        }
                        checked++;
                    }
                }
            }
        }
        System.out.printf(
                "dashboard queries: %d checked, %d skipped:%n  %s%n",
                checked, skipped.size(), String.join("\n  ", skipped));
        assertThat(checked).isGreaterThan(20);
        assertThat(empty).as("dashboard queries without data").isEmpty();

        JsonNode rules = prometheus("/api/v1/rules");
        List<String> loaded = new ArrayList<>();
        for (JsonNode group : rules.path("data").path("groups")) {
            for (JsonNode rule : group.path("rules")) {
                assertThat(rule.path("health").asText())
                        .as(rule.path("name").asText())
                        .isEqualTo("ok");
                loaded.add(rule.path("name").asText());
            }
        }
        Matcher m =
                Pattern.compile("(?m)^\\s*- alert: (\\S+)")
                        .matcher(
                                Files.readString(
                                        root.resolve("deploy/prometheus/tuneline.rules.yml")));
        List<String> declared = new ArrayList<>();
        while (m.find()) {
            declared.add(m.group(1));
        }
        assertThat(declared).isNotEmpty();
        assertThat(loaded).containsAll(declared);
    }

    @Test
    @Order(5)
    void theCommandLineClientSaysWhyAJobIsRefusedWithoutLoggingNoise() throws Exception {
        ObjectNode job = exampleJob("e2e-cli-" + run);
        job.putObject("method").putObject("adapter").put("placement", "parallel");
        Path file = Files.createTempFile(LocalStack.HOME.getParent(), "adapter-job-", ".json");
        Files.writeString(file, job.toString());

        LocalStack.Result published = LocalStack.platform("publish", file.toString(), "--watch");
        assertThat(published.output())
                .as("./platform publish --watch")
                .contains("method.adapter.placement: \"parallel\" is not one of")
                .doesNotContain("SLF4J")
                .doesNotContain("LogManager")
                .doesNotContainPattern("(?m)^\\s+at [a-z]+\\.");
        LocalStack.Result jobs = LocalStack.platform("jobs");
        assertThat(jobs.exit()).as(jobs.output()).isZero();
        assertThat(jobs.output()).contains("e2e-cli-" + run).doesNotContain("SLF4J");
    }

    /**
     * A method that cannot be merged, from its example file as a user submits it: the worker writes
     * the base, the method's state and PEFT's adapter; evaluation rebuilds base + method and scores
     * it above the untuned model; the registry offers every file for download. The job also asks
     * for the real-scenario test: the run, still unregistered, is loaded into the serving service
     * that test 4 started and the test split is replayed through {@code /classify}; every served
     * label must equal the offline evaluation's (the gate requires it).
     */
    @Test
    @Order(6)
    void theExamplePromptTuningJobIsTrainedEvaluatedAndRegisteredAsBasePlusMethod()
            throws Exception {
        ObjectNode example =
                (ObjectNode)
                        LocalStack.JSON.readTree(
                                root.resolve("examples/sentiment-prompt.json").toFile());
        ObjectNode evaluation =
                example.has("evaluation")
                        ? (ObjectNode) example.get("evaluation")
                        : example.putObject("evaluation");
        evaluation
                .putObject("scenario")
                .put("max_requests", 16)
                .put("concurrency", 4)
                .put("max_error_rate", 0.0001)
                .put("min_agreement", 1.0);
        Path file = Files.createTempFile("sentiment-prompt-scenario", ".json");
        LocalStack.JSON.writeValue(file.toFile(), example);
        String jobId = submitFile(file);

        JsonNode job = awaitTerminal(jobId);
        assertThat(job.path("status").asText()).as(job.toString()).isEqualTo("SUCCEEDED");
        String model = job.path("registered").path("model").asText();
        long version = job.path("registered").path("version").asLong();
        JsonNode v = get("/api/v1/models/" + model + "/versions/" + version);
        double tuned =
                v.path("metrics").path("tuned_metrics").path("macro_f1").path("value").asDouble();
        double base =
                v.path("metrics").path("base_metrics").path("macro_f1").path("value").asDouble();
        assertThat(tuned).as(v.toString()).isGreaterThan(base);
        List<String> names = new ArrayList<>();
        get("/api/v1/models/" + model + "/versions/" + version + "/downloads")
                .forEach(d -> names.add(d.path("name").asText()));
        assertThat(names)
                .contains(
                        "model/model.safetensors",
                        "model/tuneline_method.json",
                        "model/tuneline_method.safetensors",
                        "model/adapter/adapter_config.json",
                        "model/adapter/adapter_model.safetensors");
        JsonNode scenario = v.path("metrics").path("scenario");
        // The test split's examples, at most the 16 asked for.
        long testExamples = v.path("dataset").path("counts").path("test").asLong();
        assertThat(testExamples).isPositive();
        assertThat(scenario.path("requests").asLong())
                .as(v.toString())
                .isEqualTo(Math.min(16, testExamples));
        assertThat(scenario.path("errors").asLong()).as(scenario.toString()).isZero();
        assertThat(scenario.path("agreement").asDouble()).as(scenario.toString()).isEqualTo(1.0);
        assertThat(scenario.path("p95_ms").asDouble()).isGreaterThan(0);
        assertThat(scenario.path("model").asText()).endsWith(":candidate");
        // The candidate was unloaded once the scenario ended.
        assertThat(get8085("/v1/models").toString()).doesNotContain(":candidate");
    }

    private JsonNode get8085(String path) throws Exception {
        HttpResponse<String> r =
                http.send(
                        HttpRequest.newBuilder(URI.create("http://127.0.0.1:8085" + path)).build(),
                        HttpResponse.BodyHandlers.ofString());
        return LocalStack.JSON.readTree(r.body());
    }

    /**
     * The method-comparison example as a user submits it: five methods trained on one prepared
     * dataset with the same budget, each evaluated on the same test split, the best registered with
     * the comparison report (JSON and the chart page) among its downloads.
     */
    @Test
    @Order(7)
    void theExampleComparisonTrainsEveryMethodAndRegistersTheBestWithTheReport() throws Exception {
        String jobId = submitExample("sentiment-compare.json");

        JsonNode job = awaitTerminal(jobId);
        assertThat(job.path("status").asText()).as(job.toString()).isEqualTo("SUCCEEDED");
        assertThat(job.path("method").asText()).isEqualTo("COMPARISON");
        String model = job.path("registered").path("model").asText();
        long version = job.path("registered").path("version").asLong();
        assertThat(model).isEqualTo("sentiment-compare-demo");
        JsonNode v = get("/api/v1/models/" + model + "/versions/" + version);
        assertThat(v.path("job_id").asText()).isEqualTo(jobId);

        Map<String, JsonNode> files = new java.util.HashMap<>();
        get("/api/v1/models/" + model + "/versions/" + version + "/downloads")
                .forEach(d -> files.put(d.path("name").asText(), d));
        assertThat(files).containsKeys("comparison.json", "comparison.html");
        JsonNode report = LocalStack.JSON.readTree(download(files.get("comparison.json")));
        assertThat(new String(download(files.get("comparison.html")), StandardCharsets.UTF_8))
                .contains("<svg")
                .contains("peak memory (MiB)");

        List<String> methods = new ArrayList<>();
        report.path("methods").forEach(m -> methods.add(m.path("method").asText()));
        assertThat(methods).containsExactly("full", "lora", "prefix", "adapter", "qlora");
        String best = report.path("best").asText();
        assertThat(v.path("method").asText()).isEqualTo(best.toUpperCase(java.util.Locale.ROOT));
        double bestF1 = Double.NaN;
        java.util.Set<Long> steps = new java.util.HashSet<>();
        Map<String, Long> trainable = new java.util.HashMap<>();
        for (JsonNode m : report.path("methods")) {
            String name = m.path("method").asText();
            JsonNode f1 = m.path("macro_f1");
            assertThat(f1.path("ci_lower").asDouble())
                    .as(name)
                    .isLessThanOrEqualTo(f1.path("value").asDouble());
            assertThat(f1.path("ci_upper").asDouble())
                    .as(name)
                    .isGreaterThanOrEqualTo(f1.path("value").asDouble());
            assertThat(m.path("peak_memory_bytes").asLong()).as(name).isPositive();
            assertThat(m.path("tokens_per_second").asDouble()).as(name).isPositive();
            assertThat(m.path("wall_seconds").asDouble()).as(name).isPositive();
            steps.add(m.path("steps").asLong());
            trainable.put(name, m.path("trainable_parameters").asLong());
            if (name.equals(best)) {
                bestF1 = f1.path("value").asDouble();
            }
        }
        // The same step budget for every method; full fine-tuning trains every weight.
        assertThat(steps).hasSize(1);
        assertThat(trainable.get("full")).isGreaterThan(trainable.get("lora"));
        for (JsonNode m : report.path("methods")) {
            if (m.path("gate_passed").asBoolean()) {
                assertThat(m.path("macro_f1").path("value").asDouble())
                        .as(m.path("method").asText())
                        .isLessThanOrEqualTo(bestF1);
            }
        }
        assertThat(
                        v.path("metrics")
                                .path("tuned_metrics")
                                .path("macro_f1")
                                .path("value")
                                .asDouble())
                .isEqualTo(bestF1);
        assertThat(
                        keysOn(io.tuneline.common.topic.Topics.TRAINING_COMPLETED).stream()
                                .filter(jobId::equals))
                .hasSize(5);
    }

    /** Submits {@code examples/<file>} with {@code ./platform submit --new-id}; its job id. */
    private String submitExample(String file) throws Exception {
        return submitFile(root.resolve("examples/" + file));
    }

    private String submitFile(Path file) throws Exception {
        LocalStack.Result submitted = LocalStack.platform("submit", file.toString(), "--new-id");
        assertThat(submitted.exit()).as(submitted.output()).isZero();
        Matcher id = Pattern.compile("submitted job (\\S+)").matcher(submitted.output());
        assertThat(id.find()).as(submitted.output()).isTrue();
        return id.group(1);
    }

    /** A download's bytes through its presigned URL, checked against its sha256. */
    private byte[] download(JsonNode file) throws Exception {
        HttpResponse<byte[]> response =
                http.send(
                        HttpRequest.newBuilder(URI.create(file.path("url").asText())).build(),
                        HttpResponse.BodyHandlers.ofByteArray());
        assertThat(response.statusCode()).as(file.toString()).isEqualTo(200);
        assertThat(sha256(response.body())).isEqualTo(file.path("sha256").asText());
        return response.body();
    }

    // --- helpers -----------------------------------------------------------------------------

    /** The record keys on a topic, read from the beginning with kcat. */
    private List<String> keysOn(String topic) throws Exception {
        return LocalStack.kcat(topic, "%k\\n");
    }

    private JsonNode prometheus(String path) throws Exception {
        HttpResponse<String> r =
                http.send(
                        HttpRequest.newBuilder(URI.create(PROMETHEUS + path)).build(),
                        HttpResponse.BodyHandlers.ofString());
        return LocalStack.JSON.readTree(r.body());
    }

    private static String sha256(byte[] bytes) throws NoSuchAlgorithmException {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    }

    private static String enc(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8);
    }

    /**
     * The serving dashboard's series exist once serving runs and has answered: {@code ./platform
     * serve} with the version the first test registered, a few classify requests, one empty request
     * (400, rejected) and one over {@code max-inputs} (413).
     */
    private void serveTheRegisteredVersion() throws Exception {
        LocalStack.Result serve = LocalStack.platform("serve", "sentiment-demo");
        assertThat(serve.exit()).as("./platform serve:%n%s", serve.output()).isZero();
        String url = "http://127.0.0.1:8085/v1/models/sentiment-demo/classify";
        for (String inputs :
                List.of(
                        "\"a wonderful film\"",
                        "\"dull and far too long\", \"I loved it\"",
                        "\"fine\"")) {
            HttpResponse<String> answer = classify(url, "{\"inputs\": [" + inputs + "]}");
            assertThat(answer.statusCode()).as(answer.body()).isEqualTo(200);
        }
        assertThat(classify(url, "{\"inputs\": []}").statusCode()).isEqualTo(400);
        String tooMany = String.join(", ", java.util.Collections.nCopies(65, "\"x\""));
        assertThat(classify(url, "{\"inputs\": [" + tooMany + "]}").statusCode()).isEqualTo(413);
        followsTheRegistrysAnnouncements(url);
    }

    /**
     * The registry announces stage and alias changes ({@code ModelChanged} on {@code
     * finetune.models.changed}) and serving follows them: an alias change made over the registry's
     * API reaches serving (its consumed-events counter), and once the served version is promoted,
     * {@code sentiment-demo:production} names it. Serving reads from the newest record on, so an
     * announcement sent before its consumer was assigned its partitions is missed: the alias is set
     * and removed again until one arrives.
     */
    private void followsTheRegistrysAnnouncements(String latestUrl) throws Exception {
        String served =
                LocalStack.JSON
                        .readTree(classify(latestUrl, "{\"inputs\": [\"fine\"]}").body())
                        .path("model")
                        .asText();
        String version = served.substring(served.indexOf(':') + 1);
        String alias = REGISTRY + "/api/v1/models/sentiment-demo/aliases/e2e-follow";
        boolean[] set = {false};
        await().atMost(Duration.ofSeconds(90))
                .pollInterval(Duration.ofSeconds(2))
                .until(
                        () -> {
                            HttpResponse<String> r =
                                    registryWrite(
                                            set[0] ? "DELETE" : "PUT",
                                            alias,
                                            "{\"version\": " + version + "}");
                            assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
                            set[0] = !set[0];
                            return servingMetric(
                                            "tuneline_events_consumed_total",
                                            "type=\"tuneline.v1.ModelChanged\"",
                                            "outcome=\"processed\"")
                                    > 0;
                        });
        HttpResponse<String> promoted =
                registryWrite(
                        "PUT",
                        REGISTRY + "/api/v1/models/sentiment-demo/versions/" + version + "/stage",
                        "{\"stage\": \"PRODUCTION\", \"reason\": \"e2e\"}");
        assertThat(promoted.statusCode()).as(promoted.body()).isEqualTo(200);
        HttpResponse<String> byStage =
                classify(
                        "http://127.0.0.1:8085/v1/models/sentiment-demo:production/classify",
                        "{\"inputs\": [\"fine\"]}");
        assertThat(byStage.statusCode()).as(byStage.body()).isEqualTo(200);
        assertThat(LocalStack.JSON.readTree(byStage.body()).path("model").asText())
                .isEqualTo(served);
    }

    private HttpResponse<String> registryWrite(String method, String url, String body)
            throws Exception {
        return http.send(
                HttpRequest.newBuilder(URI.create(url))
                        .header("Authorization", "Bearer " + TOKEN)
                        .header("X-Tuneline-Actor", "e2e")
                        .header("Content-Type", "application/json")
                        .method(
                                method,
                                method.equals("DELETE")
                                        ? HttpRequest.BodyPublishers.noBody()
                                        : HttpRequest.BodyPublishers.ofString(body))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
    }

    /**
     * The sum of serving's series {@code name} over the lines having every one of {@code labels}.
     */
    private double servingMetric(String name, String... labels) throws Exception {
        String text =
                http.send(
                                HttpRequest.newBuilder(
                                                URI.create("http://127.0.0.1:8085/q/metrics"))
                                        .build(),
                                HttpResponse.BodyHandlers.ofString())
                        .body();
        return text.lines()
                .filter(l -> l.startsWith(name + "{"))
                .filter(l -> java.util.Arrays.stream(labels).allMatch(l::contains))
                .mapToDouble(l -> Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1)))
                .sum();
    }

    private HttpResponse<String> classify(String url, String body) throws Exception {
        return http.send(
                HttpRequest.newBuilder(URI.create(url))
                        .header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(body))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
    }
}
