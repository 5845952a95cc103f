package io.tuneline.engine.export;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.fail;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.model.ClassifierHead;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.nn.NativeCopy;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.Checkpointing;
import io.tuneline.engine.train.ClassifierTrainer;
import io.tuneline.engine.train.LabelledText;
import io.tuneline.engine.train.TrainingSettings;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Hugging Face classification head ({@link ClassifierHead#CLS_POOLER}) and its export, against
 * {@code bench/bert_classifier_reference.py}: a plain-PyTorch {@code BertForSequenceClassification}
 * / {@code RobertaForSequenceClassification} written from transformers' modeling files, which reads
 * the exported directory with {@code struct} + {@code json} + {@code torch} only and checks every
 * tensor name and shape and the config fields transformers reads. Small random models (hidden 32,
 * weights std 0.2 so every tensor moves the logits) with LoRA on {@code query}, {@code value} and
 * {@code dense} (BERT's pooler included, as PEFT matches it) and non-zero B, so the export has to
 * merge them.
 */
class HuggingFaceHeadTest {
    private static final double TOLERANCE = 1e-4;
    private static final String PYTHON = "/usr/bin/python3";
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> LABELS = List.of("neg", "neu", "pos");

    // Right padding; BERT pads with 0, RoBERTa with pad_token_id 1 (its position ids skip pads).
    private static final long[][] IDS = {
        {101, 2023, 3185, 2001, 2307, 999, 102, 0, 0, 0},
        {101, 7592, 102, 0, 0, 0, 0, 0, 0, 0},
        {101, 1045, 2293, 2009, 1010, 2428, 2204, 3185, 1012, 102}
    };
    private static final long[][] MASK = {
        {1, 1, 1, 1, 1, 1, 1, 0, 0, 0},
        {1, 1, 1, 0, 0, 0, 0, 0, 0, 0},
        {1, 1, 1, 1, 1, 1, 1, 1, 1, 1}
    };

    private static EngineRuntime runtime;

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    static BertConfig bert() {
        return new BertConfig(30522, 32, 2, 4, 64, 40, 2, 1e-12f);
    }

    static BertConfig roberta() {
        return new BertConfig(30522, 32, 2, 4, 64, 42, 1, 1e-5f, BertConfig.ROBERTA, 2);
    }

    @Test
    void bertForSequenceClassificationLogitsEqualPlainPyTorch(@TempDir Path tmp) throws Exception {
        checkAgainstReference(bert(), tmp);
    }

    @Test
    void robertaForSequenceClassificationLogitsEqualPlainPyTorch(@TempDir Path tmp)
            throws Exception {
        checkAgainstReference(roberta(), tmp);
    }

    private void checkAgainstReference(BertConfig config, Path tmp) throws Exception {
        requireTorch();
        boolean isRoberta = config.modelType().equals(BertConfig.ROBERTA);
        long[][] ids = padded(isRoberta ? 1 : 0);
        Path dir = tmp.resolve(config.modelType());
        float[] engine;
        try (NDManager manager = NDManager.newBaseManager(runtime.device(), EngineRuntime.ENGINE)) {
            SequenceClassifier classifier = randomClassifier(config, manager, 11);
            ParameterCounts counts =
                    new FineTuningMethod.Lora(4, 8f, 0f, List.of("query", "value", "dense"))
                            .apply(classifier, manager);
            // PEFT's rule: "dense" ends BERT's pooler.dense too; RoBERTa's classifier.dense is the
            // head's (trained whole), not a target.
            assertThat(classifier.linears().containsKey("pooler.dense")).isEqualTo(!isRoberta);
            assertThat(
                            classifier.deltaParameters().keySet().stream()
                                    .filter(n -> n.startsWith("pooler.")))
                    .hasSize(isRoberta ? 0 : 2);
            long head = isRoberta ? 32 * 32 + 32 + 32 * 3 + 3 : 32 * 3 + 3;
            // r 4 per layer on query, value, attention.output.dense (32 -> 32), intermediate.dense
            // (32 -> 64), output.dense (64 -> 32), and BERT's pooler.dense: A (r, in) + B (out, r).
            long loras =
                    2L * (3 * (4 * 32 + 32 * 4) + (4 * 32 + 64 * 4) + (4 * 64 + 32 * 4))
                            + (isRoberta ? 0 : 4 * 32 + 32 * 4);
            assertThat(counts.trainable()).isEqualTo(loras + head);
            randomize(classifier.deltaParameters(), new Random(5), 0.2);
            engine = logits(classifier, manager, ids);
            Path tokenizer = tmp.resolve("tokenizer.json");
            try (InputStream in = ModelCatalog.resolve(ModelCatalog.MINILM_L6).tokenizer().open()) {
                Files.copy(in, tokenizer);
            }
            ClassifierWeights.writeDirectory(
                    classifier,
                    LABELS,
                    tokenizer,
                    JSON.createObjectNode().put("method", "LORA"),
                    dir);
            // The adapter alone, as PEFT saves a SEQ_CLS one for
            // AutoModelForSequenceClassification.
            Path peft = tmp.resolve("peft-" + config.modelType());
            assertThat(
                            PeftAdapter.write(
                                    classifier,
                                    new FineTuningMethod.Lora(
                                            4, 8f, 0f, List.of("query", "value", "dense")),
                                    "tiny",
                                    peft))
                    .isTrue();
            assertThat(
                            JSON.readTree(peft.resolve("adapter_config.json").toFile())
                                    .path("task_type")
                                    .asText())
                    .isEqualTo("SEQ_CLS");
            try (var f =
                    io.tuneline.engine.io.safetensors.SafetensorsFile.open(
                            peft.resolve("adapter_model.safetensors"))) {
                String p = "base_model.model." + config.modelType() + ".";
                assertThat(f.names())
                        .contains(p + "encoder.layer.1.attention.self.query.lora_A.weight")
                        .allMatch(
                                n ->
                                        n.startsWith(p)
                                                || n.startsWith("base_model.model.classifier."))
                        .noneMatch(n -> n.contains("pooler.dense.weight"));
                if (isRoberta) {
                    assertThat(f.names()).contains("base_model.model.classifier.out_proj.weight");
                } else {
                    assertThat(f.names())
                            .contains(
                                    p + "pooler.dense.lora_B.weight",
                                    "base_model.model.classifier.weight");
                }
            }
        }

        JsonNode config0 = JSON.readTree(dir.resolve("config.json").toFile());
        assertThat(config0.path("architectures").get(0).asText())
                .isEqualTo(
                        isRoberta
                                ? "RobertaForSequenceClassification"
                                : "BertForSequenceClassification");
        assertThat(config0.path("num_labels").asInt()).isEqualTo(3);
        assertThat(config0.path("problem_type").asText()).isEqualTo("single_label_classification");
        assertThat(config0.path("id2label").path("1").asText()).isEqualTo("neu");
        assertThat(config0.path("label2id").path("pos").asInt()).isEqualTo(2);

        JsonNode out = reference(tmp, dir, ids);
        double[][] expected = JSON.treeToValue(out.path("logits"), double[][].class);
        double max = 0;
        double largest = 0;
        for (int i = 0; i < expected.length; i++) {
            for (int j = 0; j < 3; j++) {
                max = Math.max(max, Math.abs(engine[i * 3 + j] - expected[i][j]));
                largest = Math.max(largest, Math.abs(expected[i][j]));
            }
        }
        System.out.printf(
                "%s: max |engine - plain PyTorch %s| = %.3g (largest |logit| %.3g, %d tensors)%n",
                config.modelType(),
                out.path("architecture").asText(),
                max,
                largest,
                out.path("names").asInt());
        assertThat(largest).as("logits large enough to tell heads apart").isGreaterThan(0.1);
        assertThat(max).isLessThan(TOLERANCE);

        // The directory is a base model again: the catalogue resolves it, finds BERT's pooler (a
        // RoBERTa classifier has none), and picks the Hugging Face head by default; the classifier
        // rebuilt from the file predicts what the tuned model predicted.
        PretrainedModel base = ModelCatalog.resolve(dir.toString());
        assertThat(base.hasPooler()).isEqualTo(!isRoberta);
        assertThat(base.defaultClassifierHead()).isEqualTo(ClassifierHead.CLS_POOLER);
        Path weights = dir.resolve(ClassifierWeights.WEIGHTS);
        assertThat(ClassifierWeights.headOf(weights)).isEqualTo(ClassifierHead.CLS_POOLER);
        try (NDManager manager = NDManager.newBaseManager(runtime.device(), EngineRuntime.ENGINE)) {
            SequenceClassifier reloaded =
                    ClassifierWeights.classifierFor(weights, base.config(), 3, 0f);
            init(reloaded, manager);
            ClassifierWeights.load(reloaded, weights);
            float[] again = logits(reloaded, manager, ids);
            for (int i = 0; i < engine.length; i++) {
                assertThat((double) again[i])
                        .isCloseTo(engine[i], org.assertj.core.data.Offset.offset(1e-5));
            }
            // As the base of a next job: encoder and (BERT) pooler come from the checkpoint.
            SequenceClassifier next =
                    new SequenceClassifier(
                            new BertEncoder(base.config()), 2, 0.1f, ClassifierHead.CLS_POOLER);
            init(next, manager);
            int loaded = base.loadInto(next);
            assertThat(loaded).isEqualTo(5 + 2 * 16 + (isRoberta ? 0 : 2));
            if (!isRoberta) {
                assertThat(next.pooler().orElseThrow().weight().getArray().toFloatArray())
                        .isEqualTo(
                                reloaded.pooler().orElseThrow().weight().getArray().toFloatArray());
            }
        }
    }

    @Test
    void theMeanHeadKeepsItsLayoutAndTheTwoAreNotConfused(@TempDir Path tmp) throws Exception {
        try (NDManager manager = NDManager.newBaseManager(runtime.device(), EngineRuntime.ENGINE)) {
            SequenceClassifier mean = new SequenceClassifier(new BertEncoder(bert()), 3, 0f);
            init(mean, manager);
            Path file = tmp.resolve("mean.safetensors");
            ClassifierWeights.writeMerged(mean, file);
            assertThat(ClassifierWeights.headOf(file)).isEqualTo(ClassifierHead.MEAN);
            try (var f = io.tuneline.engine.io.safetensors.SafetensorsFile.open(file)) {
                assertThat(f.names())
                        .contains("embeddings.word_embeddings.weight", "classifier.weight")
                        .noneMatch(n -> n.startsWith("bert.") || n.contains("pooler"));
            }
            SequenceClassifier hf =
                    new SequenceClassifier(
                            new BertEncoder(bert()), 3, 0f, ClassifierHead.CLS_POOLER);
            init(hf, manager);
            assertThatThrownBy(() -> ClassifierWeights.load(hf, file))
                    .hasMessageContaining("mean head")
                    .hasMessageContaining("classifierFor");
            Path hfFile = tmp.resolve("hf.safetensors");
            ClassifierWeights.writeMerged(hf, hfFile);
            assertThatThrownBy(() -> ClassifierWeights.load(mean, hfFile))
                    .hasMessageContaining("cls_pooler head");
        }
    }

    /**
     * How the methods treat the Hugging Face head on all-MiniLM-L6-v2's shape, as PEFT does for
     * {@code SEQ_CLS}: the pooler is part of the base (frozen under LoRA, {@code modules_to_save}
     * is the classifier only), trains with the top layers under layer freezing and with everything
     * under full fine-tuning. The built-in MiniLM's ONNX file has no pooler, so its default head is
     * the mean head.
     */
    @Test
    void methodsTreatThePoolerAsPartOfTheBase() throws Exception {
        assertThat(ModelCatalog.resolve(ModelCatalog.MINILM_L6).hasPooler()).isFalse();
        assertThat(ModelCatalog.resolve(ModelCatalog.MINILM_L6).defaultClassifierHead())
                .isEqualTo(ClassifierHead.MEAN);
        try (NDManager manager = NDManager.newBaseManager(runtime.device(), EngineRuntime.ENGINE)) {
            SequenceClassifier c =
                    new SequenceClassifier(
                            new BertEncoder(BertConfig.miniLmL6()),
                            2,
                            0.1f,
                            ClassifierHead.CLS_POOLER);
            init(c, manager);
            assertThat(c.headModules()).containsExactly("classifier");
            assertThat(c.outputModules()).containsExactly("pooler", "classifier");
            assertThat(c.namedParameters())
                    .containsKeys("pooler.dense.weight", "pooler.dense.bias", "classifier.weight");
            assertThat(c.decays("pooler.dense.weight")).isTrue();
            assertThat(c.decays("pooler.dense.bias")).isFalse();

            ParameterCounts lora = FineTuningMethod.Lora.defaults().apply(c, manager);
            // PEFT for SEQ_CLS on MiniLM: r 8 on query/value (73,728) + classifier (770); the
            // pooler's 147,840 count in the total only.
            assertThat(lora.trainable()).isEqualTo(73_728 + 770);
            assertThat(lora.total()).isEqualTo(22_565_376L + 147_840 + 770 + 73_728);
            assertThat(c.namedParameters().get("pooler.dense.weight").requiresGradient()).isFalse();
            System.out.printf(
                    "MiniLM + HF head, LoRA defaults: %,d trainable of %,d%n",
                    lora.trainable(), lora.total());

            SequenceClassifier f =
                    new SequenceClassifier(
                            new BertEncoder(BertConfig.miniLmL6()),
                            2,
                            0.1f,
                            ClassifierHead.CLS_POOLER);
            init(f, manager);
            ParameterCounts head = FineTuningMethod.Freeze.headOnly().apply(f, manager);
            assertThat(head.trainable()).isEqualTo(147_840 + 770);
            ParameterCounts full = new FineTuningMethod.Full().apply(f, manager);
            assertThat(full.trainable()).isEqualTo(22_565_376L + 147_840 + 770);
        }
    }

    /**
     * Training through the shared loop: under LoRA the pooler (base) stays bit-identical while the
     * classifier and the adapters move; under head-only freezing the pooler trains with the
     * classifier and nothing else changes. Dropout (0.1) is on in the head.
     */
    @Test
    void trainingMovesWhatEachMethodTrainsAndNothingElse() throws Exception {
        List<LabelledText> train = sentimentTrain();
        PretrainedModel miniLm = ModelCatalog.resolve(ModelCatalog.MINILM_L6);
        try (InputStream in = miniLm.tokenizer().open();
                HuggingFaceTokenizer tokenizer =
                        HuggingFaceTokenizer.newInstance(
                                in, Map.of("truncation", "true", "maxLength", "32"))) {
            for (FineTuningMethod method :
                    List.of(FineTuningMethod.Lora.defaults(), FineTuningMethod.Freeze.headOnly())) {
                SequenceClassifier c =
                        new SequenceClassifier(
                                new BertEncoder(bert()), 2, 0.1f, ClassifierHead.CLS_POOLER);
                try (Model model =
                        Model.newInstance("head", runtime.device(), EngineRuntime.ENGINE)) {
                    init(c, model.getNDManager());
                    randomize(c.namedParameters(), new Random(3), 0.2);
                    model.setBlock(c);
                    method.apply(c, model.getNDManager());
                    Map<String, float[]> before = snapshot(c);
                    new ClassifierTrainer(tokenizer)
                            .train(
                                    model,
                                    c,
                                    train,
                                    new TrainingSettings(1, 8, 1e-2f, 0.01f, 0f, 1f, 32, 1),
                                    r -> {});
                    List<String> changed =
                            snapshot(c).entrySet().stream()
                                    .filter(
                                            e ->
                                                    !Arrays.equals(
                                                            e.getValue(), before.get(e.getKey())))
                                    .map(Map.Entry::getKey)
                                    .toList();
                    if (method instanceof FineTuningMethod.Lora) {
                        assertThat(changed)
                                .allMatch(n -> n.contains(".lora_") || n.startsWith("classifier."))
                                .contains(
                                        "classifier.weight",
                                        "encoder.layer.1.attention.self.value.lora_B.weight")
                                .noneMatch(n -> n.startsWith("pooler."));
                    } else {
                        assertThat(changed)
                                .containsExactlyInAnyOrder(
                                        "pooler.dense.weight",
                                        "pooler.dense.bias",
                                        "classifier.weight",
                                        "classifier.bias");
                    }
                }
            }
        }
    }

    /**
     * Exact resume with the Hugging Face head under full fine-tuning: the pooler's weights and
     * AdamW state are in the checkpoint like any trained parameter, and the head's dropout masks
     * replay. A run killed after step 6 and resumed from its step-4 checkpoint takes steps 5-9 with
     * the uninterrupted run's losses.
     */
    @Test
    void aResumedRunWithTheHuggingFaceHeadContinuesTheUninterruptedOne(@TempDir Path dir)
            throws Exception {
        List<Double> uninterrupted = lossCurve(Checkpointing.none(), -1);
        assertThat(uninterrupted).hasSize(9);
        List<Path> saved = new ArrayList<>();
        List<Double> killed =
                lossCurve(new Checkpointing(dir, 4, Optional.empty(), (d, st) -> saved.add(d)), 6);
        assertThat(killed).containsExactlyElementsOf(uninterrupted.subList(0, 5));
        List<Double> resumed =
                lossCurve(
                        new Checkpointing(
                                dir.resolve("resumed"),
                                4,
                                Optional.of(saved.get(0)),
                                (d, st) -> {}),
                        -1);
        assertThat(resumed).hasSize(5);
        for (int i = 0; i < 5; i++) {
            assertThat(resumed.get(i))
                    .as("loss of step %d", i + 5)
                    .isCloseTo(uninterrupted.get(i + 4), org.assertj.core.data.Offset.offset(1e-5));
        }
    }

    /**
     * 9 steps of full fine-tuning (12 examples, batches of 4, 3 epochs), stopped at {@code stopAt}.
     */
    private List<Double> lossCurve(Checkpointing checkpointing, long stopAt) throws Exception {
        List<LabelledText> train = sentimentTrain().subList(0, 12);
        List<Double> losses = new ArrayList<>();
        try (InputStream in = ModelCatalog.resolve(ModelCatalog.MINILM_L6).tokenizer().open();
                HuggingFaceTokenizer tokenizer =
                        HuggingFaceTokenizer.newInstance(
                                in, Map.of("truncation", "true", "maxLength", "32"));
                Model model = Model.newInstance("resume", runtime.device(), EngineRuntime.ENGINE)) {
            ai.djl.engine.Engine.getInstance().setRandomSeed(7);
            SequenceClassifier c =
                    new SequenceClassifier(
                            new BertEncoder(bert().withoutDropout()),
                            2,
                            0.1f,
                            ClassifierHead.CLS_POOLER);
            init(c, model.getNDManager());
            randomize(c.namedParameters(), new Random(3), 0.2);
            model.setBlock(c);
            new FineTuningMethod.Full().apply(c, model.getNDManager());
            try {
                new ClassifierTrainer(tokenizer)
                        .train(
                                model,
                                c,
                                train,
                                new TrainingSettings(3, 4, 1e-3f, 0.01f, 0.1f, 1f, 32, 42),
                                r -> {
                                    if (r.step() == stopAt) {
                                        throw new IllegalStateException("worker killed");
                                    }
                                    losses.add(r.loss());
                                },
                                checkpointing);
            } catch (IllegalStateException e) {
                assertThat(e).hasMessage("worker killed");
            }
        }
        return losses;
    }

    static List<LabelledText> sentimentTrain() throws Exception {
        List<LabelledText> train = new ArrayList<>();
        try (var r =
                new java.io.BufferedReader(
                        new java.io.InputStreamReader(
                                HuggingFaceHeadTest.class.getResourceAsStream(
                                        "/datasets/sentiment-train.jsonl"),
                                StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                JsonNode n = JSON.readTree(line);
                train.add(
                        new LabelledText(
                                n.path("text").asText(),
                                n.path("label").asText().equals("pos") ? 1 : 0));
            }
        }
        return train;
    }

    static Map<String, float[]> snapshot(SequenceClassifier c) {
        Map<String, float[]> values = new java.util.HashMap<>();
        c.namedParameters().forEach((name, p) -> values.put(name, p.getArray().toFloatArray()));
        return values;
    }

    // ---- helpers

    static long[][] padded(long pad) {
        long[][] ids = new long[IDS.length][];
        for (int i = 0; i < IDS.length; i++) {
            ids[i] = IDS[i].clone();
            for (int j = 0; j < ids[i].length; j++) {
                if (MASK[i][j] == 0) {
                    ids[i][j] = pad;
                }
            }
        }
        return ids;
    }

    static void init(SequenceClassifier c, NDManager manager) {
        c.initialize(manager, DataType.FLOAT32, new Shape(1, 8), new Shape(1, 8));
    }

    /** Every parameter N(0, 0.2); LayerNorm scales 1 + N(0, 0.2). Seeded. */
    static SequenceClassifier randomClassifier(BertConfig config, NDManager manager, long seed) {
        SequenceClassifier c =
                new SequenceClassifier(new BertEncoder(config), 3, 0.1f, ClassifierHead.CLS_POOLER);
        init(c, manager);
        randomize(c.namedParameters(), new Random(seed), 0.2);
        return c;
    }

    static void randomize(Map<String, Parameter> params, Random random, double std) {
        params.forEach(
                (name, p) -> {
                    NDArray a = p.getArray();
                    float[] v = new float[(int) a.size()];
                    boolean scale = name.endsWith("LayerNorm.weight");
                    for (int i = 0; i < v.length; i++) {
                        v[i] = (float) ((scale ? 1 : 0) + std * random.nextGaussian());
                    }
                    NativeCopy.copyInto(a, v);
                });
    }

    static float[] logits(SequenceClassifier c, NDManager manager, long[][] ids) {
        try (NDManager m = manager.newSubManager()) {
            int b = ids.length;
            int t = ids[0].length;
            NDArray in = m.create(flatten(ids), new Shape(b, t));
            NDArray mask = m.create(flatten(MASK), new Shape(b, t));
            return c.forward(new ParameterStore(m, false), new NDList(in, mask), false)
                    .singletonOrThrow()
                    .toFloatArray();
        }
    }

    static long[] flatten(long[][] rows) {
        return Arrays.stream(rows).flatMapToLong(Arrays::stream).toArray();
    }

    static JsonNode reference(Path work, Path dir, long[][] ids) throws Exception {
        ObjectNode request = JSON.createObjectNode();
        ArrayNode cases = request.putArray("cases");
        Path output = work.resolve("logits.json");
        ObjectNode c = cases.addObject();
        c.put("model_dir", dir.toString());
        c.set("input_ids", JSON.valueToTree(ids));
        c.set("attention_mask", JSON.valueToTree(MASK));
        c.put("output", output.toString());
        Path requestFile = work.resolve("request.json");
        Files.writeString(requestFile, JSON.writeValueAsString(request));
        Process p =
                new ProcessBuilder(PYTHON, script().toString(), requestFile.toString())
                        .redirectErrorStream(true)
                        .start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(300, TimeUnit.SECONDS)).as("reference finished").isTrue();
        assertThat(p.exitValue()).as("reference failed:\n%s", log).isZero();
        return JSON.readTree(output.toFile());
    }

    static Path script() {
        Path dir = Path.of("").toAbsolutePath();
        while (dir != null) {
            Path s = dir.resolve("bench/bert_classifier_reference.py");
            if (Files.isRegularFile(s)) {
                return s;
            }
            dir = dir.getParent();
        }
        throw new IllegalStateException(
                "bench/bert_classifier_reference.py not found above the working directory");
    }

    static void requireTorch() throws Exception {
        String hint =
                "the reference needs " + PYTHON + " with torch: apt-get install python3-torch";
        if (!Files.isExecutable(Path.of(PYTHON))) {
            fail(PYTHON + " is missing; " + hint);
        }
        Process p =
                new ProcessBuilder(PYTHON, "-c", "import torch").redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
            fail("cannot import torch (" + out.strip() + "); " + hint);
        }
    }
}
