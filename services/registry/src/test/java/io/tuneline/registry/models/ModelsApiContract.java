package io.tuneline.registry.models;

import static io.restassured.RestAssured.given;
import static org.assertj.core.api.Assertions.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.hasItems;

import com.google.protobuf.util.JsonFormat;
import io.restassured.path.json.JsonPath;
import io.restassured.specification.RequestSpecification;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.S3Uri;
import io.tuneline.common.topic.Topics;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.ModelChange;
import io.tuneline.proto.v1.ModelChanged;
import io.tuneline.registry.Fixtures;
import io.tuneline.registry.models.ModelRegistrar.Outcome;
import io.tuneline.testing.KafkaTestClient;
import jakarta.inject.Inject;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/**
 * The model API's rules, run on every database the registry supports (one subclass each). Versions
 * are created through the registrar, as an evaluation event would.
 */
abstract class ModelsApiContract {
    @Inject ModelRegistrar registrar;
    @Inject ArtifactStore store;

    private static RequestSpecification writer() {
        return given().header("Authorization", "Bearer " + Fixtures.TOKEN)
                .header("X-Tuneline-Actor", "alice")
                .contentType("application/json");
    }

    /** A fresh model with {@code n} versions; returns its name. */
    private String modelWithVersions(int n) {
        String model = "m-" + UUID.randomUUID().toString().substring(0, 8);
        for (int i = 1; i <= n; i++) {
            JobRequested job = Fixtures.job(model + "-job-" + i, model, 1e-3 * i);
            Outcome outcome =
                    registrar.register(
                            Fixtures.evaluation(
                                    job,
                                    0.8 + i / 100.0,
                                    true,
                                    Fixtures.defaultFiles(job.getJobId())));
            assertThat(outcome).isInstanceOf(Outcome.Registered.class);
        }
        return model;
    }

    @Test
    void promotingToProductionArchivesThePreviousProductionVersion() {
        String model = modelWithVersions(2);
        writer().body(Map.of("stage", "production", "reason", "best F1"))
                .put("/api/v1/models/" + model + "/versions/1/stage")
                .then()
                .statusCode(200)
                .body("stage", equalTo("PRODUCTION"));
        writer().body(Map.of("stage", "PRODUCTION"))
                .put("/api/v1/models/" + model + "/versions/2/stage")
                .then()
                .statusCode(200);

        given().get("/api/v1/models/" + model + "/versions/1")
                .then()
                .body("stage", equalTo("ARCHIVED"));
        given().get("/api/v1/models/" + model).then().body("production_version", equalTo(2));
        JsonPath history =
                given().get("/api/v1/models/" + model + "/history").then().extract().jsonPath();
        assertThat(history.getList("to", String.class))
                .containsExactly("PRODUCTION", "ARCHIVED", "PRODUCTION");
        assertThat(history.getList("actor", String.class)).containsOnly("alice");
        assertThat(history.getString("[0].reason")).isEqualTo("best F1");
    }

    /**
     * Each committed stage or alias change is announced as {@code ModelChanged} on {@code
     * finetune.models.changed}, keyed by the job of the version the request named, with every
     * change it made (a promotion lists the archived predecessor first); a request that changes
     * nothing announces nothing. A stage names its version where no alias of that name exists.
     */
    @Test
    void stageAndAliasChangesAreAnnouncedAndAStageNamesItsVersion() throws Exception {
        String model = modelWithVersions(2);
        String job1 = model + "-job-1";
        String job2 = model + "-job-2";
        given().get("/api/v1/models/" + model + "/versions/production")
                .then()
                .statusCode(404)
                .body("detail", containsString("no version in stage PRODUCTION"));
        writer().body(Map.of("stage", "production", "reason", "best F1"))
                .put("/api/v1/models/" + model + "/versions/1/stage")
                .then()
                .statusCode(200);
        writer().body(Map.of("stage", "production"))
                .put("/api/v1/models/" + model + "/versions/2/stage")
                .then()
                .statusCode(200);
        given().get("/api/v1/models/" + model + "/versions/production")
                .then()
                .statusCode(200)
                .body("version", equalTo(2));
        // Already there: nothing changes, nothing is announced.
        writer().body(Map.of("stage", "production"))
                .put("/api/v1/models/" + model + "/versions/2/stage")
                .then()
                .statusCode(200);
        // An alias of a stage's name wins over the stage.
        writer().body(Map.of("version", 1, "reason", "roll back"))
                .put("/api/v1/models/" + model + "/aliases/production")
                .then()
                .statusCode(200);
        given().get("/api/v1/models/" + model + "/versions/production")
                .then()
                .statusCode(200)
                .body("version", equalTo(1));
        writer().delete("/api/v1/models/" + model + "/aliases/production")
                .then()
                .statusCode(200)
                .body("removed_from_version", equalTo(1));
        given().get("/api/v1/models/" + model + "/versions/production")
                .then()
                .statusCode(200)
                .body("version", equalTo(2));
        writer().body(Map.of("stage", "staging"))
                .put("/api/v1/models/" + model + "/versions/1/stage")
                .then()
                .statusCode(200);
        given().get("/api/v1/models/" + model + "/versions/staging")
                .then()
                .statusCode(200)
                .body("version", equalTo(1));

        List<String> announced;
        try (KafkaTestClient kafka = KafkaTestClient.forApplication()) {
            announced =
                    changesOf(
                            model,
                            kafka.readUntil(
                                    Topics.MODELS_CHANGED,
                                    rs -> changesOf(model, rs).size() >= 5,
                                    java.time.Duration.ofSeconds(60)));
        }
        // key | actor | reason | kind version alias from->to; ...
        assertThat(announced)
                .containsExactlyInAnyOrder(
                        job1 + " | alice | best F1 | STAGE 1 - NONE->PRODUCTION",
                        job2
                                + " | alice |  | STAGE 1 - PRODUCTION->ARCHIVED; STAGE 2 -"
                                + " NONE->PRODUCTION",
                        job1 + " | alice | roll back | ALIAS 1 production ->1",
                        job1 + " | alice |  | ALIAS 1 production 1->",
                        job1 + " | alice |  | STAGE 1 - ARCHIVED->STAGING");
    }

