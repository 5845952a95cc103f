package io.tuneline.engine.bench;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
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
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.ClassifierTrainer;
import io.tuneline.engine.train.LabelledText;
import io.tuneline.engine.train.TrainingSettings;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * Training throughput of the engine on the real MiniLM, for {@code bench/training-throughput.sh},
 * which runs the same steps in plain PyTorch beside it. Not a test: it measures, it asserts
 * nothing.
 *
 * <p>{@code TrainingThroughput METHOD STEPS [EXPORT_DIR]}: METHOD is full, freeze (top two layers
 * and the head) or lora (r=8 on query/value); batches of 8 sequences of exactly 32 tokens. Warms up
 * for 3 steps, then times STEPS steps of {@link ClassifierTrainer} (tokenization included) and
 * prints one JSON line. EXPORT_DIR receives {@code base.safetensors} (the untrained classifier) for
 * the PyTorch side.
 */
public final class TrainingThroughput {
    static final int BATCH = 8;
    static final int SEQ = 32;
    static final int WARMUP = 3;

    private TrainingThroughput() {}

    public static void main(String[] args) throws Exception {
        String method = args[0];
        int steps = Integer.parseInt(args[1]);
        EngineRuntime runtime = EngineRuntime.start(2);
        PretrainedModel base = ModelCatalog.resolve(ModelCatalog.MINILM_L6);
        byte[] onnx;
        try (InputStream in = base.weights().open()) {
            onnx = in.readAllBytes();
        }
        HuggingFaceTokenizer tokenizer;
        try (InputStream in = base.tokenizer().open()) {
            tokenizer =
                    HuggingFaceTokenizer.newInstance(
                            in, Map.of("truncation", "true", "maxLength", Integer.toString(SEQ)));
        }
        SequenceClassifier classifier =
                new SequenceClassifier(new BertEncoder(BertConfig.miniLmL6()), 2, 0.1f);
        try (Model model = Model.newInstance("bench", runtime.device(), EngineRuntime.ENGINE)) {
            classifier.initialize(
                    model.getNDManager(), DataType.FLOAT32, new Shape(1, SEQ), new Shape(1, SEQ));
            BertOnnxImport.load(OnnxGraph.parse(onnx), classifier.encoder());
            model.setBlock(classifier);
            if (args.length > 2) {
                Path dir = Files.createDirectories(Path.of(args[2]));
                ClassifierWeights.writeMerged(classifier, dir.resolve("base.safetensors"));
            }
            FineTuningMethod m =
                    switch (method) {
                        case "full" -> new FineTuningMethod.Full();
                        case "freeze" -> new FineTuningMethod.Freeze(2, false, List.of());
                        case "lora" -> FineTuningMethod.Lora.defaults();
                        default ->
                                throw new IllegalArgumentException("method: full, freeze or lora");
                    };
            ParameterCounts counts = m.apply(classifier, model.getNDManager());
            ClassifierTrainer trainer = new ClassifierTrainer(tokenizer);
            trainer.train(model, classifier, texts(WARMUP * BATCH, 1), settings(), r -> {});
            long start = System.nanoTime();
            trainer.train(model, classifier, texts(steps * BATCH, 2), settings(), r -> {});
            double seconds = (System.nanoTime() - start) / 1e9;
            System.out.printf(
                    Locale.ROOT,
                    "{\"impl\":\"djl\",\"method\":\"%s\",\"steps\":%d,\"seconds\":%.3f,\"tokens_per_second\":%.1f,\"trainable\":%d,\"peak_rss_mb\":%d}%n",
                    method,
                    steps,
                    seconds,
                    steps * BATCH * SEQ / seconds,
                    counts.trainable(),
                    peakRssMb());
        }
        tokenizer.close();
    }

    private static TrainingSettings settings() {
        return new TrainingSettings(1, BATCH, 2e-4f, 0.01f, 0f, 1f, SEQ, 42);
    }

    /** Sentences long enough to fill all 32 tokens, so both sides process the same token count. */
    static List<LabelledText> texts(int n, long seed) {
        String[] words = {
            "the", "film", "was", "quiet", "bright", "service", "slow", "kind", "staff", "music",
            "long", "story", "ending", "warm", "cold", "room", "price", "fair", "great", "poor"
        };
        Random random = new Random(seed);
        List<LabelledText> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            StringBuilder s = new StringBuilder();
            for (int w = 0; w < 40; w++) {
                s.append(words[random.nextInt(words.length)]).append(' ');
            }
            out.add(new LabelledText(s.toString().trim(), i % 2));
        }
        return out;
    }

    /** The process's peak resident memory (VmHWM), in MiB. */
    static long peakRssMb() throws java.io.IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmHWM:")) {
                return Long.parseLong(line.replaceAll("\\D", "")) / 1024;
            }
        }
        return -1;
    }
}
