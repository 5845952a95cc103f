package io.tuneline.evaluation.scenario;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.tuneline.evaluation.gate.QualityGateCheck;
import io.tuneline.evaluation.run.EvaluationFailedException;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.BaseModel;
import io.tuneline.proto.v1.Hyperparameters;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.LoraParams;
import io.tuneline.proto.v1.MethodSpec;
import io.tuneline.proto.v1.ScenarioResult;
import io.tuneline.proto.v1.ScenarioSpec;
import io.tuneline.proto.v1.TrainingCompleted;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The scenario against a stand-in serving service (the JDK's HTTP server speaking serving's
 * documented API): the run is loaded as a candidate from its model files, every request is replayed
 * at the concurrency and rate asked, errors and disagreements are counted, and the candidate is
 * unloaded whatever happened.
 */
class ScenarioRunnerTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private HttpServer server;
    private final ConcurrentLinkedQueue<String> calls = new ConcurrentLinkedQueue<>();
    private final AtomicInteger inFlight = new AtomicInteger();
    private final AtomicInteger mostInFlight = new AtomicInteger();
    private volatile JsonNode loaded;
    private volatile int loadStatus = 200;

    @BeforeEach
    void start() throws IOException {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.setExecutor(java.util.concurrent.Executors.newFixedThreadPool(16));
        server.createContext(
                "/v1/candidates/",
                x -> {
                    calls.add(x.getRequestMethod() + " " + x.getRequestURI().getPath());
                    if (x.getRequestMethod().equals("PUT")) {
                        loaded = JSON.readTree(x.getRequestBody());
                        answer(x, loadStatus, "{\"id\": \"job-7-a1:candidate\"}");
                    } else {
                        answer(x, 204, "");
                    }
                });
        server.createContext(
                "/v1/models/",
                x -> {
                    int now = inFlight.incrementAndGet();
                    mostInFlight.accumulateAndGet(now, Math::max);
                    try {
                        JsonNode inputs = JSON.readTree(x.getRequestBody()).path("inputs");
                        Thread.sleep(20);
                        // "error" texts fail; "odd" texts get the other label; one prediction
                        // per input.
                        if (inputs.path(0).asText().startsWith("error")) {
                            answer(x, 500, "{\"title\": \"boom\"}");
                        } else {
                            List<String> predictions = new ArrayList<>();
                            for (JsonNode t : inputs) {
                                String label = t.asText().startsWith("odd") ? "neg" : "pos";
                                predictions.add("{\"label\": \"" + label + "\"}");
                            }
                            answer(
                                    x,
                                    200,
                                    "{\"model\": \"job-7-a1:candidate\", \"predictions\": ["
                                            + String.join(", ", predictions)
                                            + "]}");
                        }
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    } finally {
                        inFlight.decrementAndGet();
                    }
                });
        server.createContext(
                "/v1/chat/completions",
                x -> {
                    String content =
                            JSON.readTree(x.getRequestBody())
                                    .path("messages")
                                    .path(0)
                                    .path("content")
                                    .asText();
                    answer(
                            x,
                            200,
                            "{\"choices\": [{\"message\": {\"role\": \"assistant\","
                                    + " \"content\": \" re: "
                                    + content
                                    + " \"}}]}");
                });
        server.start();
    }

    @AfterEach
    void stop() {
        server.stop(0);
    }

    private static void answer(HttpExchange x, int status, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        x.sendResponseHeaders(status, status == 204 ? -1 : bytes.length);
        if (status != 204) {
            x.getResponseBody().write(bytes);
        }
        x.close();
    }

    private URI url() {
        return URI.create("http://127.0.0.1:" + server.getAddress().getPort());
    }

    private static TrainingCompleted training() {
        return TrainingCompleted.newBuilder()
                .setJobId("job-7")
                .setRunId("job-7-a1")
                .setJob(
                        JobRequested.newBuilder()
                                .setJobId("job-7")
                                .setBaseModel(BaseModel.newBuilder().setRef("minilm-l6"))
                                .setMethod(
                                        MethodSpec.newBuilder()
                                                .setLora(LoraParams.newBuilder().setRank(8)))
                                .setHyperparameters(
                                        Hyperparameters.newBuilder().setMaxSeqLength(48)))
                .addModelFiles(
                        ArtifactRef.newBuilder()
                                .setUri("s3://b/runs/job-7/model/model.safetensors")
                                .setSha256("aa")
                                .setSizeBytes(10))
                .addModelFiles(
                        ArtifactRef.newBuilder()
                                .setUri("s3://b/runs/job-7/model/adapter/adapter_config.json")
                                .setSha256("bb")
                                .setSizeBytes(2))
                .build();
    }

    @Test
    void everyRequestIsReplayedCountedAndCompared() {
        List<String> texts = new ArrayList<>();
        List<String> offline = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            texts.add(i % 10 == 3 ? "error " + i : i % 10 == 5 ? "odd " + i : "text " + i);
            offline.add("pos");
        }
        ScenarioRunner runner = new ScenarioRunner(Optional.of(url()), Optional.empty());
        ScenarioResult r =
                runner.run(
                        training(),
                        ScenarioSpec.newBuilder().setMaxRequests(30).setConcurrency(4).build(),
                        ScenarioRunner.classify("job-7-a1:candidate", texts, offline));

        assertThat(r.getRequests()).isEqualTo(30);
        assertThat(r.getErrors()).isEqualTo(3); // requests 3, 13, 23
        assertThat(r.getErrorRate()).isEqualTo(0.1);
        // 27 answered, 3 of them ("odd") disagree with the offline label.
        assertThat(r.getAgreement())
                .isCloseTo(24.0 / 27, org.assertj.core.data.Offset.offset(1e-12));
        assertThat(r.getExamplesList()).anyMatch(e -> e.contains("HTTP 500"));
        assertThat(r.getExamplesList()).anyMatch(e -> e.contains("served 'neg', offline 'pos'"));
        assertThat(r.getP50Ms()).isGreaterThanOrEqualTo(20).isLessThanOrEqualTo(r.getP95Ms());
        assertThat(r.getP95Ms()).isLessThanOrEqualTo(r.getP99Ms());
        assertThat(r.getModel()).isEqualTo("job-7-a1:candidate");
        assertThat(mostInFlight.get()).isBetween(2, 4);
        // Loaded from the run's model files, paths inside the model directory; then unloaded.
        assertThat(loaded.path("method").asText()).isEqualTo("LORA");
        assertThat(loaded.path("max_seq_length").asInt()).isEqualTo(48);
        assertThat(loaded.path("files").findValuesAsText("path"))
                .containsExactly("model.safetensors", "adapter/adapter_config.json");
        assertThat(calls).startsWith("PUT /v1/candidates/job-7-a1");
        assertThat(calls).endsWith("DELETE /v1/candidates/job-7-a1");

        // The gate reads the limits the job set, and only those.
        assertThat(
                        QualityGateCheck.scenario(
                                ScenarioSpec.newBuilder()
                                        .setMaxErrorRate(0.05)
                                        .setMinAgreement(1.0)
                                        .setMaxP95LatencyMs(100_000)
                                        .build(),
                                r))
                .hasSize(2)
                .anyMatch(s -> s.startsWith("scenario error rate 0.1000 > maximum 0.0500"))
                .anyMatch(s -> s.startsWith("scenario agreement with the offline answers 0.8889"));
        assertThat(QualityGateCheck.scenario(ScenarioSpec.getDefaultInstance(), r)).isEmpty();
    }

    @Test
    void recordedRequestsAreComparedInputByInputAndChatAnswersByTheirContent() throws Exception {
        List<ScenarioRunner.Request> requests = new ArrayList<>();
        for (RecordedRequests.Classify c :
                RecordedRequests.classify(
                        new java.io.ByteArrayInputStream(
                                ("{\"inputs\": [\"fine\", \"odd one\"]}\n"
                                                + "{\"inputs\": [\"odd\", \"fine\"]}")
                                        .getBytes(StandardCharsets.UTF_8)),
                        "r.jsonl",
                        10)) {
            // The offline model says pos, neg for both: the second request's first text differs.
            requests.add(RecordedRequests.request("job-7-a1:candidate", c, List.of("pos", "neg")));
        }
        for (RecordedRequests.Generate g :
                RecordedRequests.generate(
                        new java.io.ByteArrayInputStream(
                                "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}"
                                        .getBytes(StandardCharsets.UTF_8)),
                        "r.jsonl",
                        10,
                        16)) {
            requests.add(RecordedRequests.request("job-7-a1:candidate", g, Optional.of("re: hi")));
        }
        ScenarioResult r =
                new ScenarioRunner(Optional.of(url()), Optional.empty())
                        .run(training(), ScenarioSpec.getDefaultInstance(), requests);
        assertThat(r.getRequests()).isEqualTo(3);
        assertThat(r.getErrors()).isZero();
        assertThat(r.getAgreement()).isCloseTo(2.0 / 3, org.assertj.core.data.Offset.offset(1e-12));
        assertThat(r.getExamplesList())
                .containsExactly("request 1: served 'neg\npos', offline 'pos\nneg'");
    }

    @Test
    void aRateSpacesTheRequestsOut() {
        List<String> texts = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            texts.add("text " + i);
        }
        ScenarioRunner runner = new ScenarioRunner(Optional.of(url()), Optional.empty());
        ScenarioResult r =
                runner.run(
                        training(),
                        ScenarioSpec.newBuilder().setConcurrency(8).setRatePerSecond(20).build(),
                        ScenarioRunner.classify(
                                "job-7-a1:candidate",
                                texts,
                                java.util.Collections.nCopies(10, "pos")));
        // Ten requests at 20 per second: the last starts 0.45 s after the first.
        assertThat(r.getWallSeconds()).isGreaterThanOrEqualTo(0.45);
        assertThat(r.getRequestsPerSecond()).isLessThanOrEqualTo(10 / 0.45);
        assertThat(r.getAgreement()).isEqualTo(1.0);
        assertThat(r.getErrors()).isZero();
    }

    @Test
    void noServingOrARefusedLoadFailsTheEvaluationSayingWhy() {
        ScenarioSpec spec = ScenarioSpec.getDefaultInstance();
        List<ScenarioRunner.Request> requests =
                ScenarioRunner.classify("x:candidate", List.of("a"), List.of("pos"));
        assertThatThrownBy(
                        () ->
                                new ScenarioRunner(Optional.empty(), Optional.empty())
                                        .run(training(), spec, requests))
                .isInstanceOf(EvaluationFailedException.class)
                .hasMessageContaining("tuneline.evaluation.serving.url");
        loadStatus = 503;
        assertThatThrownBy(
                        () ->
                                new ScenarioRunner(Optional.of(url()), Optional.empty())
                                        .run(training(), spec, requests))
                .isInstanceOf(EvaluationFailedException.class)
                .hasMessageContaining("could not load the run as candidate 'job-7-a1'")
                .hasMessageContaining("503");
        // Nothing was loaded, so nothing is unloaded.
        assertThat(calls).containsExactly("PUT /v1/candidates/job-7-a1");
    }

    @Test
    void candidateNamesAreWhatServingAccepts() {
        assertThat(ScenarioRunner.candidateName(training())).isEqualTo("job-7-a1");
        assertThat(
                        ScenarioRunner.candidateName(
                                TrainingCompleted.newBuilder().setJobId("__my job/1").build()))
                .isEqualTo("my-job-1");
    }
}