    /** The {@code ModelChanged} events of {@code model} among {@code records}, one line each. */
    private static List<String> changesOf(
            String model,
            List<org.apache.kafka.clients.consumer.ConsumerRecord<String, byte[]>> records) {
        List<String> out = new ArrayList<>();
        for (var r : records) {
            ModelChanged.Builder e = ModelChanged.newBuilder();
            try {
                JsonFormat.parser()
                        .ignoringUnknownFields()
                        .merge(new String(r.value(), StandardCharsets.UTF_8), e);
            } catch (com.google.protobuf.InvalidProtocolBufferException ex) {
                throw new AssertionError("not a ModelChanged: " + ex.getMessage(), ex);
            }
            if (!e.getModelName().equals(model)) {
                continue;
            }
            assertThat(KafkaTestClient.header(r, "ce_type")).isEqualTo("tuneline.v1.ModelChanged");
            assertThat(e.getJobId()).isEqualTo(r.key());
            assertThat(e.hasChangedAt()).isTrue();
            List<String> changes = new ArrayList<>();
            for (ModelChange c : e.getChangesList()) {
                changes.add(
                        c.getKind()
                                + " "
                                + c.getVersion()
                                + " "
                                + (c.getAlias().isEmpty() ? "-" : c.getAlias())
                                + " "
                                + c.getFrom()
                                + "->"
                                + c.getTo());
            }
            out.add(
                    r.key()
                            + " | "
                            + e.getActor()
                            + " | "
                            + e.getReason()
                            + " | "
                            + String.join("; ", changes));
        }
        return out;
    }

    @Test
    void concurrentPromotionsLeaveExactlyOneProductionVersion() throws Exception {
        int n = 6;
        String model = modelWithVersions(n);
        List<Integer> statuses =
                concurrently(
                        n,
                        i ->
                                writer().body(Map.of("stage", "PRODUCTION"))
                                        .put(
                                                "/api/v1/models/"
                                                        + model
                                                        + "/versions/"
                                                        + (i + 1)
                                                        + "/stage")
                                        .statusCode());
        assertThat(statuses).containsOnly(200);

        List<String> stages =
                given().get("/api/v1/models/" + model + "/versions?size=50")
                        .then()
                        .extract()
                        .jsonPath()
                        .getList("items.stage", String.class);
        assertThat(stages).filteredOn("PRODUCTION"::equals).hasSize(1);
        assertThat(stages).filteredOn("ARCHIVED"::equals).hasSize(n - 1);
        // Every promotion but the first archived exactly the version promoted before it.
        List<Map<String, Object>> history =
                given().get("/api/v1/models/" + model + "/history")
                        .then()
                        .extract()
                        .jsonPath()
                        .getList("$");
        assertThat(history).filteredOn(t -> "PRODUCTION".equals(t.get("to"))).hasSize(n);
        assertThat(history).filteredOn(t -> "ARCHIVED".equals(t.get("to"))).hasSize(n - 1);
    }

