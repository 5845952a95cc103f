package io.tuneline.engine.train;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.export.ClassifierWeights;
import io.tuneline.engine.io.onnx.OnnxGraph;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.model.bert.BertOnnxImport;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.runtime.EngineRuntime;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * QLoRA on the real MiniLM (BERT family): every linear layer of the encoder frozen in NF4, LoRA on
 * query/value, nothing family-specific. It trains, the packed base does not move, only LoRA and the
 * head get gradients, and the merged full-precision export computes what the QLoRA model does.
 */
class QloraMiniLmTest {
    private static final List<String> LABELS = List.of("neg", "pos");
    private static final int MAX_LEN = 32;

    @Test
    void qloraTrainsLoraOnAFrozenNf4BaseAndMergesToTheSameModel(@TempDir Path dir)
            throws Exception {
        EngineRuntime runtime = EngineRuntime.start(2);
        PretrainedModel pretrained = ModelCatalog.resolve(ModelCatalog.MINILM_L6);
        byte[] onnx;
        try (InputStream in = pretrained.weights().open()) {
            onnx = in.readAllBytes();
        }
        HuggingFaceTokenizer tokenizer;
        try (InputStream in = pretrained.tokenizer().open()) {
            tokenizer =
                    HuggingFaceTokenizer.newInstance(
                            in, Map.of("truncation", "true", "maxLength", "" + MAX_LEN));
        }
        List<LabelledText> train = read("/datasets/sentiment-train.jsonl");
        List<LabelledText> test = read("/datasets/sentiment-test.jsonl");
        List<String> probe = test.stream().map(LabelledText::text).toList();
        ai.djl.engine.Engine.getInstance().setRandomSeed(11);
        SequenceClassifier classifier =
                new SequenceClassifier(new BertEncoder(BertConfig.miniLmL6()), 2, 0.1f);
        try (Model model = newModel(runtime, classifier, onnx);
                Model merged =
                        newModel(
                                runtime,
                                new SequenceClassifier(
                                        new BertEncoder(BertConfig.miniLmL6()), 2, 0.1f),
                                onnx)) {
            float[] hiddenFp32 = hidden(model, classifier, tokenizer, probe);
            float[] logitsFp32 = logits(model, classifier, tokenizer, probe);
            long fp32Bytes = 0;
            for (Dense d : classifier.linears().values()) {
                fp32Bytes += 4 * d.weightElements();
            }

            ClassifierTrainer trainer = new ClassifierTrainer(tokenizer);
            double heldOutFp32 = trainer.validationLoss(model, classifier, test, MAX_LEN);
            FineTuningMethod.Qlora qlora =
                    new FineTuningMethod.Qlora(FineTuningMethod.Lora.defaults());
            ParameterCounts counts = qlora.apply(classifier, model.getNDManager());

            // Every linear of the encoder is in NF4 and is no parameter any more.
            Map<String, byte[]> packed = new LinkedHashMap<>();
            long nf4Bytes = 0;
            for (var e : classifier.linears().entrySet()) {
                assertThat(e.getValue().base()).isInstanceOf(Dense.WeightStore.Nf4.class);
                var w = ((Dense.WeightStore.Nf4) e.getValue().base()).weight();
                assertThat(w.blocksize()).isEqualTo(64);
                assertThat(w.doubleQuantized()).isTrue();
                packed.put(e.getKey(), w.packed().clone());
                nf4Bytes += w.residentBytes();
                assertThat(classifier.namedParameters()).doesNotContainKey(e.getKey() + ".weight");
            }
            assertThat(packed).hasSize(6 * 6);
            // Same counts as LoRA (LoraMiniLmTest): 74,498 trainable of 22,639,874.
            assertThat(counts).isEqualTo(new ParameterCounts(74_498, 22_639_874));
            // Only LoRA matrices and the head can get gradients.
            classifier
                    .namedParameters()
                    .forEach(
                            (name, p) ->
                                    assertThat(p.requiresGradient())
                                            .as(name)
                                            .isEqualTo(
                                                    name.contains(".lora_")
                                                            || name.startsWith("classifier.")));

            // B is zero: the QLoRA model is the quantized base. NF4's error on its outputs:
            float[] hiddenNf4 = hidden(model, classifier, tokenizer, probe);
            float[] logitsNf4 = logits(model, classifier, tokenizer, probe);
            double hiddenDiff = maxAbsDiff(hiddenFp32, hiddenNf4);
            double logitDiff = maxAbsDiff(logitsFp32, logitsNf4);
            double heldOutNf4Base = trainer.validationLoss(model, classifier, test, MAX_LEN);

            Map<String, float[]> loraA0 = new LinkedHashMap<>();
            classifier
                    .deltaParameters()
                    .forEach((n, p) -> loraA0.put(n, p.getArray().toFloatArray()));
            List<TrainingListener.StepReport> steps = new ArrayList<>();
            trainer.train(
                    model,
                    classifier,
                    train,
                    new TrainingSettings(4, 8, 2e-3f, 0.01f, 0.1f, 1f, MAX_LEN, 42),
                    steps::add);
            double heldOutAfter = trainer.validationLoss(model, classifier, test, MAX_LEN);

            // The packed base is bit for bit what was quantized.
            for (var e : classifier.linears().entrySet()) {
                assertThat(((Dense.WeightStore.Nf4) e.getValue().base()).weight().packed())
                        .as(e.getKey())
                        .isEqualTo(packed.get(e.getKey()));
            }
            // Gradients passed through the NF4 layers to the input of layer 0: its A moved.
            String a0 = "encoder.layer.0.attention.self.query.lora_A.weight";
            assertThat(
                            Arrays.equals(
                                    loraA0.get(a0),
                                    classifier.deltaParameters().get(a0).getArray().toFloatArray()))
                    .isFalse();
            double first = (steps.get(0).loss() + steps.get(1).loss() + steps.get(2).loss()) / 3;
            int n = steps.size();
            double last =
                    (steps.get(n - 1).loss() + steps.get(n - 2).loss() + steps.get(n - 3).loss())
                            / 3;
            assertThat(last).isLessThan(first);
            assertThat(heldOutAfter).isLessThan(heldOutNf4Base);

            // The merged export (dequantized base + (alpha/r) B A, float32) computes the same.
            float[] logitsQlora = logits(model, classifier, tokenizer, probe);
            Path file = dir.resolve("merged.safetensors");
            ClassifierWeights.writeMerged(classifier, file);
            SequenceClassifier reloaded = (SequenceClassifier) merged.getBlock();
            ClassifierWeights.load(reloaded, file);
            float[] logitsMerged = logits(merged, reloaded, tokenizer, probe);
            double mergeDiff = maxAbsDiff(logitsQlora, logitsMerged);
            assertThat(mergeDiff).isLessThan(1e-4);

            System.out.printf(
                    "QLoRA (NF4 bs64 dq) MiniLM: trainable %d of %d; linear weights %d B fp32 -> %d B NF4 (%.4f);"
                            + " original vs NF4 base: max |hidden| diff %.4f (max |hidden| %.2f), max |logit| diff %.5f;"
                            + " held-out loss (random head) fp32 base %.4f, NF4 base %.4f -> %.4f after %d steps (train loss %.4f -> %.4f, %.0f tokens/s);"
                            + " merged vs QLoRA max |logit| diff %.2e%n",
                    counts.trainable(),
                    counts.total(),
                    fp32Bytes,
                    nf4Bytes,
                    (double) nf4Bytes / fp32Bytes,
                    hiddenDiff,
                    maxAbs(hiddenFp32),
                    logitDiff,
                    heldOutFp32,
                    heldOutNf4Base,
                    heldOutAfter,
                    n,
                    first,
                    last,
                    steps.get(n - 1).tokensPerSecond(),
                    mergeDiff);
            // NF4 moves the outputs, but by a fraction of their size.
            assertThat(hiddenDiff).isGreaterThan(0).isLessThan(0.5 * maxAbs(hiddenFp32));
        } finally {
            tokenizer.close();
        }
    }

