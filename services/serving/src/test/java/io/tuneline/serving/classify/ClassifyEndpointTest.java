package io.tuneline.serving.classify;

import static io.restassured.RestAssured.given;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;
import static org.awaitility.Awaitility.await;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.hasItems;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.export.ClassifierWeights;
import io.tuneline.engine.export.PeftAdapter;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.model.ClassifierPredictions;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.nn.NativeCopy;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.serving.FakeRegistry;
import io.tuneline.serving.load.LoadedModels;
import io.tuneline.serving.load.ModelQueue;
import io.tuneline.serving.load.SharedBases;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.S3ProxyResource;
import jakarta.inject.Inject;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Classifiers stored as the training worker stores them (a Hugging Face directory with merged
 * weights, plus the method state for a method that cannot be merged), registered, and served: the
 * served probabilities are the engine's predictions of the model that was written, computed as
 * evaluation computes them.
 */
@QuarkusTest
@QuarkusTestResource(S3ProxyResource.class)
@QuarkusTestResource(FakeRegistry.class)
// The registry's announcements travel on a real broker; every test of the module shares it.
@QuarkusTestResource(EmbeddedKafkaResource.class)
class ClassifyEndpointTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> LABELS = List.of("negative", "positive");
    private static final int MAX_LENGTH = 24;
    // A tiny random BERT on MiniLM's vocabulary (its tokenizer.json ships with the engine).
    private static final BertConfig TINY =
            new BertConfig(30522, 32, 2, 4, 64, 40, 2, 1e-12f).withoutDropout();
    private static final List<String> TEXTS =
            List.of(
                    "a wonderful, warm film",
                    "dull and far too long",
                    "I would watch it again tomorrow",
                    "the plot makes no sense at all, and the actors seem bored");

    @Inject ArtifactStore store;
    @Inject LoadedModels models;

    @Test
    void aMergedLoraClassifierAnswersAsTheEngineScoresIt() throws Exception {
        double[][] expected =
                registerClassifier("sentiment-lora", 1, FineTuningMethod.Lora.defaults(), "LORA");
        assertServed("sentiment-lora:1", expected);
        // By alias and as the latest version, the same loaded version answers.
        assertServed("sentiment-lora:champion", expected);
        assertServed("sentiment-lora", expected);
        given().get("/v1/models")
                .then()
                .statusCode(200)
                .body("object", equalTo("list"))
                .body("data.id", hasItems("sentiment-lora:1"));
    }

    @Test
    void aPromptTunedClassifierIsServedAsBasePlusItsMethodState() throws Exception {
        double[][] expected =
                registerClassifier(
                        "sentiment-prompt",
                        2,
                        new FineTuningMethod.Prompt(
                                4, FineTuningMethod.Prompt.Init.RANDOM, List.of()),
                        "PROMPT");
        assertServed("sentiment-prompt:2", expected);
        String metrics = given().get("/q/metrics").then().statusCode(200).extract().asString();
        assertThat(metrics)
                .contains(
                        "tuneline_serving_request_duration_seconds_bucket{endpoint=\"classify\",model=\"sentiment-prompt\"")
                .contains(
                        "tuneline_serving_requests_total{endpoint=\"classify\",model=\"sentiment-prompt\",outcome=\"ok\"")
                .containsPattern("tuneline_serving_loaded_models\\{[^}]*} [1-9]");
    }

    @Inject SharedBases bases;

    @Test
    void twoVersionsOfOneBaseShareItInMemoryAndEachAnswersAsLoadedWhole() throws Exception {
        // The base as a job names it: a Hugging Face directory in the store.
        Path baseDir = writeBase(31);
        String ref = store.uri("bases/tiny-bert/").toString();
        try (var files = Files.list(baseDir)) {
            for (Path f : files.toList()) {
                store.put(
                        store.uri("bases/tiny-bert/" + f.getFileName()),
                        f,
                        "application/octet-stream");
            }
        }
        // Full fine-tuning changes the base's weights, and QLoRA trained on its NF4 rounding:
        // both are loaded whole, on the same base reference. (One at a time, unloaded after:
        // tests hold at most max-loaded-models versions.)
        double[][] full =
                registerOnBase(
                        baseDir, ref, "shared-full", new FineTuningMethod.Full(), "FULL", 43);
        assertServed("shared-full:live", full, 1e-6);
        assertThat(bases.users()).doesNotContainKey(ref);
        assertThat(metric("tuneline_serving_model_parameters_bytes", "shared-full"))
                .isGreaterThan(995_200 * 4);
        unload("shared-full");
        double[][] qlora =
                registerOnBase(
                        baseDir,
                        ref,
                        "shared-qlora",
                        FineTuningMethod.Lora.defaults(),
                        "QLORA",
                        44);
        assertServed("shared-qlora:live", qlora, 1e-6);
        assertThat(bases.users()).doesNotContainKey(ref);
        unload("shared-qlora");
        // A LoRA version trained on another base than the one its reference names now (a base
        // directory overwritten in the store): its merged weights are not base + adapter, so it
        // is loaded whole and answers as it was trained.
        double[][] foreign =
                registerOnBase(
                        writeBase(32),
                        ref,
                        "shared-foreign",
                        FineTuningMethod.Lora.defaults(),
                        "LORA",
                        45);
        assertServed("shared-foreign:live", foreign, 1e-6);
        assertThat(bases.users()).doesNotContainKey(ref);
        unload("shared-foreign");

        double[][] lora =
                registerOnBase(
                        baseDir, ref, "shared-lora", FineTuningMethod.Lora.defaults(), "LORA", 41);
        double[][] prompt =
                registerOnBase(
                        baseDir,
                        ref,
                        "shared-prompt",
                        new FineTuningMethod.Prompt(
                                4, FineTuningMethod.Prompt.Init.RANDOM, List.of()),
                        "PROMPT",
                        42);

        assertServed("shared-lora:live", lora, 1e-5);
        assertServed("shared-prompt:live", prompt, 1e-5);
        assertThat(lora[0][0]).isNotCloseTo(prompt[0][0], within(1e-3));

        // One copy of the base: both versions' encoders compute with the same native arrays.
        SequenceClassifier a = (SequenceClassifier) models.get("shared-lora:live").tunable();
        SequenceClassifier b = (SequenceClassifier) models.get("shared-prompt:live").tunable();
        String embeddings = "embeddings.word_embeddings.weight";
        assertThat(a.namedParameters().get(embeddings).getArray())
                .isSameAs(b.namedParameters().get(embeddings).getArray());
        assertThat(bases.users()).containsEntry(ref, 2);

        // The base counts once, in its own series; each version counts what is its own only.
        // By hand from TINY: embeddings (30522 + 40 + 2) x 32 + LayerNorm 64, two layers of
        // 3 x (32 x 32 + 32) + (32 x 32 + 32) + 64 + (32 x 64 + 64) + (64 x 32 + 32) + 64: 995,200
        // floats.
        double baseBytes = baseMetric(ref);
        assertThat(baseBytes).isEqualTo(995_200 * 4);
        // LoRA r 8 on query and value of two layers, 2 x 2 x (8 x 32 + 32 x 8), and the head
        // 2 x 32 + 2: 2,114 floats.
        assertThat(metric("tuneline_serving_model_parameters_bytes", "shared-lora"))
                .isEqualTo(2_114 * 4);
        assertThat(metric("tuneline_serving_model_parameters_bytes", "shared-prompt"))
                .isPositive()
                .isLessThan(baseBytes / 10);

        // One version unloaded (its alias removed): the other answers as before on the base.
        unload("shared-prompt");
        // The base is released once the unloaded version is closed, right after it leaves.
        await().atMost(Duration.ofSeconds(60))
                .until(() -> Integer.valueOf(1).equals(bases.users().get(ref)));
        assertServed("shared-lora:live", lora, 1e-5);

        // The last one unloaded: the base goes with it.
        FakeRegistry.removeAlias("shared-lora", "live");
        await().atMost(Duration.ofSeconds(60)).until(() -> !bases.users().containsKey(ref));
        assertThat(baseMetric(ref)).isZero();
    }

    /** A random tiny BERT base as a Hugging Face directory. */
    private Path writeBase(int seed) throws Exception {
        EngineRuntime runtime = EngineRuntime.start(0);
        ai.djl.engine.Engine.getInstance().setRandomSeed(seed);
        Path baseDir = Files.createTempDirectory("tiny-base").resolve("base");
        try (Model model = Model.newInstance("b", runtime.device(), EngineRuntime.ENGINE)) {
            SequenceClassifier base = new SequenceClassifier(new BertEncoder(TINY), 2, 0f);
            base.initialize(
                    model.getNDManager(),
                    DataType.FLOAT32,
                    new Shape(1, MAX_LENGTH),
                    new Shape(1, MAX_LENGTH));
            ClassifierWeights.writeDirectory(
                    base,
                    LABELS,
                    tokenizerFile(baseDir.getParent()),
                    JSON.createObjectNode(),
                    baseDir);
        }
        return baseDir;
    }

    /** Removes {@code name}'s alias {@code live} and waits until its version is unloaded. */
    private void unload(String name) {
        FakeRegistry.removeAlias(name, "live");
        await().atMost(Duration.ofSeconds(60))
                .until(
                        () ->
                                models.loaded().stream()
                                        .noneMatch(m -> m.version().id().equals(name + ":1")));
    }

    private static double baseMetric(String ref) {
        String text = given().get("/q/metrics").then().statusCode(200).extract().asString();
        return text.lines()
                .filter(
                        l ->
                                l.startsWith("tuneline_serving_base_parameters_bytes{")
                                        && l.contains("base=\"" + ref + "\""))
                .mapToDouble(l -> Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1)))
                .findFirst()
                .orElse(0);
    }

    private Path tokenizerFile(Path dir) throws Exception {
        Path file = dir.resolve("source-tokenizer.json");
        if (!Files.exists(file)) {
            try (InputStream in =
                    getClass()
                            .getClassLoader()
                            .getResourceAsStream("all-minilm-l6-v2-tokenizer.json")) {
                Files.copy(in, file);
            }
        }
        return file;
    }

    /**
     * A version tuned from the base in {@code baseDir} as the worker writes it (merged weights, the
     * method state or the PEFT adapter under adapter/), registered as version 1 of {@code name}
     * with the alias {@code live} and {@code ref} as its base; returns its offline probabilities.
     */
    private double[][] registerOnBase(
            Path baseDir,
            String ref,
            String name,
            FineTuningMethod method,
            String methodName,
            int seed)
            throws Exception {
        Path out = Files.createTempDirectory(name).resolve("model");
        double[][] expected = writeTuned(method, seed, java.util.Optional.of(baseDir), ref, out);
        FakeRegistry.registerDirectoryOnBase(
                store, out, ref, name, 1, methodName, MAX_LENGTH, "live");
        return expected;
    }

    @Test
    void concurrentRequestsShareOneEngineBatchAndEachGetsItsOwnAnswer() throws Exception {
        registerClassifier("sentiment-batch", 1, FineTuningMethod.Lora.defaults(), "LORA");
        List<String> texts = new java.util.ArrayList<>(TEXTS);
        texts.addAll(
                List.of(
                        "fine",
                        "an hour too long, yet I smiled at the end",
                        "no",
                        "the best thing I saw this year, with a cast that never misses a beat"));
        // Each text alone first: its own request, its own batch.
        List<double[]> alone = new java.util.ArrayList<>();
        for (String t : texts) {
            alone.add(probabilities(classify("sentiment-batch:1", List.of(t)).get(0)));
        }
        double batchesBefore = metric("tuneline_serving_batch_inputs_count", "sentiment-batch");
        double inputsBefore = metric("tuneline_serving_batch_inputs_sum", "sentiment-batch");

        // While the test holds the engine, every request waits; released, they form one batch.
        ModelQueue queue = models.get("sentiment-batch:1").queue();
        java.util.concurrent.ExecutorService clients =
                java.util.concurrent.Executors.newFixedThreadPool(texts.size());
        List<java.util.concurrent.Future<List<Map<String, Object>>>> answers =
                new java.util.ArrayList<>();
        try (ModelQueue.Turn held = queue.awaitTurn()) {
            for (String t : texts) {
                answers.add(clients.submit(() -> classify("sentiment-batch:1", List.of(t))));
            }
            await().atMost(Duration.ofSeconds(30)).until(() -> queue.waiting() == texts.size());
            assertThat(metric("tuneline_serving_queued_requests", "sentiment-batch"))
                    .isEqualTo(texts.size());
            // tuneline.serving.limits.max-queued is 8 in tests: a ninth waiting request is refused.
            given().contentType(ContentType.JSON)
                    .body(Map.of("inputs", List.of("one too many")))
                    .post("/v1/models/sentiment-batch:1/classify")
                    .then()
                    .statusCode(429)
                    .contentType("application/problem+json")
                    .header("Retry-After", "1")
                    .body("status", equalTo(429))
                    .body("detail", containsString("tuneline.serving.limits.max-queued = 8"));
        } finally {
            clients.shutdown();
        }
        for (int i = 0; i < texts.size(); i++) {
            double[] served = probabilities(answers.get(i).get(60, TimeUnit.SECONDS).get(0));
            for (int k = 0; k < LABELS.size(); k++) {
                assertThat(served[k])
                        .as("text %d, %s", i, LABELS.get(k))
                        .isCloseTo(alone.get(i)[k], within(1e-6));
            }
        }
        assertThat(metric("tuneline_serving_batch_inputs_count", "sentiment-batch"))
                .isEqualTo(batchesBefore + 1);
        assertThat(metric("tuneline_serving_batch_inputs_sum", "sentiment-batch"))
                .isEqualTo(inputsBefore + texts.size());
        assertThat(queue.waiting()).isZero();
        assertThat(metric("tuneline_serving_queued_requests", "sentiment-batch")).isZero();
    }

    /**
     * The poll is off in tests ({@code refresh-interval=off}), so what moves a name here is the
     * registry's announcement: a new version ({@code ModelRegistered}) moves the latest, an alias
     * moved or removed ({@code ModelChanged}) moves or drops the alias. A lost announcement is
     * caught up by the poll ({@code followAliases}), and until then the old version answers.
     */
    @Test
    void aliasesAndTheLatestVersionFollowTheRegistryWithoutARestart() throws Exception {
        double[][] first =
                registerClassifier(
                        "sentiment-moving",
                        1,
                        FineTuningMethod.Lora.defaults(),
                        "LORA",
                        21,
                        "production");
        assertServed("sentiment-moving:production", first);
        assertServed("sentiment-moving", first);
        assertThat(classify("sentiment-moving", List.of("x"), "sentiment-moving:1")).hasSize(1);

        // A new version: the latest moves, the alias stays.
        double[][] second =
                registerClassifier(
                        "sentiment-moving", 2, FineTuningMethod.Lora.defaults(), "LORA", 22);
        assertThat(second[0][0]).isNotCloseTo(first[0][0], within(1e-3));
        await().atMost(Duration.ofSeconds(60))
                .untilAsserted(
                        () -> classify("sentiment-moving", List.of("x"), "sentiment-moving:2"));
        assertServed("sentiment-moving", second);
        classify("sentiment-moving:production", List.of("x"), "sentiment-moving:1");

        // The alias moves: it serves version 2, and version 1, which nothing names any more, is
        // unloaded.
        FakeRegistry.moveAlias("sentiment-moving", "production", 2);
        await().atMost(Duration.ofSeconds(60))
                .untilAsserted(
                        () ->
                                classify(
                                        "sentiment-moving:production",
                                        List.of("x"),
                                        "sentiment-moving:2"));
        assertServed("sentiment-moving:production", second);
        await().atMost(Duration.ofSeconds(60))
                .untilAsserted(
                        () ->
                                assertThat(
                                                given().get("/v1/models")
                                                        .then()
                                                        .extract()
                                                        .jsonPath()
                                                        .getList("data.id", String.class))
                                        .contains("sentiment-moving:2")
                                        .doesNotContain("sentiment-moving:1"));
        assertThat(metric("tuneline_serving_model_parameters_bytes", "sentiment-moving", "1"))
                .isZero();
        // Named by its number, version 1 loads again.
        classify("sentiment-moving:1", List.of("x"), "sentiment-moving:1");

        // The announcement of a move back to version 1 is lost: version 2 keeps answering (it
        // is what the instance knows) until the poll resolves the alias again.
        FakeRegistry.moveAliasUnannounced("sentiment-moving", "production", 1);
        classify("sentiment-moving:production", List.of("x"), "sentiment-moving:2");
        models.followAliases();
        classify("sentiment-moving:production", List.of("x"), "sentiment-moving:1");

        // Removed in the registry, the alias answers 404 once the announcement arrives.
        FakeRegistry.removeAlias("sentiment-moving", "production");
        await().atMost(Duration.ofSeconds(60))
                .untilAsserted(
                        () ->
                                given().contentType(ContentType.JSON)
                                        .body(Map.of("inputs", List.of("x")))
                                        .post("/v1/models/sentiment-moving:production/classify")
                                        .then()
                                        .statusCode(404));
    }

    /**
     * A run loaded as a candidate before registration answers on the same endpoint with the same
     * predictions as the version registered from the same files, is never looked up in the
     * registry, and is gone once unloaded; bad names and bodies get 4xx problems.
     */
    @Test
    void aCandidateIsServedFromItsFilesAndUnloaded() throws Exception {
        double[][] expected =
                registerClassifier("sentiment-cand", 1, FineTuningMethod.Lora.defaults(), "LORA");
        List<Map<String, Object>> files = new java.util.ArrayList<>();
        for (var a : FakeRegistry.artifacts("sentiment-cand", 1)) {
            files.add(
                    Map.of(
                            "path", a.path("name").asText().substring("model/".length()),
                            "uri", a.path("uri").asText(),
                            "sha256", a.path("sha256").asText(),
                            "size_bytes", a.path("size_bytes").asLong()));
        }
        given().contentType(ContentType.JSON)
                .body(Map.of("files", files, "method", "LORA", "max_seq_length", MAX_LENGTH))
                .put("/v1/candidates/job-42")
                .then()
                .statusCode(200)
                .body("id", equalTo("job-42:candidate"))
                .body("task", equalTo("classification"));
        assertServed("job-42:candidate", expected);
        assertThat(
                        given().get("/v1/models")
                                .then()
                                .extract()
                                .jsonPath()
                                .getList("data.id", String.class))
                .contains("job-42:candidate");

        given().delete("/v1/candidates/job-42").then().statusCode(204);
        given().contentType(ContentType.JSON)
                .body(Map.of("inputs", TEXTS))
                .post("/v1/models/job-42:candidate/classify")
                .then()
                .statusCode(404)
                .body("detail", org.hamcrest.Matchers.containsString("PUT /v1/candidates"));
        given().delete("/v1/candidates/job-42").then().statusCode(404);
        given().contentType(ContentType.JSON)
                .body(Map.of("files", List.of()))
                .put("/v1/candidates/job-43")
                .then()
                .statusCode(400)
                .body("detail", org.hamcrest.Matchers.containsString("no model files"));
        given().contentType(ContentType.JSON)
                .body(Map.of("files", files))
                .put("/v1/candidates/bad name!")
                .then()
                .statusCode(400)
                .body("detail", org.hamcrest.Matchers.containsString("candidate name"));
    }

    /**
     * The alias moves while clients keep sending requests: every request is answered (200), each by
     * the version the alias named when it was admitted, with that version's predictions, and once a
     * client has seen the new version it never sees the old one again.
     */
    @Test
    void anAliasMovedUnderLoadLosesNoRequest() throws Exception {
        double[][] first =
                registerClassifier(
                        "sentiment-busy", 1, FineTuningMethod.Lora.defaults(), "LORA", 31, "live");
        double[][] second =
                registerClassifier(
                        "sentiment-busy", 2, FineTuningMethod.Lora.defaults(), "LORA", 32);
        assertServed("sentiment-busy:live", first);
        int clients = 4;
        java.util.concurrent.atomic.AtomicBoolean moved =
                new java.util.concurrent.atomic.AtomicBoolean();
        java.util.concurrent.atomic.AtomicBoolean stop =
                new java.util.concurrent.atomic.AtomicBoolean();
        java.util.concurrent.ConcurrentLinkedQueue<String> problems =
                new java.util.concurrent.ConcurrentLinkedQueue<>();
        java.util.concurrent.atomic.AtomicInteger[] answeredBy = {
            new java.util.concurrent.atomic.AtomicInteger(),
            new java.util.concurrent.atomic.AtomicInteger()
        };
        java.util.concurrent.atomic.AtomicInteger afterMove =
                new java.util.concurrent.atomic.AtomicInteger();
        java.util.concurrent.ExecutorService pool =
                java.util.concurrent.Executors.newFixedThreadPool(clients);
        List<java.util.concurrent.Future<?>> running = new java.util.ArrayList<>();
        for (int c = 0; c < clients; c++) {
            running.add(
                    pool.submit(
                            () -> {
                                boolean sawNew = false;
                                // Clients stop only once each has been answered by version 2.
                                while (!stop.get() && !(sawNew && moved.get())) {
                                    var response =
                                            given().contentType(ContentType.JSON)
                                                    .body(Map.of("inputs", TEXTS))
                                                    .post("/v1/models/sentiment-busy:live/classify")
                                                    .then()
                                                    .extract();
                                    if (response.statusCode() != 200) {
                                        problems.add(
                                                response.statusCode() + " " + response.asString());
                                        continue;
                                    }
                                    String by = response.jsonPath().getString("model");
                                    int v = by.equals("sentiment-busy:2") ? 2 : 1;
                                    if (v == 1 && sawNew) {
                                        problems.add("version 1 answered after version 2");
                                    }
                                    sawNew |= v == 2;
                                    answeredBy[v - 1].incrementAndGet();
                                    if (moved.get()) {
                                        afterMove.incrementAndGet();
                                    }
                                    double[][] expected = v == 2 ? second : first;
                                    List<Map<String, Map<String, Number>>> predictions =
                                            response.jsonPath().getList("predictions");
                                    for (int i = 0; i < TEXTS.size(); i++) {
                                        double p =
                                                predictions
                                                        .get(i)
                                                        .get("probabilities")
                                                        .get(LABELS.get(1))
                                                        .doubleValue();
                                        if (Math.abs(p - expected[i][1]) > 1e-6) {
                                            problems.add(
                                                    by
                                                            + " input "
                                                            + i
                                                            + ": "
                                                            + p
                                                            + " is not "
                                                            + expected[i][1]);
                                        }
                                    }
                                }
                            }));
        }
        try {
            await().atMost(Duration.ofSeconds(60)).until(() -> answeredBy[0].get() >= 2 * clients);
            FakeRegistry.moveAlias("sentiment-busy", "live", 2);
            moved.set(true);
            for (java.util.concurrent.Future<?> f : running) {
                f.get(120, java.util.concurrent.TimeUnit.SECONDS);
            }
        } finally {
            stop.set(true);
            pool.shutdownNow();
        }
        assertThat(problems).isEmpty();
        assertThat(answeredBy[1].get()).isGreaterThanOrEqualTo(clients);
        System.out.printf(
                "alias moved under load: %d answers by version 1, %d by version 2 (%d after the"
                        + " move), none lost%n",
                answeredBy[0].get(), answeredBy[1].get(), afterMove.get());
    }

    private static List<Map<String, Object>> classify(
            String model, List<String> inputs, String answeredBy) {
        return given().contentType(ContentType.JSON)
                .body(Map.of("inputs", inputs))
                .post("/v1/models/" + model + "/classify")
                .then()
                .statusCode(200)
                .body("model", equalTo(answeredBy))
                .extract()
                .jsonPath()
                .getList("predictions");
    }

    /** A series' value for {@code model}'s {@code version}, 0 when absent. */
    static double metric(String series, String model, String version) {
        String text = given().get("/q/metrics").then().statusCode(200).extract().asString();
        return text.lines()
                .filter(
                        l ->
                                l.startsWith(series + "{")
                                        && l.contains("model=\"" + model + "\"")
                                        && l.contains("version=\"" + version + "\""))
                .mapToDouble(l -> Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1)))
                .findFirst()
                .orElse(0);
    }

    @Test
    void theParametersOfALoadedVersionAreCountedInBytes() throws Exception {
        registerClassifier("sentiment-size", 1, FineTuningMethod.Lora.defaults(), "LORA");
        classify("sentiment-size:1", List.of("hello"));
        // By hand from TINY (hidden 32, 2 layers, intermediate 64, 40 positions, 2 token types):
        // embeddings 30522*32 + 40*32 + 2*32 + LayerNorm 2*32; per layer Q, K, V and output
        // 4*(32*32+32), two LayerNorms 4*32, intermediate 32*64+64, output 64*32+32; the mean
        // head 32*2+2 (no pooler). LoRA is merged into the stored weights: nothing more. float32.
        long embeddings = 30522 * 32 + 40 * 32 + 2 * 32 + 2 * 32;
        long layer = 4 * (32 * 32 + 32) + 4 * 32 + (32 * 64 + 64) + (64 * 32 + 32);
        long parameters = embeddings + 2 * layer + (32 * 2 + 2);
        assertThat(metric("tuneline_serving_model_parameters_bytes", "sentiment-size"))
                .isEqualTo(4.0 * parameters);
    }

    private static List<Map<String, Object>> classify(String model, List<String> inputs) {
        return given().contentType(ContentType.JSON)
                .body(Map.of("inputs", inputs))
                .post("/v1/models/" + model + "/classify")
                .then()
                .statusCode(200)
                .body("model", equalTo(model))
                .extract()
                .jsonPath()
                .getList("predictions");
    }

    private static double[] probabilities(Map<String, Object> prediction) {
        @SuppressWarnings("unchecked")
        Map<String, Number> p = (Map<String, Number>) prediction.get("probabilities");
        return LABELS.stream().mapToDouble(l -> p.get(l).doubleValue()).toArray();
    }

    /** A series' value for {@code model} in the Prometheus text, 0 when absent. */
    static double metric(String series, String model) {
        String text = given().get("/q/metrics").then().statusCode(200).extract().asString();
        return text.lines()
                .filter(l -> l.startsWith(series + "{") && l.contains("model=\"" + model + "\""))
                .mapToDouble(l -> Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1)))
                .findFirst()
                .orElse(0);
    }

    @Test
    void badRequestsAreProblemDetailsThatNameTheProblem() {
        problem("no-such-model:1", "{\"inputs\": [\"hi\"]}", 404, "no-such-model:1");
        problem("no-such-model", "{\"inputs\": [\"hi\"]}", 404, "no-such-model");
        problem("any", "{\"texts\": [\"hi\"]}", 400, "\"inputs\"");
        problem("any", "{\"inputs\": []}", 400, "\"inputs\" is empty");
        problem("any", "{\"inputs\": [\"ok\", 3]}", 400, "inputs[1]");
        problem("any", "{\"inputs\": [", 400, "JSON");
        String tooMany =
                JSON.createObjectNode()
                        .set(
                                "inputs",
                                JSON.valueToTree(Stream.generate(() -> "x").limit(65).toList()))
                        .toString();
        problem("any", tooMany, 413, "at most 64");
        String tooLong = "{\"inputs\": [\"" + "y".repeat(8193) + "\"]}";
        problem("any", tooLong, 413, "max-input-chars");
        // Past quarkus.http.limits.max-body-size (2M) the body is not even read.
        String huge = "{\"inputs\": [\"" + "z".repeat(3 * 1024 * 1024) + "\"]}";
        problem("any", huge, 413, "max-body-size");
        String metrics = given().get("/q/metrics").then().statusCode(200).extract().asString();
        assertThat(metrics)
                .contains(
                        "tuneline_serving_requests_total{endpoint=\"classify\",model=\"unknown\",outcome=\"rejected\"");
    }

    private static void problem(String model, String body, int status, String detail) {
        given().contentType(ContentType.JSON)
                .body(body)
                .post("/v1/models/" + model + "/classify")
                .then()
                .statusCode(status)
                .contentType("application/problem+json")
                .body("status", equalTo(status))
                .body("detail", containsString(detail));
    }

    private static void assertServed(String model, double[][] expected) {
        assertServed(model, expected, 1e-6);
    }

    private static void assertServed(String model, double[][] expected, double tolerance) {
        Map<String, Object> body = Map.of("inputs", TEXTS);
        var response =
                given().contentType(ContentType.JSON)
                        .body(body)
                        .post("/v1/models/" + model + "/classify")
                        .then()
                        .statusCode(200)
                        .extract()
                        .jsonPath();
        List<Map<String, Object>> predictions = response.getList("predictions");
        assertThat(predictions).hasSize(TEXTS.size());
        for (int i = 0; i < TEXTS.size(); i++) {
            @SuppressWarnings("unchecked")
            Map<String, Number> p = (Map<String, Number>) predictions.get(i).get("probabilities");
            assertThat(p.keySet()).containsExactlyElementsOf(LABELS);
            for (int k = 0; k < LABELS.size(); k++) {
                assertThat(p.get(LABELS.get(k)).doubleValue())
                        .as("%s, input %d, %s", model, i, LABELS.get(k))
                        .isCloseTo(expected[i][k], within(tolerance));
            }
            String best = expected[i][1] > expected[i][0] ? "positive" : "negative";
            assertThat(predictions.get(i).get("label")).isEqualTo(best);
        }
    }

    /**
     * A random tiny classifier with {@code method} applied and its trainable parameters set to
     * random values (an untrained LoRA's B is zero), written and registered as the worker and the
     * registry would; returns its probabilities for {@link #TEXTS} from the model in memory.
     */
    private double[][] registerClassifier(
            String name, long version, FineTuningMethod method, String methodName)
            throws Exception {
        return registerClassifier(name, version, method, methodName, 7, "champion");
    }

    /** As above, with {@code seed} drawing the weights and the version's {@code aliases}. */
    private double[][] registerClassifier(
            String name,
            long version,
            FineTuningMethod method,
            String methodName,
            int seed,
            String... aliases)
            throws Exception {
        Path out = Files.createTempDirectory(name).resolve("model");
        double[][] expected =
                writeTuned(method, seed, java.util.Optional.empty(), "test-base", out);
        FakeRegistry.registerDirectory(store, out, name, version, methodName, MAX_LENGTH, aliases);
        return expected;
    }

    /**
     * A random tiny classifier (its encoder from {@code baseDir} when given) with {@code method}
     * applied and its method's parameters random, written into {@code out} as the worker writes it:
     * merged weights, the method state of a method that cannot be merged, and with a base a LoRA
     * version's PEFT adapter under adapter/. Returns its probabilities for {@link #TEXTS} from the
     * model in memory, as evaluation scores a split.
     */
    private double[][] writeTuned(
            FineTuningMethod method,
            int seed,
            java.util.Optional<Path> baseDir,
            String baseRef,
            Path out)
            throws Exception {
        EngineRuntime runtime = EngineRuntime.start(0);
        ai.djl.engine.Engine.getInstance().setRandomSeed(seed);
        Path tokenizerFile = tokenizerFile(out.getParent());
        double[][] expected;
        SequenceClassifier classifier =
                new SequenceClassifier(new BertEncoder(TINY), LABELS.size(), 0f);
        try (Model model = Model.newInstance("t", runtime.device(), EngineRuntime.ENGINE);
                HuggingFaceTokenizer tokenizer =
                        HuggingFaceTokenizer.newInstance(
                                tokenizerFile,
                                Map.of(
                                        "truncation",
                                        "true",
                                        "padding",
                                        "false",
                                        "maxLength",
                                        Integer.toString(MAX_LENGTH)))) {
            classifier.initialize(
                    model.getNDManager(),
                    DataType.FLOAT32,
                    new Shape(1, MAX_LENGTH),
                    new Shape(1, MAX_LENGTH));
            model.setBlock(classifier);
            if (baseDir.isPresent()) {
                ModelCatalog.resolve(baseDir.get().toString()).loadInto(classifier.encoder());
            }
            method.apply(classifier, model.getNDManager());
            Random random = new Random(seed + 4L);
            for (Parameter p : classifier.deltaParameters().values()) {
                float[] values = new float[(int) p.getArray().size()];
                for (int i = 0; i < values.length; i++) {
                    values[i] = (float) (random.nextGaussian() * 0.2);
                }
                NativeCopy.copyInto(p.getArray(), values);
            }
            // The engine's offline predictions of the model in memory, as evaluation scores a
            // split.
            expected =
                    ClassifierPredictions.probabilities(
                            model, classifier, tokenizer, TEXTS, MAX_LENGTH, TEXTS.size());
            var provenance = JSON.createObjectNode().put("base_model", baseRef);
            ClassifierWeights.writeDirectory(classifier, LABELS, tokenizerFile, provenance, out);
            if (baseDir.isPresent() && method instanceof FineTuningMethod.Lora l) {
                PeftAdapter.write(classifier, l, baseRef, out.resolve("adapter"));
            } else if (!method.mergeable()) {
                MethodState.write(classifier, method, out);
            }
        }
        return expected;
    }
}
