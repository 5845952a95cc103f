package io.tuneline.engine.train;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.io.onnx.OnnxGraph;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.model.bert.BertOnnxImport;
import io.tuneline.engine.runtime.EngineRuntime;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Fine-tuning the real MiniLM: it learns, and the method trains only what it should. */
class LoraMiniLmTest {
    private static final List<String> LABELS = List.of("neg", "pos");
    private static final int MAX_LEN = 32;

    private static byte[] onnx;
    private static HuggingFaceTokenizer tokenizer;
    private static EngineRuntime runtime;

    @BeforeAll
    static void load() throws Exception {
        runtime = EngineRuntime.start(2);
        PretrainedModel model = ModelCatalog.resolve(ModelCatalog.MINILM_L6);
        try (InputStream in = model.weights().open()) {
            onnx = in.readAllBytes();
        }
        try (InputStream in = model.tokenizer().open()) {
            tokenizer =
                    HuggingFaceTokenizer.newInstance(
                            in, Map.of("truncation", "true", "maxLength", "" + MAX_LEN));
        }
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    private static Model newModel(SequenceClassifier classifier) throws Exception {
        Model model =
                Model.newInstance("minilm-classifier", runtime.device(), EngineRuntime.ENGINE);
        classifier.initialize(
                model.getNDManager(),
                DataType.FLOAT32,
                new Shape(1, MAX_LEN),
                new Shape(1, MAX_LEN));
        BertOnnxImport.load(OnnxGraph.parse(onnx), classifier.encoder());
        model.setBlock(classifier);
        return model;
    }

    @Test
    void loraOnMiniLmClearlyBeatsTheUntunedModelOnHeldOutData() throws Exception {
        List<LabelledText> train = read("/datasets/sentiment-train.jsonl");
        List<LabelledText> test = read("/datasets/sentiment-test.jsonl");
        SequenceClassifier classifier =
                new SequenceClassifier(new BertEncoder(BertConfig.miniLmL6()), 2, 0.1f);
        try (Model model = newModel(classifier)) {
            ClassifierTrainer trainer = new ClassifierTrainer(tokenizer);
            ParameterCounts counts =
                    FineTuningMethod.Lora.defaults().apply(classifier, model.getNDManager());
            double before = accuracy(trainer, model, classifier, test);

            List<TrainingListener.StepReport> steps = new CopyOnWriteArrayList<>();
            double lastLoss =
                    trainer.train(
                            model,
                            classifier,
                            train,
                            new TrainingSettings(6, 8, 2e-3f, 0.01f, 0.1f, 1f, MAX_LEN, 42),
                            steps::add);
            double after = accuracy(trainer, model, classifier, test);

            System.out.printf(
                    "LoRA r=8 on MiniLM: trainable %d of %d (%.2f%%); held-out accuracy %.3f untuned -> %.3f tuned; final loss %.4f; %.0f tokens/s%n",
                    counts.trainable(),
                    counts.total(),
                    100 * counts.trainableFraction(),
                    before,
                    after,
                    lastLoss,
                    steps.get(steps.size() - 1).tokensPerSecond());
            assertThat(after).isGreaterThanOrEqualTo(0.9);
            assertThat(after - before).isGreaterThanOrEqualTo(0.25);
            assertThat(steps).hasSize(36);
            assertThat(steps.get(0).learningRate())
                    .isLessThan(steps.get(4).learningRate()); // warm-up
            assertThat(steps.get(35).learningRate())
                    .isLessThan(steps.get(10).learningRate()); // decay
            assertThat(steps.get(35).etaSeconds()).isZero();
        }
    }

    /**
     * A LoRA run of 9 steps, checkpointing every 4, stopped by {@code stopAt}: LoRA and head
     * dropout on (their masks must be replayed on resume), the encoder's own dropout off.
     */
    private List<Double> lossCurve(Checkpointing checkpointing, long stopAt) throws Exception {
        List<LabelledText> train = read("/datasets/sentiment-train.jsonl").subList(0, 12);
        // The initial LoRA and head weights are random: seed them so two runs start alike.
        ai.djl.engine.Engine.getInstance().setRandomSeed(7);
        SequenceClassifier classifier =
                new SequenceClassifier(
                        new BertEncoder(BertConfig.miniLmL6().withoutDropout()), 2, 0.1f);
        List<Double> losses = new ArrayList<>();
        try (Model model = newModel(classifier)) {
            FineTuningMethod.Lora.defaults().apply(classifier, model.getNDManager());
            try {
                new ClassifierTrainer(tokenizer)
                        .train(
                                model,
                                classifier,
                                train,
                                new TrainingSettings(3, 4, 2e-3f, 0.01f, 0.1f, 1f, MAX_LEN, 42),
                                r -> {
                                    if (r.step() == stopAt) {
                                        throw new IllegalStateException("worker killed");
                                    }
                                    losses.add(r.loss());
                                },
                                checkpointing);
            } catch (IllegalStateException killed) {
                assertThat(killed).hasMessage("worker killed");
            }
        }
        return losses;
    }

    @Test
    void aRunResumedFromACheckpointContinuesTheUninterruptedLossCurve(@TempDir Path dir)
            throws Exception {
        List<Double> uninterrupted = lossCurve(Checkpointing.none(), -1);
        assertThat(uninterrupted).hasSize(9);

        List<Path> saved = new ArrayList<>();
        Checkpointing every4 =
                new Checkpointing(dir, 4, java.util.Optional.empty(), (d, state) -> saved.add(d));
        List<Double> killed = lossCurve(every4, 6);
        assertThat(killed).hasSize(5);
        assertThat(saved)
                .extracting(p -> p.getFileName().toString())
                .containsExactly("step-00000004");

        // Step 4 ends mid-epoch (3 steps per epoch): the resume must also restore the data order.
        Checkpointing resume =
                new Checkpointing(
                        dir.resolve("resumed"),
                        4,
                        java.util.Optional.of(saved.get(0)),
                        (d, s) -> {});
        List<Double> resumed = lossCurve(resume, -1);
        assertThat(resumed).hasSize(5);
        for (int i = 0; i < 5; i++) {
            assertThat(resumed.get(i))
                    .as("loss of step %d", i + 5)
                    .isCloseTo(uninterrupted.get(i + 4), org.assertj.core.data.Offset.offset(1e-5));
        }
        assertThat(killed).containsExactlyElementsOf(uninterrupted.subList(0, 5));
    }

    /** Losses of a dropout-free LoRA run over 16 examples, 2 epochs. */
    private List<Double> dropoutFreeLosses(int batchSize, int accumulation) throws Exception {
        List<LabelledText> train = read("/datasets/sentiment-train.jsonl").subList(0, 16);
        ai.djl.engine.Engine.getInstance().setRandomSeed(11);
        SequenceClassifier classifier =
                new SequenceClassifier(
                        new BertEncoder(BertConfig.miniLmL6().withoutDropout()), 2, 0f);
        List<Double> losses = new ArrayList<>();
        try (Model model = newModel(classifier)) {
            new FineTuningMethod.Lora(8, 16f, 0f, List.of("query", "value"))
                    .apply(classifier, model.getNDManager());
            new ClassifierTrainer(tokenizer)
                    .train(
                            model,
                            classifier,
                            train,
                            new TrainingSettings(
                                    2,
                                    batchSize,
                                    2e-3f,
                                    0.01f,
                                    0f,
                                    1f,
                                    MAX_LEN,
                                    5,
                                    LearningRateSchedule.Shape.LINEAR,
                                    accumulation),
                            Validation.none(),
                            r -> losses.add(r.loss()),
                            Checkpointing.none());
        }
        return losses;
    }

    @Test
    void accumulatingTwoBatchesOfFourTrainsLikeOneBatchOfEight() throws Exception {
        List<Double> eight = dropoutFreeLosses(8, 1);
        List<Double> fourTimesTwo = dropoutFreeLosses(4, 2);
        assertThat(eight).hasSize(4); // 16 examples, batches of 8, 2 epochs
        assertThat(fourTimesTwo).hasSize(4);
        for (int i = 0; i < 4; i++) {
            // Equal but for padding (each batch pads to its own longest text) and float order.
            assertThat(fourTimesTwo.get(i))
                    .as("step %d", i + 1)
                    .isCloseTo(eight.get(i), org.assertj.core.data.Offset.offset(1e-4));
        }
    }

    @Test
    void validationLossIsReportedOnItsStepsAndEarlyStoppingEndsARunThatStopsImproving()
            throws Exception {
        List<LabelledText> train = read("/datasets/sentiment-train.jsonl");
        // Held-out sentences with their labels flipped: the better the model learns the task, the
        // worse its loss on them, so the validation loss must stop improving early in the run.
        List<LabelledText> flipped =
                read("/datasets/sentiment-test.jsonl").stream()
                        .map(e -> new LabelledText(e.text(), 1 - e.label()))
                        .toList();
        SequenceClassifier classifier =
                new SequenceClassifier(new BertEncoder(BertConfig.miniLmL6()), 2, 0.1f);
        try (Model model = newModel(classifier)) {
            FineTuningMethod.Lora.defaults().apply(classifier, model.getNDManager());
            List<TrainingListener.StepReport> steps = new ArrayList<>();
            TrainingOutcome outcome =
                    new ClassifierTrainer(tokenizer)
                            .train(
                                    model,
                                    classifier,
                                    train,
                                    new TrainingSettings(6, 8, 2e-3f, 0.01f, 0.1f, 1f, MAX_LEN, 42),
                                    new Validation<>(flipped, 3, 2),
                                    steps::add,
                                    Checkpointing.none());

            assertThat(outcome.stoppedEarly()).isTrue();
            assertThat(outcome.steps()).isLessThan(36).isEqualTo(steps.size());
            List<Double> validation =
                    steps.stream()
                            .filter(r -> r.validationLoss().isPresent())
                            .map(r -> r.validationLoss().getAsDouble())
                            .toList();
            assertThat(steps)
                    .allSatisfy(
                            r ->
                                    assertThat(r.validationLoss().isPresent())
                                            .isEqualTo(r.step() % 3 == 0));
            // It stopped after two evaluations in a row that did not beat the best before them.
            double bestBefore =
                    validation.subList(0, validation.size() - 2).stream()
                            .mapToDouble(Double::doubleValue)
                            .min()
                            .orElseThrow();
            assertThat(validation.subList(validation.size() - 2, validation.size()))
                    .allSatisfy(
                            v ->
                                    assertThat(v)
                                            .isGreaterThan(
                                                    bestBefore - Validation.MIN_IMPROVEMENT));
            assertThat(outcome.validationLoss()).hasValue(validation.get(validation.size() - 1));
        }
    }

    @Test
    void frozenWeightsStayBitIdenticalAndOnlyTheMethodsParametersChange() throws Exception {
        List<LabelledText> train = read("/datasets/sentiment-train.jsonl").subList(0, 16);
        SequenceClassifier classifier =
                new SequenceClassifier(new BertEncoder(BertConfig.miniLmL6()), 2, 0f);
        try (Model model = newModel(classifier)) {
            ParameterCounts counts =
                    FineTuningMethod.Lora.defaults().apply(classifier, model.getNDManager());
            // r 8 on query and value of 6 layers: 6 * 2 * (8 * 384 + 384 * 8), plus the head 384 *
            // 2 + 2.
            assertThat(counts.trainable()).isEqualTo(6 * 2 * (8 * 384 + 384 * 8) + 384 * 2 + 2);
            assertThat(counts.total()).isEqualTo(22_565_376L + counts.trainable());

            Map<String, float[]> before = snapshot(classifier);
            new ClassifierTrainer(tokenizer)
                    .train(
                            model,
                            classifier,
                            train,
                            new TrainingSettings(1, 8, 1e-3f, 0.01f, 0f, 1f, MAX_LEN, 1),
                            r -> {});
            Map<String, float[]> after = snapshot(classifier);

            List<String> changed = new ArrayList<>();
            before.forEach(
                    (name, values) -> {
                        if (!java.util.Arrays.equals(values, after.get(name))) {
                            changed.add(name);
                        }
                    });
            assertThat(changed)
                    .allMatch(
                            n -> n.contains("lora_") || n.startsWith("classifier."),
                            "only adapters and head change");
            assertThat(changed)
                    .contains(
                            "encoder.layer.0.attention.self.query.lora_B.weight",
                            "classifier.weight");
            assertThat(changed).noneMatch(n -> n.contains(".key.lora_")); // keys have no adapter
        }
    }

    @Test
    void theMergedExportPredictsLikeTheAdapterModel(
            @org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        List<LabelledText> train = read("/datasets/sentiment-train.jsonl");
        List<String> test =
                read("/datasets/sentiment-test.jsonl").stream().map(LabelledText::text).toList();
        SequenceClassifier lora =
                new SequenceClassifier(new BertEncoder(BertConfig.miniLmL6()), 2, 0f);
        try (Model model = newModel(lora)) {
            FineTuningMethod.Lora.defaults().apply(lora, model.getNDManager());
            ClassifierTrainer trainer = new ClassifierTrainer(tokenizer);
            trainer.train(
                    model,
                    lora,
                    train,
                    new TrainingSettings(1, 8, 2e-3f, 0f, 0f, 1f, MAX_LEN, 3),
                    r -> {});

            // Merging is W + (alpha / r) B A: checked element by element against a hand loop.
            var q = lora.linears().get("encoder.layer.2.attention.self.query");
            var delta = (io.tuneline.engine.nn.LoraDelta) q.deltas().get(0);
            float[] w = q.weight().getArray().toFloatArray();
            float[] a = delta.a().getArray().toFloatArray(); // (8, 384)
            float[] b = delta.b().getArray().toFloatArray(); // (384, 8)
            float[] merged = q.mergedWeight().toFloatArray();
            float scaling = 16f / 8;
            for (int i = 0; i < 384; i += 37) {
                for (int j = 0; j < 384; j += 41) {
                    float ba = 0;
                    for (int k = 0; k < 8; k++) {
                        ba += b[i * 8 + k] * a[k * 384 + j];
                    }
                    assertThat(merged[i * 384 + j])
                            .isCloseTo(
                                    w[i * 384 + j] + scaling * ba,
                                    org.assertj.core.api.Assertions.within(1e-6f));
                }
            }

            java.nio.file.Path file = dir.resolve("model.safetensors");
            io.tuneline.engine.export.ClassifierWeights.writeMerged(lora, file);

            // The PEFT layout: its names and shapes, and W + (alpha / r) B A from the adapter file
            // is the merged weight the model file holds.
            java.nio.file.Path peft = dir.resolve("peft");
            assertThat(
                            io.tuneline.engine.export.PeftAdapter.write(
                                    lora,
                                    new FineTuningMethod.Lora(
                                            8, 16f, 0f, List.of("query", "value")),
                                    "sentence-transformers/all-MiniLM-L6-v2",
                                    peft))
                    .isTrue();
            var config =
                    new com.fasterxml.jackson.databind.ObjectMapper()
                            .readTree(peft.resolve("adapter_config.json").toFile());
            assertThat(config.path("peft_type").asText()).isEqualTo("LORA");
            assertThat(config.path("r").asInt()).isEqualTo(8);
            assertThat(config.path("lora_alpha").asDouble()).isEqualTo(16.0);
            assertThat(config.path("target_modules").toString()).isEqualTo("[\"query\",\"value\"]");
            try (var adapter =
                            io.tuneline.engine.io.safetensors.SafetensorsFile.open(
                                    peft.resolve("adapter_model.safetensors"));
                    var full = io.tuneline.engine.io.safetensors.SafetensorsFile.open(file)) {
                String base = "base_model.model.encoder.layer.2.attention.self.query.";
                assertThat(adapter.info(base + "lora_A.weight").shape()).containsExactly(8, 384);
                assertThat(adapter.info(base + "lora_B.weight").shape()).containsExactly(384, 8);
                assertThat(adapter.names())
                        .hasSize(6 * 2 * 2 + 2)
                        .allMatch(n -> n.startsWith("base_model.model."))
                        .contains("base_model.model.classifier.weight");
                float[] pa = adapter.floats(base + "lora_A.weight");
                float[] pb = adapter.floats(base + "lora_B.weight");
                float[] stored = full.floats("encoder.layer.2.attention.self.query.weight");
                for (int i = 0; i < 384; i += 53) {
                    for (int j = 0; j < 384; j += 47) {
                        float ba = 0;
                        for (int k = 0; k < 8; k++) {
                            ba += pb[i * 8 + k] * pa[k * 384 + j];
                        }
                        assertThat(stored[i * 384 + j])
                                .isCloseTo(
                                        w[i * 384 + j] + scaling * ba,
                                        org.assertj.core.api.Assertions.within(1e-6f));
                    }
                }
            }
            float[][] withAdapter = trainer.predict(model, lora, test, MAX_LEN);

            SequenceClassifier plain =
                    new SequenceClassifier(new BertEncoder(BertConfig.miniLmL6()), 2, 0f);
            try (Model reloaded = newModel(plain)) {
                assertThat(io.tuneline.engine.export.ClassifierWeights.load(plain, file))
                        .isEqualTo(103);
                float[][] merged2 = trainer.predict(reloaded, plain, test, MAX_LEN);
                for (int i = 0; i < test.size(); i++) {
                    assertThat(merged2[i][1])
                            .isCloseTo(
                                    withAdapter[i][1],
                                    org.assertj.core.api.Assertions.within(1e-4f));
                }
            }
        }
    }

    @Test
    void headOnlyFreezingTrainsTheHeadAlone() throws Exception {
        SequenceClassifier classifier =
                new SequenceClassifier(new BertEncoder(BertConfig.miniLmL6()), 2, 0f);
        try (Model model = newModel(classifier)) {
            ParameterCounts counts =
                    FineTuningMethod.Freeze.headOnly().apply(classifier, model.getNDManager());
            assertThat(counts.trainable()).isEqualTo(384 * 2 + 2);
            ParameterCounts top =
                    new FineTuningMethod.Freeze(1, false, List.of("embeddings.LayerNorm.*"))
                            .apply(classifier, model.getNDManager());
            assertThat(top.trainable()).isEqualTo(384 * 2 + 2 + 1_774_464 + 2 * 384);
            ParameterCounts full =
                    new FineTuningMethod.Full().apply(classifier, model.getNDManager());
            assertThat(full.trainable()).isEqualTo(full.total());
        }
    }

    private static Map<String, float[]> snapshot(SequenceClassifier classifier) {
        Map<String, float[]> values = new HashMap<>();
        for (Map.Entry<String, Parameter> e : classifier.namedParameters().entrySet()) {
            values.put(e.getKey(), e.getValue().getArray().toFloatArray());
        }
        return values;
    }

    private static double accuracy(
            ClassifierTrainer trainer,
            Model model,
            SequenceClassifier classifier,
            List<LabelledText> data) {
        float[][] probs =
                trainer.predict(
                        model, classifier, data.stream().map(LabelledText::text).toList(), MAX_LEN);
        int correct = 0;
        for (int i = 0; i < data.size(); i++) {
            int predicted = probs[i][1] > probs[i][0] ? 1 : 0;
            if (predicted == data.get(i).label()) {
                correct++;
            }
        }
        return (double) correct / data.size();
    }

    private static List<LabelledText> read(String resource) throws Exception {
        ObjectMapper json = new ObjectMapper();
        List<LabelledText> out = new ArrayList<>();
        try (BufferedReader r =
                new BufferedReader(
                        new InputStreamReader(
                                LoraMiniLmTest.class.getResourceAsStream(resource),
                                StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                JsonNode n = json.readTree(line);
                out.add(
                        new LabelledText(
                                n.get("text").asText(), LABELS.indexOf(n.get("label").asText())));
            }
        }
        return out;
    }
}
