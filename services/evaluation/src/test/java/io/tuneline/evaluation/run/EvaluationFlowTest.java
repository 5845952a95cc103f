package io.tuneline.evaluation.run;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.tuneline.common.event.CloudEventHeaders;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.topic.Topics;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.export.ClassifierWeights;
import io.tuneline.engine.io.onnx.OnnxGraph;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.model.bert.BertOnnxImport;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.ClassifierTrainer;
import io.tuneline.engine.train.LabelledText;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.BaseModel;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.EvaluationCompleted;
import io.tuneline.proto.v1.EvaluationSpec;
import io.tuneline.proto.v1.Hyperparameters;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.Perturbation;
import io.tuneline.proto.v1.PerturbationKind;
import io.tuneline.proto.v1.QualityGate;
import io.tuneline.proto.v1.Task;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.KafkaTestClient;
import io.tuneline.testing.S3ProxyResource;
import jakarta.inject.Inject;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The evaluation service on a really fine-tuned MiniLM, fed and read through Kafka. */
@QuarkusTest
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class EvaluationFlowTest {
    private static final Duration WAIT = Duration.ofSeconds(120);
    private static final EventCodec CODEC = new EventCodec("/test");
    private static final List<String> LABELS = List.of("neg", "pos");

    @Inject ArtifactStore store;
    private KafkaTestClient kafka;

    @BeforeEach
    void connect() {
        kafka = KafkaTestClient.forApplication();
    }

    @AfterEach
    void disconnect() {
        kafka.close();
    }

    @Test
    void aTunedModelIsEvaluatedAgainstTheBaseWithRobustnessGateAndReports() throws Exception {
        TrainingCompleted training = trainedModel("eval-1", true);
        publish(training);

        EvaluationCompleted done =
                CODEC.decode(
                                await(
                                        Topics.EVALUATIONS_COMPLETED,
                                        "eval-1",
                                        "tuneline.v1.EvaluationCompleted"),
                                EvaluationCompleted.getDefaultInstance())
                        .payload();

        var tunedF1 = done.getTunedMetricsOrThrow("macro_f1");
        var baseF1 = done.getBaseMetricsOrThrow("macro_f1");
        assertThat(done.getPrimaryMetric()).isEqualTo("macro_f1");
        assertThat(done.getTestExamples()).isEqualTo(24);
        assertThat(tunedF1.getValue()).isGreaterThanOrEqualTo(0.8);
        assertThat(tunedF1.getValue() - baseF1.getValue()).isGreaterThan(0.2);
        assertThat(tunedF1.getCiLower()).isLessThanOrEqualTo(tunedF1.getValue());
        assertThat(tunedF1.getCiUpper()).isGreaterThanOrEqualTo(tunedF1.getValue());
        assertThat(done.getGate().getPassed())
                .as(done.getGate().getReasonsList().toString())
                .isTrue();
        assertThat(done.getRobustnessList())
                .extracting(r -> r.getName())
                .containsExactly("char_swap@0.1", "word_dropout@0.3", "pgd eps=0.05 steps=3");
        var pgd = done.getRobustness(2);
        assertThat(pgd.getAccuracyDrop())
                .isCloseTo(
                        done.getTunedMetricsOrThrow("accuracy").getValue() - pgd.getAccuracy(),
                        org.assertj.core.data.Offset.offset(1e-9));
        assertThat(pgd.getAttackSuccessRate()).isBetween(0.0, 1.0);
        assertThat(done.getReportHtml().getUri())
                .isEqualTo("s3://tuneline-test/reports/eval-1/evaluation.html");
        try (InputStream in = store.get(done.getReportHtml())) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8))
                    .contains("Evaluation of eval-1")
                    .contains("<svg")
                    .contains("Training loss");
        }
        try (InputStream in = store.get(done.getReportJson())) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8))
                    .contains("\"confusion_matrix\"")
                    .contains("\"robustness\"");
        }

        // Redelivered: the report exists, nothing is evaluated or announced twice.
        publish(training);
        publish(trainedModel("eval-2-no-test", false));
        await(Topics.JOBS_STATUS, "eval-2-no-test", "tuneline.v1.JobFailed");
        List<ConsumerRecord<String, byte[]>> all =
                kafka.readUntil(Topics.EVALUATIONS_COMPLETED, rs -> true, Duration.ofSeconds(2));
        assertThat(all.stream().filter(r -> "eval-1".equals(r.key()))).hasSize(1);
    }

    @Test
    void aDatasetWithoutTestSplitFailsTheJobSayingWhatToDo() throws Exception {
        publish(trainedModel("eval-3-no-test", false));
        JobFailed failed =
                CODEC.decode(
                                await(
                                        Topics.JOBS_STATUS,
                                        "eval-3-no-test",
                                        "tuneline.v1.JobFailed"),
                                JobFailed.getDefaultInstance())
                        .payload();
        assertThat(failed.getErrorCode()).isEqualTo("EVALUATION_FAILED");
        assertThat(failed.getMessage())
                .contains("has no test or validation split")
                .contains("split.test");
    }

    @Test
    void eachMethodOfAComparisonIsEvaluatedOnceOnTheSameTestSplitWithItsOwnReports()
            throws Exception {
        TrainingCompleted trained = trainedModel("cmp-eval-1", true);
        JobRequested job =
                trained.getJob().toBuilder()
                        .setEvaluation(
                                trained.getJob().getEvaluation().toBuilder()
                                        .clearPerturbations()
                                        .clearAttacks())
                        .build();
        List<TrainingCompleted> methods = new ArrayList<>();
        for (String method : List.of("lora", "full")) {
            methods.add(
                    trained.toBuilder()
                            .setJob(job)
                            .setRunId("cmp-eval-1." + method + "-a1")
                            .setComparedMethod(method)
                            .addAllComparedMethods(List.of("lora", "full"))
                            .build());
        }
        methods.forEach(this::publish);

        java.util.function.Predicate<ConsumerRecord<String, byte[]>> ofJob =
                r -> "cmp-eval-1".equals(r.key());
        List<EvaluationCompleted> done =
                kafka
                        .readUntil(
                                Topics.EVALUATIONS_COMPLETED,
                                rs -> rs.stream().filter(ofJob).count() == 2,
                                WAIT)
                        .stream()
                        .filter(ofJob)
                        .map(r -> CODEC.decode(r, EvaluationCompleted.getDefaultInstance()))
                        .map(e -> e.payload())
                        .toList();
        assertThat(done)
                .extracting(e -> e.getTraining().getComparedMethod())
                .containsExactlyInAnyOrder("lora", "full");
        for (EvaluationCompleted e : done) {
            String method = e.getTraining().getComparedMethod();
            assertThat(e.getTestExamples()).isEqualTo(24);
            assertThat(e.getReportJson().getUri())
                    .isEqualTo(
                            "s3://tuneline-test/reports/cmp-eval-1/" + method + "/evaluation.json");
        }
        // The same model on the same split: the same numbers, whichever method's run it is.
        assertThat(done.get(0).getTunedMetricsMap()).isEqualTo(done.get(1).getTunedMetricsMap());

        // One method redelivered: evaluated once all the same.
        publish(methods.get(0));
        publish(trainedModel("cmp-eval-2-no-test", false));
        await(Topics.JOBS_STATUS, "cmp-eval-2-no-test", "tuneline.v1.JobFailed");
        assertThat(
                        kafka
                                .readUntil(
                                        Topics.EVALUATIONS_COMPLETED,
                                        rs -> true,
                                        Duration.ofSeconds(2))
                                .stream()
                                .filter(ofJob))
                .hasSize(2);
    }

    /** Fine-tunes MiniLM with LoRA for a few seconds and stores it as the worker would. */
    private TrainingCompleted trainedModel(String jobId, boolean withTest) throws Exception {
        PretrainedModel base = ModelCatalog.resolve(ModelCatalog.MINILM_L6);
        EngineRuntime runtime = EngineRuntime.start(2);
        Path dir = Files.createTempDirectory(jobId);
        Path weights = dir.resolve("model.safetensors");
        if (withTest) {
            byte[] onnx;
            try (InputStream in = base.weights().open()) {
                onnx = in.readAllBytes();
            }
            SequenceClassifier classifier =
                    new SequenceClassifier(new BertEncoder(BertConfig.miniLmL6()), 2, 0f);
            try (InputStream tin = base.tokenizer().open();
                    HuggingFaceTokenizer tokenizer =
                            HuggingFaceTokenizer.newInstance(
                                    tin, Map.of("truncation", "true", "maxLength", "32"));
                    Model model = Model.newInstance("t", runtime.device(), EngineRuntime.ENGINE)) {
                classifier.initialize(
                        model.getNDManager(), DataType.FLOAT32, new Shape(1, 32), new Shape(1, 32));
                BertOnnxImport.load(OnnxGraph.parse(onnx), classifier.encoder());
                model.setBlock(classifier);
                FineTuningMethod.Lora.defaults().apply(classifier, model.getNDManager());
                new ClassifierTrainer(tokenizer)
                        .train(
                                model,
                                classifier,
                                read("/datasets/sentiment-train.jsonl"),
                                new TrainingSettings(4, 8, 2e-3f, 0.01f, 0.1f, 1f, 32, 42),
                                r -> {});
                ClassifierWeights.writeMerged(classifier, weights);
            }
        } else {
            Files.writeString(weights, "unused");
        }
        ArtifactRef model =
                store.put(
                        store.uri("runs/" + jobId + "/model/model.safetensors"),
                        Files.readAllBytes(weights),
                        "application/octet-stream");
        DatasetPrepared.Builder dataset =
                DatasetPrepared.newBuilder().setJobId(jobId).addAllLabels(LABELS);
        if (withTest) {
            byte[] test;
            try (InputStream in =
                    getClass().getResourceAsStream("/datasets/sentiment-test.jsonl")) {
                test = in.readAllBytes();
            }
            dataset.setTest(
                    store.put(
                            store.uri("datasets/" + jobId + "/prepared/test.jsonl"),
                            test,
                            "application/jsonl"));
        }
        JobRequested job =
                JobRequested.newBuilder()
                        .setJobId(jobId)
                        .setBaseModel(BaseModel.newBuilder().setRef("minilm-l6"))
                        .setTask(Task.TASK_SEQUENCE_CLASSIFICATION)
                        .setHyperparameters(Hyperparameters.newBuilder().setMaxSeqLength(32))
                        .setEvaluation(
                                EvaluationSpec.newBuilder()
                                        .setBootstrapSamples(200)
                                        .addPerturbations(
                                                Perturbation.newBuilder()
                                                        .setKind(
                                                                PerturbationKind
                                                                        .PERTURBATION_KIND_CHAR_SWAP)
                                                        .setRate(0.1))
                                        .addPerturbations(
                                                Perturbation.newBuilder()
                                                        .setKind(
                                                                PerturbationKind
                                                                        .PERTURBATION_KIND_WORD_DROPOUT)
                                                        .setRate(0.3))
                                        .addAttacks(
                                                io.tuneline.proto.v1.EmbeddingAttack.newBuilder()
                                                        .setKind(
                                                                io.tuneline.proto.v1.AttackKind
                                                                        .ATTACK_KIND_PGD)
                                                        .setEpsilon(0.05)
                                                        .setSteps(3))
                                        .setGate(
                                                QualityGate.newBuilder()
                                                        .putMinMetrics("macro_f1", 0.8)
                                                        .putMaxRegression("accuracy", 0.0)))
                        .build();
        return TrainingCompleted.newBuilder()
                .setJobId(jobId)
                .setJob(job)
                .setDataset(dataset.setJob(job))
                .setRunId(jobId + "-a1")
                .setModel(
                        ArtifactRef.newBuilder()
                                .setUri(store.uri("runs/" + jobId + "/model/").toString()))
                .addModelFiles(model)
                .setMetricsLog(
                        store.put(
                                store.uri("runs/" + jobId + "/metrics.jsonl"),
                                ("{\"step\":1,\"loss\":0.70}\n"
                                                + "{\"step\":2,\"loss\":0.55,\"validation_loss\":0.60}\n"
                                                + "{\"step\":3,\"loss\":0.40,\"validation_loss\":0.50}\n")
                                        .getBytes(StandardCharsets.UTF_8),
                                "application/jsonl"))
                .build();
    }

    private void publish(TrainingCompleted training) {
        var out = CODEC.encode(training);
        kafka.publish(Topics.TRAINING_COMPLETED, out.key(), out.value(), out.headers());
    }

    private ConsumerRecord<String, byte[]> await(String topic, String jobId, String type) {
        java.util.function.Predicate<ConsumerRecord<String, byte[]>> match =
                r ->
                        jobId.equals(r.key())
                                && type.equals(KafkaTestClient.header(r, CloudEventHeaders.TYPE));
        return kafka.readUntil(topic, rs -> rs.stream().anyMatch(match), WAIT).stream()
                .filter(match)
                .findFirst()
                .orElseThrow();
    }

    private static List<LabelledText> read(String resource) throws Exception {
        var json = new com.fasterxml.jackson.databind.ObjectMapper();
        List<LabelledText> out = new ArrayList<>();
        try (var r =
                new java.io.BufferedReader(
                        new java.io.InputStreamReader(
                                EvaluationFlowTest.class.getResourceAsStream(resource),
                                StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                var n = json.readTree(line);
                out.add(
                        new LabelledText(
                                n.get("text").asText(), LABELS.indexOf(n.get("label").asText())));
            }
        }
        return out;
    }
}