    private static Model newModel(EngineRuntime runtime, SequenceClassifier classifier, byte[] onnx)
            throws Exception {
        Model model = Model.newInstance("minilm-qlora", runtime.device(), EngineRuntime.ENGINE);
        classifier.initialize(
                model.getNDManager(),
                DataType.FLOAT32,
                new Shape(1, MAX_LEN),
                new Shape(1, MAX_LEN));
        BertOnnxImport.load(OnnxGraph.parse(onnx), classifier.encoder());
        model.setBlock(classifier);
        return model;
    }

    private static NDList encode(NDManager m, HuggingFaceTokenizer tokenizer, List<String> texts) {
        Encoding[] enc = tokenizer.batchEncode(texts);
        int length = Arrays.stream(enc).mapToInt(e -> e.getIds().length).max().orElse(1);
        long[] ids = new long[texts.size() * length];
        long[] mask = new long[texts.size() * length];
        for (int i = 0; i < enc.length; i++) {
            System.arraycopy(enc[i].getIds(), 0, ids, i * length, enc[i].getIds().length);
            System.arraycopy(
                    enc[i].getAttentionMask(), 0, mask, i * length, enc[i].getIds().length);
        }
        Shape s = new Shape(texts.size(), length);
        return new NDList(m.create(ids, s), m.create(mask, s));
    }

    /** The encoder's last hidden states at unmasked positions. */
    private static float[] hidden(
            Model model, SequenceClassifier c, HuggingFaceTokenizer tok, List<String> texts) {
        try (NDManager m = model.getNDManager().newSubManager()) {
            NDList in = encode(m, tok, texts);
            NDArray h =
                    c.encoder().forward(new ParameterStore(m, false), in, false).singletonOrThrow();
            return h.mul(in.get(1).expandDims(-1).toType(DataType.FLOAT32, false)).toFloatArray();
        }
    }

    private static float[] logits(
            Model model, SequenceClassifier c, HuggingFaceTokenizer tok, List<String> texts) {
        try (NDManager m = model.getNDManager().newSubManager()) {
            return c.forward(new ParameterStore(m, false), encode(m, tok, texts), false)
                    .singletonOrThrow()
                    .toFloatArray();
        }
    }

    static double maxAbsDiff(float[] a, float[] b) {
        assertThat(a).hasSameSizeAs(b);
        double max = 0;
        for (int i = 0; i < a.length; i++) {
            max = Math.max(max, Math.abs(a[i] - b[i]));
        }
        return max;
    }

    static double maxAbs(float[] a) {
        double max = 0;
        for (float v : a) {
            max = Math.max(max, Math.abs(v));
        }
        return max;
    }

    private static List<LabelledText> read(String resource) throws Exception {
        ObjectMapper json = new ObjectMapper();
        List<LabelledText> out = new ArrayList<>();
        try (BufferedReader r =
                new BufferedReader(
                        new InputStreamReader(
                                QloraMiniLmTest.class.getResourceAsStream(resource),
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
