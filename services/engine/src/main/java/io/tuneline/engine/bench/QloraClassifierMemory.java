package io.tuneline.engine.bench;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.ClassifierTrainer;
import io.tuneline.engine.train.LabelledText;
import io.tuneline.engine.train.TrainingSettings;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * QLoRA against LoRA on the built-in MiniLM-L6 classifier (mean head), for {@code
 * bench/qlora-memory.sh}'s {@code minilm:} modes, as {@link QloraMemory} does for the decoders.
 * {@code QloraClassifierMemory MODE DATA STEPS}: MODE {@code lora} (fp32 base), {@code qlora} (NF4
 * base streamed from the ONNX file before the classifier is initialized, double quantization,
 * activation checkpointing: the job defaults) prints one JSON line (resident bytes of the linear
 * weights, RSS after loading, peak RSS, tokens/s); {@code speed} loads both in one JVM and
 * alternates one training step of each for STEPS pairs, printing the per-pair tokens/s ratios QLoRA
 * / LoRA and their median. LoRA r 8, alpha 16 on every linear (query, key, value, dense), batches
 * of {@value #BATCH} texts of {@code examples/data/debian-sections.jsonl} cut to {@value #SEQ}
 * tokens, labelled by section.
 */
public final class QloraClassifierMemory {
    static final int BATCH = 8;
    static final int SEQ = 64;

    private QloraClassifierMemory() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            throw new IllegalArgumentException(
                    "usage: QloraClassifierMemory lora|qlora|speed DATA STEPS");
        }
        String mode = args[0];
        Map<String, Integer> labels = new LinkedHashMap<>();
        List<LabelledText> all = texts(Path.of(args[1]), labels);
        int steps = Integer.parseInt(args[2]);
        PretrainedModel base = ModelCatalog.resolve(ModelCatalog.MINILM_L6);
        EngineRuntime runtime = EngineRuntime.start(2);
        try (InputStream in = base.tokenizer().open();
                HuggingFaceTokenizer tokenizer =
                        HuggingFaceTokenizer.newInstance(
                                in,
                                Map.of("truncation", "true", "maxLength", Integer.toString(SEQ)))) {
            ClassifierTrainer trainer = new ClassifierTrainer(tokenizer);
            if (mode.equals("speed")) {
                speed(runtime, base, trainer, all, labels.size(), steps);
                return;
            }
            boolean qlora = mode.equals("qlora");
            if (!qlora && !mode.equals("lora")) {
                throw new IllegalArgumentException("mode: " + mode);
            }
            long loadStart = System.nanoTime();
            try (Model model = Model.newInstance("minilm-" + mode, runtime.device())) {
                SequenceClassifier c = load(model, base, labels.size(), qlora);
                double loadSeconds = (System.nanoTime() - loadStart) / 1e9;
                long rssAfterLoad = QloraMemory.rssMb("VmRSS:");
                long hwmAfterLoad = QloraMemory.rssMb("VmHWM:");
                long rssAfterLoadGc = QloraMemory.rssAfterGc();
                long linearBytes = 0;
                for (Dense d : c.linears().values()) {
                    linearBytes +=
                            d.base() instanceof Dense.WeightStore.Nf4 q
                                    ? q.residentBytes()
                                    : d.weightElements() * 4;
                }
                step(model, c, trainer, all.subList(0, BATCH), qlora);
                long start = System.nanoTime();
                for (int i = 1; i <= steps; i++) {
                    step(model, c, trainer, all.subList(i * BATCH, (i + 1) * BATCH), qlora);
                }
                double seconds = (System.nanoTime() - start) / 1e9;
                long peak = QloraMemory.rssMb("VmHWM:");
                long rssAfterTrainingGc = QloraMemory.rssAfterGc();
                System.out.printf(
                        Locale.ROOT,
                        "{\"model\":\"minilm-l6\",\"mode\":\"%s\",\"activation_checkpointing\":%b,"
                                + "\"linear_weight_bytes\":%d,\"load_s\":%.1f,"
                                + "\"rss_after_load_mb\":%d,\"rss_after_load_gc_mb\":%d,"
                                + "\"rss_after_training_gc_mb\":%d,\"peak_rss_after_load_mb\":%d,"
                                + "\"peak_rss_mb\":%d,\"steps\":%d,\"texts_per_second\":%.2f}%n",
                        mode,
                        qlora,
                        linearBytes,
                        loadSeconds,
                        rssAfterLoad,
                        rssAfterLoadGc,
                        rssAfterTrainingGc,
                        hwmAfterLoad,
                        peak,
                        steps,
                        steps * BATCH / seconds);
            }
        }
    }

    /**
     * LoRA (no checkpointing) and QLoRA (the job defaults) on MiniLM in one JVM, one step each in
     * turn over the same batches, after a warm-up pair.
     */
    private static void speed(
            EngineRuntime runtime,
            PretrainedModel base,
            ClassifierTrainer trainer,
            List<LabelledText> all,
            int labels,
            int pairs)
            throws IOException {
        try (Model loraModel = Model.newInstance("minilm-lora", runtime.device());
                Model qloraModel = Model.newInstance("minilm-qlora", runtime.device())) {
            SequenceClassifier lora = load(loraModel, base, labels, false);
            SequenceClassifier qlora = load(qloraModel, base, labels, true);
            List<Double> ratios = new ArrayList<>();
            for (int pair = 0; pair <= pairs; pair++) {
                List<LabelledText> batch = all.subList(pair * BATCH, (pair + 1) * BATCH);
                double loraSeconds = step(loraModel, lora, trainer, batch, false);
                double qloraSeconds = step(qloraModel, qlora, trainer, batch, true);
                if (pair > 0) {
                    ratios.add(loraSeconds / qloraSeconds);
                }
            }
            System.out.printf(
                    Locale.ROOT,
                    "{\"model\":\"minilm-l6\",\"mode\":\"speed\",\"pairs\":%d,"
                            + "\"qlora_over_lora_tokens_per_second\":%s,\"median_ratio\":%.3f}%n",
                    pairs,
                    ratios.stream().map(r -> String.format(Locale.ROOT, "%.3f", r)).toList(),
                    QloraMemory.median(ratios));
        }
    }

    /** MiniLM with a mean head; QLoRA's base streamed into NF4 as the worker loads it. */
    private static SequenceClassifier load(
            Model model, PretrainedModel base, int labels, boolean qlora) throws IOException {
        FineTuningMethod.Lora lora =
                new FineTuningMethod.Lora(8, 16f, 0f, List.of("query", "key", "value", "dense"));
        FineTuningMethod method = qlora ? new FineTuningMethod.Qlora(lora, 64, true) : lora;
        Engine.getInstance().setRandomSeed(42);
        SequenceClassifier c =
                new SequenceClassifier(new BertEncoder(base.config().withoutDropout()), labels, 0f);
        base.initializeAndLoad(
                c,
                model.getNDManager(),
                SEQ,
                method instanceof FineTuningMethod.Qlora q
                        ? Optional.of(q.loading())
                        : Optional.empty());
        model.setBlock(c);
        method.apply(c, model.getNDManager());
        return c;
    }

    /** Seconds of one training step on {@code batch}. */
    private static double step(
            Model model,
            SequenceClassifier c,
            ClassifierTrainer trainer,
            List<LabelledText> batch,
            boolean checkpointing) {
        TrainingSettings s =
                new TrainingSettings(1, BATCH, 1e-3f, 0f, 0f, 1f, SEQ, 42)
                        .withActivationCheckpointing(checkpointing);
        long start = System.nanoTime();
        trainer.train(model, c, batch, s, r -> {});
        return (System.nanoTime() - start) / 1e9;
    }

    /** The file's texts, each labelled by its section's index in order of appearance. */
    static List<LabelledText> texts(Path jsonl, Map<String, Integer> labels) throws IOException {
        ObjectMapper json = new ObjectMapper();
        List<LabelledText> out = new ArrayList<>();
        for (String line : Files.readAllLines(jsonl)) {
            if (line.isBlank()) {
                continue;
            }
            JsonNode n = json.readTree(line);
            int label = labels.computeIfAbsent(n.path("label").asText(), k -> labels.size());
            out.add(new LabelledText(n.path("text").asText(), label));
        }
        return out;
    }
}