    @Test
    void concurrentAliasMovesKeepOneTargetAndAnUnbrokenHistory() throws Exception {
        int n = 6;
        String model = modelWithVersions(n);
        List<Integer> statuses =
                concurrently(
                        n,
                        i ->
                                writer().body(Map.of("version", i + 1))
                                        .put("/api/v1/models/" + model + "/aliases/champion")
                                        .statusCode());
        assertThat(statuses).containsOnly(200);

        JsonPath m = given().get("/api/v1/models/" + model).then().extract().jsonPath();
        int target = m.getInt("aliases.champion");
        List<Map<String, Object>> moves =
                given().get("/api/v1/models/" + model + "/history")
                        .then()
                        .extract()
                        .jsonPath()
                        .getList("findAll { it.kind == 'ALIAS' }");
        assertThat(moves).isNotEmpty();
        assertThat(moves.get(0).get("from")).isNull();
        for (int i = 1; i < moves.size(); i++) {
            assertThat(moves.get(i).get("from")).isEqualTo(moves.get(i - 1).get("to"));
        }
        assertThat(moves.get(moves.size() - 1).get("to")).isEqualTo(Integer.toString(target));
        given().get("/api/v1/models/" + model + "/versions/champion")
                .then()
                .body("version", equalTo(target));

        writer().delete("/api/v1/models/" + model + "/aliases/champion")
                .then()
                .statusCode(200)
                .body("removed_from_version", equalTo(target));
        given().get("/api/v1/models/" + model + "/versions/champion").then().statusCode(404);
    }

    @Test
    void writesNeedTheBearerTokenAndReadsDoNot() {
        String model = modelWithVersions(1);
        given().contentType("application/json")
                .body(Map.of("stage", "STAGING"))
                .put("/api/v1/models/" + model + "/versions/1/stage")
                .then()
                .statusCode(401)
                .contentType("application/problem+json")
                .header("WWW-Authenticate", containsString("Bearer"))
                .body("title", equalTo("Unauthorized"));
        given().header("Authorization", "Bearer wrong-" + Fixtures.TOKEN)
                .contentType("application/json")
                .body(Map.of("stage", "STAGING"))
                .put("/api/v1/models/" + model + "/versions/1/stage")
                .then()
                .statusCode(401)
                .body("detail", equalTo("the bearer token is not valid"));
        given().get("/api/v1/models/" + model + "/versions/1")
                .then()
                .statusCode(200)
                .body("stage", equalTo("NONE"));
    }

    @Test
    void badRequestsGetProblemDetailsThatNameTheProblem() {
        String model = modelWithVersions(1);
        writer().body(Map.of("stage", "LIVE"))
                .put("/api/v1/models/" + model + "/versions/1/stage")
                .then()
                .statusCode(400)
                .contentType("application/problem+json")
                .body("detail", containsString("unknown stage 'LIVE'"))
                .body("detail", containsString("PRODUCTION"));
        writer().body(Map.of("stage", "STAGING"))
                .put("/api/v1/models/" + model + "/versions/9/stage")
                .then()
                .statusCode(404)
                .body("detail", equalTo("model '" + model + "' has no version 9"));
        writer().body(Map.of("version", 1))
                .put("/api/v1/models/" + model + "/aliases/Bad Alias!")
                .then()
                .statusCode(400)
                .body("detail", containsString("must match"));
        writer().body(Map.of())
                .put("/api/v1/models/" + model + "/aliases/champion")
                .then()
                .statusCode(400)
                .body("errors[0]", containsString("version"));
        given().get("/api/v1/models/no-such-model")
                .then()
                .statusCode(404)
                .body("detail", equalTo("no model named 'no-such-model'"));
        given().get("/api/v1/jobs?status=RUNNING")
                .then()
                .statusCode(400)
                .body("detail", containsString("unknown job status 'RUNNING'"));
        writer().body("{\"job_id\": \"Bad_Id\", \"base_modle\": {}}")
                .post("/api/v1/jobs")
                .then()
                .statusCode(400)
                .body("detail", containsString("base_modle"));
        writer().body("{\"job_id\": \"no-dataset\", \"base_model\": {\"ref\": \"minilm-l6\"}}")
                .post("/api/v1/jobs")
                .then()
                .statusCode(400)
                .body("title", equalTo("Invalid job"))
                .body("errors", hasItems(containsString("dataset")));
    }

