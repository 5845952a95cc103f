package io.tuneline.registry;

import static io.restassured.RestAssured.given;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;
import static org.hamcrest.Matchers.equalTo;

import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.common.http.TestHTTPResource;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.path.json.JsonPath;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.topic.Topics;
import io.tuneline.proto.v1.CancelJob;
import io.tuneline.proto.v1.EvaluationCompleted;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.JobStatus;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.proto.v1.ModelRegistered;
import io.tuneline.proto.v1.TrainingProgress;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.KafkaTestClient;
import io.tuneline.testing.S3ProxyResource;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.URL;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The registry as the pipeline's last stage, driven through Kafka. */
@QuarkusTest
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class RegistrationFlowTest {
    private static final Duration WAIT = Duration.ofSeconds(30);

    @TestHTTPResource("/")
    URL base;

    private KafkaTestClient kafka;

    @BeforeEach
    void connect() {
        kafka = KafkaTestClient.forApplication();
    }

    @AfterEach
    void disconnect() {
        kafka.close();
    }

    private JsonPath awaitJob(String jobId, String status) {
        await().atMost(WAIT)
                .untilAsserted(
                        () ->
                                given().get("/api/v1/jobs/" + jobId)
                                        .then()
                                        .statusCode(200)
                                        .body("status", equalTo(status)));
        return given().get("/api/v1/jobs/" + jobId).then().extract().jsonPath();
    }

    private List<ModelRegistered> registeredFor(String jobId, int atLeast) {
        List<ConsumerRecord<String, byte[]>> records =
                kafka.readUntil(
                        Topics.MODELS_REGISTERED,
                        rs -> rs.stream().filter(r -> jobId.equals(r.key())).count() >= atLeast,
                        WAIT);
        return records.stream()
                .filter(r -> jobId.equals(r.key()))
                .map(r -> Fixtures.CODEC.decode(r, ModelRegistered.getDefaultInstance()).payload())
                .toList();
    }

    /** The first event on {@code topic} for {@code jobId}, decoded. */
    private <T extends com.google.protobuf.Message> T firstFor(String topic, String jobId, T type) {
        ConsumerRecord<String, byte[]> record =
                kafka
                        .readUntil(
                                topic, rs -> rs.stream().anyMatch(r -> jobId.equals(r.key())), WAIT)
                        .stream()
                        .filter(r -> jobId.equals(r.key()))
                        .findFirst()
                        .orElseThrow();
        return Fixtures.CODEC.decode(record, type).payload();
    }

    @Test
    void anEvaluatedJobBecomesTheNextVersionAndTheJobSucceeds() {
        JobRequested first = Fixtures.job("flow-1", "flow-model", 1e-3, "candidate");
        Fixtures.publish(kafka, Topics.JOBS_REQUESTED, first);
        Fixtures.publish(
                kafka,
                Topics.EVALUATIONS_COMPLETED,
                Fixtures.evaluation(first, 0.9, true, Fixtures.defaultFiles("flow-1")));

        JsonPath job = awaitJob("flow-1", "SUCCEEDED");
        assertThat(job.getString("registered.model")).isEqualTo("flow-model");
        assertThat(job.getInt("registered.version")).isEqualTo(1);
        assertThat(job.getList("timeline.summary.status", String.class))
                .contains("REGISTERING", "SUCCEEDED");
        ModelRegistered event = registeredFor("flow-1", 1).get(0);
        assertThat(event.getVersion()).isEqualTo(1);
        assertThat(event.getAliasesList()).containsExactly("candidate");
        assertThat(event.getModel().getUri()).endsWith("flow-1/model.safetensors");

        JobRequested second = Fixtures.job("flow-2", "flow-model", 5e-4, "candidate");
        Fixtures.publish(kafka, Topics.JOBS_REQUESTED, second);
        Fixtures.publish(
                kafka,
                Topics.EVALUATIONS_COMPLETED,
                Fixtures.evaluation(second, 0.95, true, Fixtures.defaultFiles("flow-2")));
        awaitJob("flow-2", "SUCCEEDED");

        JsonPath version =
                given().get("/api/v1/models/flow-model/versions/candidate")
                        .then()
                        .statusCode(200)
                        .extract()
                        .jsonPath();
        assertThat(version.getInt("version")).isEqualTo(2);
        assertThat(version.getString("method")).isEqualTo("LORA");
        assertThat(version.getDouble("hyperparameters.learning_rate")).isEqualTo(5e-4);
        assertThat(version.getDouble("metrics.tuned_metrics.macro_f1.value")).isEqualTo(0.95);
        // The headline metric of each version is on /q/metrics, labelled with its version.
        String scraped = given().get("/q/metrics").then().statusCode(200).extract().asString();
        assertThat(scraped)
                .containsPattern(
                        "tuneline_registry_version_metric\\{[^}]*metric=\"macro_f1\"[^}]*model=\"flow-model\"[^}]*version=\"2\"[^}]*} 0\\.95")
                .containsPattern(
                        "(?m)^tuneline_registry_versions_registered_total(\\{[^}]*})? [1-9]")
                .doesNotContain("_total_total");
        assertThat(version.getString("dataset.raw_sha256")).isEqualTo("a".repeat(64));
        JsonPath history =
                given().get("/api/v1/models/flow-model/history").then().extract().jsonPath();
        assertThat(history.getList("findAll { it.kind == 'ALIAS' }.to", String.class))
                .containsExactly("1", "2");
        assertThat(history.getList("findAll { it.kind == 'ALIAS' }.from", String.class))
                .containsExactly(null, "1");
    }

    @Test
    void theCommandLineClientWatchesAJobToItsEvaluationTableAndListsModels() {
        JobRequested job = Fixtures.job("flow-cli", "cli-model", 1e-3);
        Fixtures.publish(kafka, Topics.JOBS_REQUESTED, job);
        Fixtures.publish(
                kafka,
                Topics.EVALUATIONS_COMPLETED,
                Fixtures.evaluation(job, 0.9, true, Fixtures.defaultFiles("flow-cli")));
        awaitJob("flow-cli", "SUCCEEDED");

        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        var cli =
                new io.tuneline.registry.cli.TunelineCli(
                        java.util.Map.of(
                                "TUNELINE_REGISTRY_URL", base.toString().replaceAll("/$", "")),
                        new java.io.PrintStream(out, true, StandardCharsets.UTF_8));
        assertThat(cli.run(List.of("watch", "flow-cli"))).isZero();
        assertThat(out.toString(StandardCharsets.UTF_8))
                .contains("requested: sentiment flow-cli (LORA on minilm-l6)")
                .contains("job flow-cli SUCCEEDED")
                .contains("model cli-model version 1")
                .containsPattern(
                        "macro_f1 +0\\.500 \\[0\\.450, 0\\.550\\] +0\\.900 \\[0\\.850, 0\\.950\\] +\\+0\\.400");

        out.reset();
        assertThat(cli.run(List.of("models"))).isZero();
        assertThat(out.toString(StandardCharsets.UTF_8))
                .containsPattern("cli-model +SEQUENCE_CLASSIFICATION +1 +1");
    }

    @Test
    void anInvalidRecordIsDeadLetteredOnceByTheTopicsOwnConsumerOnly() {
        // finetune.jobs.status is the registry's alone: its bad records go to its DLQ from here.
        kafka.publish(Topics.JOBS_STATUS, "flow-garbage", "{not an event");
        List<ConsumerRecord<String, byte[]>> dead =
                kafka.readUntil(
                        Topics.dlq(Topics.JOBS_STATUS),
                        rs -> rs.stream().anyMatch(r -> "flow-garbage".equals(r.key())),
                        WAIT);
        assertThat(dead.stream().filter(r -> "flow-garbage".equals(r.key()))).hasSize(1);

        // finetune.jobs.requested is ingestion's: ingestion dead-letters it, the registry skips
        // it. A valid event after it on the same partition (same key) shows the registry is past.
        kafka.publish(Topics.JOBS_REQUESTED, "flow-garbage-2", "{not an event");
        Fixtures.publish(
                kafka,
                Topics.JOBS_REQUESTED,
                Fixtures.job("flow-garbage-2", "garbage-model", 1e-3));
        awaitJob("flow-garbage-2", "QUEUED");
        try (var consumer = dlqReader()) {
            var infos = consumer.partitionsFor(Topics.dlq(Topics.JOBS_REQUESTED));
            var partitions =
                    (infos == null ? List.<org.apache.kafka.common.PartitionInfo>of() : infos)
                            .stream()
                                    .map(
                                            p ->
                                                    new org.apache.kafka.common.TopicPartition(
                                                            p.topic(), p.partition()))
                                    .toList();
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            var end = consumer.endOffsets(partitions);
            List<String> keys = new java.util.ArrayList<>();
            while (partitions.stream().anyMatch(p -> consumer.position(p) < end.get(p))) {
                consumer.poll(Duration.ofMillis(200)).forEach(r -> keys.add(r.key()));
            }
            assertThat(keys)
                    .as("the registry dead-lettered ingestion's record")
                    .doesNotContain("flow-garbage-2");
        }
    }

    private static org.apache.kafka.clients.consumer.KafkaConsumer<String, byte[]> dlqReader() {
        java.util.Properties props = new java.util.Properties();
        props.put(
                "bootstrap.servers",
                org.eclipse.microprofile.config.ConfigProvider.getConfig()
                        .getValue("kafka.bootstrap.servers", String.class));
        props.put(
                "key.deserializer",
                org.apache.kafka.common.serialization.StringDeserializer.class.getName());
        props.put(
                "value.deserializer",
                org.apache.kafka.common.serialization.ByteArrayDeserializer.class.getName());
        return new org.apache.kafka.clients.consumer.KafkaConsumer<>(props);
    }

    /** One method's evaluation of comparison {@code job}, with its cost figures. */
    private static EvaluationCompleted methodEvaluation(
            JobRequested job,
            String method,
            io.tuneline.proto.v1.MethodSpec spec,
            double f1,
            boolean gatePassed,
            long peakMiB) {
        JobRequested trained = job.toBuilder().clearCompareMethods().setMethod(spec).build();
        String runId = job.getJobId() + "." + method;
        EvaluationCompleted e =
                Fixtures.evaluation(
                        trained,
                        f1,
                        gatePassed,
                        List.of(
                                Fixtures.ref(
                                        "s3://tuneline-test/runs/"
                                                + runId
                                                + "/model/model.safetensors",
                                        "e".repeat(64))));
        return e.toBuilder()
                .setTraining(
                        e.getTraining().toBuilder()
                                .setRunId(runId + "-a1")
                                .setComparedMethod(method)
                                .addAllComparedMethods(List.of("full", "lora", "prefix"))
                                .setTrainableParameters(method.equals("full") ? 22_000_000 : 70_000)
                                .setTotalParameters(22_000_000)
                                .setPeakMemoryBytes(peakMiB * 1024 * 1024)
                                .setTokensPerSecond(1000)
                                .setDurationSeconds(30))
                .build();
    }

    private static JobRequested comparisonJob(String jobId, String model) {
        return Fixtures.job(jobId, model, 1e-3).toBuilder()
                .clearMethod()
                .addCompareMethods(FULL)
                .addCompareMethods(LORA)
                .addCompareMethods(PREFIX)
                .build();
    }

    private static final io.tuneline.proto.v1.MethodSpec FULL =
            io.tuneline.proto.v1.MethodSpec.newBuilder()
                    .setFull(io.tuneline.proto.v1.FullFineTuning.getDefaultInstance())
                    .build();
    private static final io.tuneline.proto.v1.MethodSpec LORA =
            io.tuneline.proto.v1.MethodSpec.newBuilder()
                    .setLora(io.tuneline.proto.v1.LoraParams.newBuilder().setRank(8))
                    .build();
    private static final io.tuneline.proto.v1.MethodSpec PREFIX =
            io.tuneline.proto.v1.MethodSpec.newBuilder()
                    .setPrefix(io.tuneline.proto.v1.PrefixTuningParams.getDefaultInstance())
                    .build();

    @jakarta.inject.Inject io.tuneline.common.store.ArtifactStore store;

    @Test
    void aComparisonRegistersTheBestMethodThatPassedTheGateOnceAllAreEvaluated() throws Exception {
        JobRequested job = comparisonJob("flow-compare", "compare-model");
        Fixtures.publish(kafka, Topics.JOBS_REQUESTED, job);
        Fixtures.publish(
                kafka,
                Topics.EVALUATIONS_COMPLETED,
                methodEvaluation(job, "full", FULL, 0.85, true, 400));
        // Prefix scores highest but fails the gate: LoRA is the best that may be registered.
        Fixtures.publish(
                kafka,
                Topics.EVALUATIONS_COMPLETED,
                methodEvaluation(job, "prefix", PREFIX, 0.97, false, 150));
        await().atMost(WAIT)
                .untilAsserted(
                        () ->
                                assertThat(
                                                given().get("/api/v1/jobs/flow-compare")
                                                        .then()
                                                        .extract()
                                                        .jsonPath()
                                                        .getString("status_message"))
                                        .isEqualTo(
                                                "prefix evaluated (2 of 3 methods); waiting for"
                                                        + " lora"));
        given().get("/api/v1/models/compare-model").then().statusCode(404);

        Fixtures.publish(
                kafka,
                Topics.EVALUATIONS_COMPLETED,
                methodEvaluation(job, "lora", LORA, 0.92, true, 120));
        JsonPath done = awaitJob("flow-compare", "SUCCEEDED");
        assertThat(done.getString("method")).isEqualTo("COMPARISON");
        assertThat(done.getString("status_message")).contains("(lora, best of 3 methods compared)");
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        var cli =
                new io.tuneline.registry.cli.TunelineCli(
                        java.util.Map.of(
                                "TUNELINE_REGISTRY_URL", base.toString().replaceAll("/$", "")),
                        new java.io.PrintStream(out, true, StandardCharsets.UTF_8));
        assertThat(cli.run(List.of("watch", "flow-compare"))).isZero();
        assertThat(out.toString(StandardCharsets.UTF_8))
                .contains("(COMPARISON on minilm-l6)")
                .contains("prefix: evaluated: macro_f1 0.970 tuned vs 0.500 base; gate failed")
                .contains("model compare-model version 1")
                .containsPattern("comparison +http\\S+comparison\\.html");

        JsonPath version =
                given().get("/api/v1/models/compare-model/versions/1")
                        .then()
                        .statusCode(200)
                        .extract()
                        .jsonPath();
        assertThat(version.getString("method")).isEqualTo("LORA");
        assertThat(version.getDouble("metrics.tuned_metrics.macro_f1.value")).isEqualTo(0.92);
        assertThat(
                        given().get("/api/v1/models/compare-model/versions/1/downloads")
                                .then()
                                .statusCode(200)
                                .extract()
                                .jsonPath()
                                .getList("name", String.class))
                .contains("comparison.json", "comparison.html", "model/model.safetensors");
        ModelRegistered event = registeredFor("flow-compare", 1).get(0);
        assertThat(event.getModel().getUri()).contains("/runs/flow-compare.lora/");
        assertThat(event.getComparisonReport().getUri())
                .isEqualTo("s3://tuneline-test/reports/flow-compare/comparison.json");

        JsonPath report;
        try (var in = store.get(event.getComparisonReport())) {
            report = new JsonPath(new String(in.readAllBytes(), StandardCharsets.UTF_8));
        }
        assertThat(report.getString("best")).isEqualTo("lora");
        assertThat(report.getString("primary_metric")).isEqualTo("macro_f1");
        assertThat(report.getList("methods.method", String.class))
                .containsExactly("full", "lora", "prefix");
        assertThat(report.getList("methods.macro_f1.value", Double.class))
                .containsExactly(0.85, 0.92, 0.97);
        assertThat(report.getList("methods.macro_f1.ci_lower", Double.class).get(1))
                .isCloseTo(0.87, org.assertj.core.data.Offset.offset(1e-9));
        assertThat(report.getList("methods.peak_memory_bytes", Long.class))
                .containsExactly(400L << 20, 120L << 20, 150L << 20);
        assertThat(report.getList("methods.trainable_parameters", Long.class))
                .containsExactly(22_000_000L, 70_000L, 70_000L);
        assertThat(report.getList("methods.gate_passed", Boolean.class))
                .containsExactly(true, true, false);
        try (var in = store.get(store.uri("reports/flow-compare/comparison.html"))) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8))
                    .contains("<svg")
                    .contains("peak memory (MiB)")
                    .contains("lora (registered)");
        }
    }

    @Test
    void aComparisonWhereNoMethodPassesTheGateFailsNamingEachMethodsReason() {
        JobRequested job = comparisonJob("flow-compare-gated", "compare-gated-model");
        Fixtures.publish(
                kafka,
                Topics.EVALUATIONS_COMPLETED,
                methodEvaluation(job, "full", FULL, 0.4, false, 400));
        Fixtures.publish(
                kafka,
                Topics.EVALUATIONS_COMPLETED,
                methodEvaluation(job, "lora", LORA, 0.4, false, 120));
        Fixtures.publish(
                kafka,
                Topics.EVALUATIONS_COMPLETED,
                methodEvaluation(job, "prefix", PREFIX, 0.4, false, 150));
        JsonPath failed = awaitJob("flow-compare-gated", "FAILED");
        assertThat(failed.getString("failure.code")).isEqualTo("QUALITY_GATE_FAILED");
        assertThat(failed.getString("failure.reason"))
                .contains("full: macro_f1 0.40 < min 0.80")
                .contains("lora: macro_f1 0.40 < min 0.80")
                .contains("prefix: macro_f1 0.40 < min 0.80");
        given().get("/api/v1/models/compare-gated-model").then().statusCode(404);
    }

    @Test
    void aRedeliveredEvaluationRegistersNothingMore() {
        JobRequested job = Fixtures.job("flow-redelivered", "redelivered-model", 1e-3);
        EvaluationCompleted evaluation =
                Fixtures.evaluation(job, 0.9, true, Fixtures.defaultFiles("flow-redelivered"));
        var encoded = Fixtures.CODEC.encode(evaluation);
        kafka.publish(
                Topics.EVALUATIONS_COMPLETED, encoded.key(), encoded.value(), encoded.headers());
        awaitJob("flow-redelivered", "SUCCEEDED");
        kafka.publish(
                Topics.EVALUATIONS_COMPLETED, encoded.key(), encoded.value(), encoded.headers());
        // A marker after the redelivery: once it is applied, the redelivery was handled too.
        Fixtures.publish(
                kafka,
                Topics.EVALUATIONS_COMPLETED,
                Fixtures.evaluation(
                        Fixtures.job("flow-marker", "marker-model", 1e-3),
                        0.9,
                        true,
                        Fixtures.defaultFiles("flow-marker")));
        awaitJob("flow-marker", "SUCCEEDED");

        given().get("/api/v1/models/redelivered-model")
                .then()
                .statusCode(200)
                .body("versions", equalTo(1));
        assertThat(registeredFor("flow-redelivered", 1)).hasSize(1);
    }

    @Test
    void aFailedQualityGateFailsTheJobUnlessRegistrationIsForced() {
        JobRequested gated = Fixtures.job("flow-gated", "gated-model", 1e-3);
        Fixtures.publish(
                kafka,
                Topics.EVALUATIONS_COMPLETED,
                Fixtures.evaluation(gated, 0.4, false, Fixtures.defaultFiles("flow-gated")));
        JsonPath job = awaitJob("flow-gated", "FAILED");
        assertThat(job.getString("failure.code")).isEqualTo("QUALITY_GATE_FAILED");
        assertThat(job.getString("failure.stage")).isEqualTo("REGISTRY");
        assertThat(job.getString("failure.reason"))
                .contains("macro_f1 0.40 < min 0.80")
                .contains("register_on_gate_failure");
        given().get("/api/v1/models/gated-model").then().statusCode(404);

        JobRequested forced = Fixtures.job("flow-forced", "gated-model", 1e-3);
        forced =
                forced.toBuilder()
                        .setRegistration(
                                forced.getRegistration().toBuilder().setRegisterOnGateFailure(true))
                        .build();
        Fixtures.publish(
                kafka,
                Topics.EVALUATIONS_COMPLETED,
                Fixtures.evaluation(forced, 0.4, false, Fixtures.defaultFiles("flow-forced")));
        JsonPath registered = awaitJob("flow-forced", "SUCCEEDED");
        assertThat(registered.getString("status_message")).contains("quality gate failed");
        given().get("/api/v1/models/gated-model/versions/1")
                .then()
                .statusCode(200)
                .body("gate.passed", equalTo(false));
    }

    @Test
    void aJobTooLargeForAKafkaMessageIsRefusedWith413AndAReusedIdWith409() {
        var big = Fixtures.job("flow-too-big", "big-model", 1e-3).toBuilder();
        var inline = io.tuneline.proto.v1.InlineDataset.newBuilder();
        String text = "a review that goes on and on ".repeat(40);
        for (int i = 0; i < 1200; i++) {
            inline.addRecords(
                    com.google.protobuf.Struct.newBuilder()
                            .putFields(
                                    "text",
                                    com.google.protobuf.Value.newBuilder()
                                            .setStringValue(text + i)
                                            .build())
                            .putFields(
                                    "label",
                                    com.google.protobuf.Value.newBuilder()
                                            .setStringValue(i % 2 == 0 ? "pos" : "neg")
                                            .build()));
        }
        big.setDataset(io.tuneline.proto.v1.DatasetSpec.newBuilder().setInline(inline).build());
        given().header("Authorization", "Bearer " + Fixtures.TOKEN)
                .contentType("application/json")
                .body(Fixtures.CODEC.toJson(big.build()))
                .post("/api/v1/jobs")
                .then()
                .statusCode(413)
                .contentType("application/problem+json")
                .body("detail", org.hamcrest.Matchers.containsString("give dataset.uri"));

        String body = Fixtures.CODEC.toJson(Fixtures.job("flow-reused", "reused-model", 1e-3));
        given().header("Authorization", "Bearer " + Fixtures.TOKEN)
                .contentType("application/json")
                .body(body)
                .post("/api/v1/jobs")
                .then()
                .statusCode(202);
        awaitJob("flow-reused", "QUEUED");
        given().header("Authorization", "Bearer " + Fixtures.TOKEN)
                .contentType("application/json")
                .body(Fixtures.CODEC.toJson(Fixtures.job("flow-reused", "other-model", 1e-3)))
                .post("/api/v1/jobs")
                .then()
                .statusCode(409)
                .body("detail", org.hamcrest.Matchers.containsString("already exists"));
        assertThat(
                        given().get("/api/v1/jobs/flow-reused")
                                .then()
                                .extract()
                                .jsonPath()
                                .getString("model_name"))
                .isEqualTo("reused-model");
    }

    @Test
    void aJobSubmittedOverHttpIsPublishedAndItsProgressStreamsLive() throws Exception {
        String body =
                EventCodec.class
                        .cast(Fixtures.CODEC)
                        .toJson(Fixtures.job("flow-sse", "sse-model", 1e-3));
        given().header("Authorization", "Bearer " + Fixtures.TOKEN)
                .contentType("application/json")
                .body(body)
                .post("/api/v1/jobs")
                .then()
                .statusCode(202)
                .header("Location", org.hamcrest.Matchers.endsWith("/api/v1/jobs/flow-sse"))
                .body("job_id", equalTo("flow-sse"));
        JobRequested published =
                firstFor(Topics.JOBS_REQUESTED, "flow-sse", JobRequested.getDefaultInstance());
        assertThat(published.getRegistration().getModelName()).isEqualTo("sse-model");
        awaitJob("flow-sse", "QUEUED");

        List<String> lines = new CopyOnWriteArrayList<>();
        HttpClient http = HttpClient.newHttpClient();
        HttpRequest request =
                HttpRequest.newBuilder(URI.create(base + "api/v1/jobs/flow-sse/events"))
                        .header("Accept", "text/event-stream")
                        .build();
        CompletableFuture<Void> stream =
                http.sendAsync(request, HttpResponse.BodyHandlers.ofInputStream())
                        .thenAccept(
                                response -> {
                                    try (BufferedReader reader =
                                            new BufferedReader(
                                                    new InputStreamReader(
                                                            response.body(),
                                                            StandardCharsets.UTF_8))) {
                                        String line;
                                        while ((line = reader.readLine()) != null) {
                                            if (line.startsWith("data:")) {
                                                lines.add(line.substring(5));
                                            }
                                        }
                                    } catch (java.io.IOException e) {
                                        throw new java.io.UncheckedIOException(e);
                                    }
                                });
        await().atMost(WAIT).until(() -> lines.size() >= 1); // the replayed JobRequested

        for (int step = 1; step <= 3; step++) {
            Fixtures.publish(
                    kafka,
                    Topics.TRAINING_PROGRESS,
                    TrainingProgress.newBuilder()
                            .setJobId("flow-sse")
                            .setStep(step)
                            .setTotalSteps(3)
                            .setLoss(1.0 / step)
                            .build());
        }
        await().atMost(WAIT)
                .until(
                        () ->
                                lines.stream().filter(l -> l.contains("TrainingProgress")).count()
                                        == 3);
        assertThat(stream).isNotDone();

        Fixtures.publish(
                kafka,
                Topics.JOBS_STATUS,
                JobStatusChanged.newBuilder()
                        .setJobId("flow-sse")
                        .setStatus(JobStatus.JOB_STATUS_CANCELLED)
                        .setMessage("cancelled")
                        .build());
        stream.get(
                WAIT.toSeconds(),
                java.util.concurrent.TimeUnit.SECONDS); // ends after the final event
        assertThat(lines.get(lines.size() - 1)).contains("\"terminal\":true").contains("CANCELLED");
        assertThat(lines.stream().filter(l -> l.contains("TrainingProgress")).toList())
                .satisfiesExactly(
                        l -> assertThat(l).contains("\"step\":1"),
                        l -> assertThat(l).contains("\"step\":2"),
                        l -> assertThat(l).contains("\"step\":3"));
    }

    @Test
    void cancellingPublishesCancelJobAndRefusesFinishedOrUnknownJobs() {
        JobRequested job = Fixtures.job("flow-cancel", "cancel-model", 1e-3);
        Fixtures.publish(kafka, Topics.JOBS_REQUESTED, job);
        awaitJob("flow-cancel", "QUEUED");

        given().header("Authorization", "Bearer " + Fixtures.TOKEN)
                .header("X-Tuneline-Actor", "alice")
                .queryParam("reason", "wrong dataset")
                .post("/api/v1/jobs/flow-cancel/cancel")
                .then()
                .statusCode(202);
        CancelJob cancel =
                firstFor(Topics.JOBS_CONTROL, "flow-cancel", CancelJob.getDefaultInstance());
        assertThat(cancel.getReason()).isEqualTo("wrong dataset");
        assertThat(cancel.getRequestedBy()).isEqualTo("alice");

        given().header("Authorization", "Bearer " + Fixtures.TOKEN)
                .post("/api/v1/jobs/no-such-job/cancel")
                .then()
                .statusCode(404)
                .contentType("application/problem+json")
                .body("detail", org.hamcrest.Matchers.containsString("no-such-job"));
    }
}
