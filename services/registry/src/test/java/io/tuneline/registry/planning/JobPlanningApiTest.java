package io.tuneline.registry.planning;

import static io.restassured.RestAssured.given;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.hasItem;

import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.path.json.JsonPath;
import io.restassured.specification.RequestSpecification;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.topic.Topics;
import io.tuneline.proto.v1.BaseModel;
import io.tuneline.proto.v1.FullFineTuning;
import io.tuneline.proto.v1.Hyperparameters;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.LoraParams;
import io.tuneline.proto.v1.MethodSpec;
import io.tuneline.proto.v1.Resources;
import io.tuneline.proto.v1.Task;
import io.tuneline.registry.Fixtures;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.KafkaTestClient;
import io.tuneline.testing.S3ProxyResource;
import jakarta.inject.Inject;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.Test;

/**
 * Submission with the pre-flight estimate (device memory 16 GiB in the test profile): a dry run
 * answers the estimate and publishes nothing; a job too large for the device is refused with the
 * numbers and the ways out; with {@code resources.auto_fit} it is published with a smaller
 * micro-batch and more accumulation, recorded in its labels.
 */
@QuarkusTest
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class JobPlanningApiTest {
    private static final Duration WAIT = Duration.ofSeconds(30);

    /** TinyLlama-1.1B's config.json: the only file of its directory in the store. */
    static final String TINYLLAMA =
            """
            {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32000,
             "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
             "num_attention_heads": 32, "num_key_value_heads": 4, "hidden_act": "silu",
             "max_position_embeddings": 2048, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
             "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2}
            """;

    static final MethodSpec FULL =
            MethodSpec.newBuilder().setFull(FullFineTuning.getDefaultInstance()).build();
    static final MethodSpec LORA =
            MethodSpec.newBuilder().setLora(LoraParams.getDefaultInstance()).build();

    @Inject ArtifactStore store;

    @io.quarkus.test.common.http.TestHTTPResource("/")
    java.net.URL base;

    private static RequestSpecification writer() {
        return given().header("Authorization", "Bearer " + Fixtures.TOKEN)
                .contentType("application/json");
    }

    /** TinyLlama with {@code method}, 64 sequences of 512 tokens a micro-batch. */
    private JobRequested tinyLlamaJob(String id, MethodSpec method, boolean autoFit) {
        store.put(
                store.uri("models/tinyllama/config.json"),
                TINYLLAMA.getBytes(StandardCharsets.UTF_8),
                "application/json");
        return Fixtures.job(id, id + "-model", 1e-4).toBuilder()
                .setBaseModel(
                        BaseModel.newBuilder()
                                .setRef("s3://" + store.bucket() + "/models/tinyllama/"))
                .setTask(Task.TASK_CAUSAL_LM)
                .setMethod(method)
                .setHyperparameters(
                        Hyperparameters.newBuilder()
                                .setBatchSize(64)
                                .setMaxSeqLength(512)
                                .setLearningRate(1e-4))
                .setResources(Resources.newBuilder().setAutoFit(autoFit))
                .build();
    }

    @Test
    void aDryRunAnswersTheEstimateAndPublishesNothing() {
        JobRequested job = Fixtures.job("plan-dry", "plan-dry-model", 1e-3);
        JsonPath answer =
                writer().body(Fixtures.CODEC.toJson(job))
                        .post("/api/v1/jobs?dry_run=true")
                        .then()
                        .statusCode(200)
                        .body("dry_run", equalTo(true))
                        .extract()
                        .jsonPath();
        // MiniLM with LoRA r=8 on query and value and a two-label head: 6 x 2 x 8 x (384 + 384)
        // + 384 x 2 + 2.
        assertThat(answer.getLong("estimate.trainable_parameters")).isEqualTo(74_498L);
        assertThat(answer.getLong("estimate.peak_bytes"))
                .isGreaterThan(answer.getLong("estimate.weight_bytes"));
        assertThat(answer.getString("summary")).contains("estimated peak memory");

        // A real submission after it is the job's first event: the dry run published nothing.
        writer().body(Fixtures.CODEC.toJson(Fixtures.job("plan-real", "plan-real-model", 1e-3)))
                .post("/api/v1/jobs")
                .then()
                .statusCode(202)
                .body("estimate", containsString("estimated peak memory"));
        try (KafkaTestClient kafka = KafkaTestClient.forApplication()) {
            var records =
                    kafka.readUntil(
                            Topics.JOBS_REQUESTED,
                            rs -> rs.stream().anyMatch(r -> "plan-real".equals(r.key())),
                            WAIT);
            assertThat(records.stream().map(ConsumerRecord::key)).doesNotContain("plan-dry");
            JobRequested published =
                    Fixtures.CODEC
                            .decode(
                                    records.stream()
                                            .filter(r -> "plan-real".equals(r.key()))
                                            .findFirst()
                                            .orElseThrow(),
                                    JobRequested.getDefaultInstance())
                            .payload();
            assertThat(published.getLabelsMap()).containsKey(JobPlanner.ESTIMATE_LABEL);
        }
        await().atMost(WAIT)
                .untilAsserted(
                        () ->
                                given().get("/api/v1/jobs/plan-real")
                                        .then()
                                        .statusCode(200)
                                        .body(
                                                "timeline[0].summary.estimate",
                                                containsString("estimated peak memory")));
        given().get("/api/v1/jobs/plan-dry").then().statusCode(404);
        given().get("/q/metrics")
                .then()
                .body(
                        containsString(
                                "tuneline_job_estimated_peak_memory_bytes_count{method=\"lora\""))
                .body(
                        containsString(
                                "tuneline_job_admissions_total{service=\"registry\",status=\"admitted\"}"));
    }

    @Test
    void aComparisonIsEstimatedByItsMethodThatNeedsTheMostMemory() {
        JobRequested full =
                Fixtures.job("plan-cmp-full", "plan-cmp-model", 1e-3).toBuilder()
                        .setMethod(FULL)
                        .build();
        JobRequested comparison =
                full.toBuilder()
                        .setJobId("plan-cmp")
                        .clearMethod()
                        .addCompareMethods(LORA)
                        .addCompareMethods(FULL)
                        .build();
        JsonPath alone = dryRun(full);
        JsonPath compared = dryRun(comparison);
        assertThat(compared.getLong("estimate.peak_bytes"))
                .isEqualTo(alone.getLong("estimate.peak_bytes"));
        assertThat(compared.getLong("estimate.trainable_parameters"))
                .isEqualTo(alone.getLong("estimate.trainable_parameters"))
                .isGreaterThan(20_000_000L);
    }

    private static JsonPath dryRun(JobRequested job) {
        return writer().body(Fixtures.CODEC.toJson(job))
                .post("/api/v1/jobs?dry_run=true")
                .then()
                .statusCode(200)
                .extract()
                .jsonPath();
    }

    @Test
    void theCliPrintsTheDryRunsEstimateOrTheRefusalsWaysOut() throws Exception {
        java.nio.file.Path dir = java.nio.file.Files.createTempDirectory("plan-cli");
        java.nio.file.Path fits = dir.resolve("fits.json");
        java.nio.file.Files.writeString(
                fits, Fixtures.CODEC.toJson(Fixtures.job("plan-cli", "plan-cli-model", 1e-3)));
        java.nio.file.Path tooBig = dir.resolve("too-big.json");
        java.nio.file.Files.writeString(
                tooBig, Fixtures.CODEC.toJson(tinyLlamaJob("plan-cli-big", LORA, false)));
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        var cli =
                new io.tuneline.registry.cli.TunelineCli(
                        java.util.Map.of(
                                "TUNELINE_REGISTRY_URL", base.toString().replaceAll("/$", "")),
                        new java.io.PrintStream(out, true, StandardCharsets.UTF_8));
        assertThat(cli.run(java.util.List.of("submit", fits.toString(), "--dry-run"))).isZero();
        assertThat(out.toString(StandardCharsets.UTF_8))
                .contains("dry run of job plan-cli: it would be admitted (nothing was submitted)")
                .contains("74,498 trainable of 22,639,874")
                .containsPattern("peak +\\d+\\.\\d\\d GiB");
        assertThatThrownBy(
                        () -> cli.run(java.util.List.of("submit", tooBig.toString(), "--dry-run")))
                .hasMessageContaining("does not fit")
                .hasMessageContaining("\n  - hyperparameters.batch_size");
        given().get("/api/v1/jobs/plan-cli").then().statusCode(404);
    }

    @Test
    void aJobThatDoesNotFitIsRefusedWithTheNumbersAndTheWaysOut() {
        writer().body(Fixtures.CODEC.toJson(tinyLlamaJob("plan-too-big", LORA, false)))
                .post("/api/v1/jobs")
                .then()
                .statusCode(422)
                .contentType("application/problem+json")
                .body("title", equalTo("Job does not fit the device"))
                .body("detail", containsString("of 16.00 GiB on local CPU"))
                .body("detail", containsString("1,126,400 of 1,101,174,784 parameters"))
                .body("errors", hasItem(containsString("gradient_accumulation_steps")))
                .body("errors", hasItem(containsString("resources.auto_fit: true")))
                .body("estimate.trainable_parameters", equalTo(1_126_400));
        given().get("/api/v1/jobs/plan-too-big").then().statusCode(404);
    }

    @Test
    void aJobNoChangeCanFitIsRefusedNamingTheMemoryItNeeds() {
        // Full fine-tuning of 1.1 B parameters: weights, gradients and AdamW's moments alone are
        // 16 bytes a parameter, more than the 16 GiB at any batch.
        writer().body(Fixtures.CODEC.toJson(tinyLlamaJob("plan-never", FULL, true)))
                .post("/api/v1/jobs?dry_run=true")
                .then()
                .statusCode(422)
                .body("detail", containsString("it needs a device with at least"));
    }

    @Test
    void autoFitHalvesTheMicroBatchKeepsTheEffectiveBatchAndRecordsIt() {
        JsonPath dry =
                writer().body(Fixtures.CODEC.toJson(tinyLlamaJob("plan-auto", LORA, true)))
                        .post("/api/v1/jobs?dry_run=true")
                        .then()
                        .statusCode(200)
                        .extract()
                        .jsonPath();
        int micro = dry.getInt("estimate.micro_batch");
        int accumulation = dry.getInt("estimate.accumulation");
        assertThat(micro).isLessThan(64);
        assertThat(micro * accumulation).isEqualTo(64);
        assertThat(dry.getLong("estimate.peak_bytes")).isLessThanOrEqualTo(16L << 30);
        assertThat(dry.getString("auto_fit")).startsWith("batch_size 64 -> " + micro);

        writer().body(Fixtures.CODEC.toJson(tinyLlamaJob("plan-auto", LORA, true)))
                .post("/api/v1/jobs")
                .then()
                .statusCode(202)
                .body("auto_fit", containsString("64 examples per optimizer step kept"));
        try (KafkaTestClient kafka = KafkaTestClient.forApplication()) {
            JobRequested published =
                    Fixtures.CODEC
                            .decode(
                                    kafka
                                            .readUntil(
                                                    Topics.JOBS_REQUESTED,
                                                    rs ->
                                                            rs.stream()
                                                                    .anyMatch(
                                                                            r ->
                                                                                    "plan-auto"
                                                                                            .equals(
                                                                                                    r
                                                                                                            .key())),
                                                    WAIT)
                                            .stream()
                                            .filter(r -> "plan-auto".equals(r.key()))
                                            .findFirst()
                                            .orElseThrow(),
                                    JobRequested.getDefaultInstance())
                            .payload();
            assertThat(published.getHyperparameters().getBatchSize()).isEqualTo(micro);
            assertThat(published.getHyperparameters().getGradientAccumulationSteps())
                    .isEqualTo(accumulation);
            assertThat(published.getLabelsMap().get(JobPlanner.AUTO_FIT_LABEL))
                    .contains("batch_size 64 -> " + micro);
        }
    }
}