    @Test
    void comparingTwoVersionsShowsMetricDeltasAndChangedParameters() {
        String model = modelWithVersions(2);
        JsonPath c =
                given().get("/api/v1/models/" + model + "/compare?a=1&b=2")
                        .then()
                        .statusCode(200)
                        .extract()
                        .jsonPath();
        assertThat(c.getDouble("metric_deltas.macro_f1"))
                .isCloseTo(0.01, org.assertj.core.data.Offset.offset(1e-9));
        assertThat(c.getList("parameter_differences.path", String.class))
                .contains("hyperparameters.learning_rate");
        assertThat(c.getList("parameter_differences.path", String.class))
                .doesNotContain("hyperparameters.epochs", "method.lora.rank");
    }

    @Test
    void lineageLeadsFromAVersionToItsSourcesAndBack() {
        String model = modelWithVersions(2);
        JsonPath l =
                given().get("/api/v1/models/" + model + "/versions/2/lineage")
                        .then()
                        .statusCode(200)
                        .extract()
                        .jsonPath();
        assertThat(l.getString("job_id")).isEqualTo(model + "-job-2");
        assertThat(l.getString("base_model")).isEqualTo("minilm-l6");
        assertThat(l.getString("dataset.manifest_sha256")).isEqualTo("b".repeat(64));
        assertThat(l.getString("report_uri")).endsWith(model + "-job-2/evaluation.html");
        assertThat(l.getList("same_dataset.job_id", String.class))
                .contains(model + "-job-1", model + "-job-2");

        List<String> jobs =
                given().queryParam("dataset_sha256", "a".repeat(64))
                        .get("/api/v1/lineage/versions")
                        .then()
                        .statusCode(200)
                        .extract()
                        .jsonPath()
                        .getList("job_id", String.class);
        assertThat(jobs).contains(model + "-job-1", model + "-job-2");
        given().get("/api/v1/lineage/versions").then().statusCode(400);
    }

    @Test
    void downloadUrlsServeTheStoredBytesWithTheRegisteredChecksum() throws Exception {
        String jobId = "dl-" + UUID.randomUUID().toString().substring(0, 8);
        byte[] weights = ("weights of " + jobId).repeat(1000).getBytes(StandardCharsets.UTF_8);
        ArtifactRef file =
                store.put(
                        S3Uri.parse(
                                "s3://"
                                        + store.bucket()
                                        + "/models/"
                                        + jobId
                                        + "/model.safetensors"),
                        weights,
                        "application/octet-stream");
        ArtifactRef adapterConfig =
                store.put(
                        io.tuneline.common.store.S3Uri.parse(
                                "s3://"
                                        + store.bucket()
                                        + "/models/"
                                        + jobId
                                        + "/adapter/adapter_config.json"),
                        "{}".getBytes(java.nio.charset.StandardCharsets.UTF_8),
                        "application/json");
        JobRequested job = Fixtures.job(jobId, jobId + "-model", 1e-3);
        registrar.register(Fixtures.evaluation(job, 0.9, true, List.of(file, adapterConfig)));

        List<Map<String, Object>> downloads =
                given().get("/api/v1/models/" + jobId + "-model/versions/1/downloads")
                        .then()
                        .statusCode(200)
                        .extract()
                        .jsonPath()
                        .getList("$");
        // Named by their path in the model directory: an adapter keeps its folder.
        assertThat(downloads)
                .extracting(d -> d.get("name"))
                .contains("model/model.safetensors", "model/adapter/adapter_config.json");
        Map<String, Object> model =
                downloads.stream()
                        .filter(d -> "model/model.safetensors".equals(d.get("name")))
                        .findFirst()
                        .orElseThrow();
        HttpResponse<byte[]> response =
                HttpClient.newHttpClient()
                        .send(
                                HttpRequest.newBuilder(URI.create((String) model.get("url")))
                                        .build(),
                                HttpResponse.BodyHandlers.ofByteArray());
        assertThat(response.statusCode()).isEqualTo(200);
        String sha =
                HexFormat.of()
                        .formatHex(MessageDigest.getInstance("SHA-256").digest(response.body()));
        assertThat(sha).isEqualTo(model.get("sha256")).isEqualTo(file.getSha256());
    }

    private interface Call {
        int run(int i) throws Exception;
    }

    /** Runs {@code n} calls at once (released together) and returns their results in order. */
    private static List<Integer> concurrently(int n, Call call) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            CountDownLatch start = new CountDownLatch(1);
            List<Future<Integer>> futures = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int index = i;
                Callable<Integer> task =
                        () -> {
                            start.await();
                            return call.run(index);
                        };
                futures.add(pool.submit(task));
            }
            start.countDown();
            List<Integer> results = new ArrayList<>();
            for (Future<Integer> f : futures) {
                results.add(f.get());
            }
            return results;
        } finally {
            pool.shutdownNow();
        }
    }
}
