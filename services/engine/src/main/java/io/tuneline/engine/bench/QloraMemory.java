package io.tuneline.engine.bench;

import ai.djl.Model;
import ai.djl.engine.Engine;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.model.CausalLanguageModel;
import io.tuneline.engine.model.CausalLmCheckpoint;
import io.tuneline.engine.model.gpt2.Gpt2Checkpoint;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.llama.LlamaCheckpoint;
import io.tuneline.engine.model.llama.LlamaConfig;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.Checkpointing;
import io.tuneline.engine.train.LmExample;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.engine.train.Validation;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.OptionalDouble;

/**
 * QLoRA against LoRA on one Llama-layout model and on GPT-2 small's layout, for {@code
 * bench/qlora-memory.sh}, one JVM per run so that each peak resident set (VmHWM) belongs to one
 * run. Not a test: it measures.
 *
 * <p>{@code QloraMemory write DIR} / {@code write-gpt2 DIR}: writes the bench's random Llama
 * checkpoint (float32, std 0.02, {@link #CONFIG}) or a random GPT-2 of {@link #GPT2}'s shape.
 * {@code QloraMemory MODE DIR DATA STEPS}: the family is the directory's {@code model_type}; MODE
 * is {@code lora} (fp32 base), {@code lora-ckpt} (the same with activation checkpointing), {@code
 * qlora} (NF4 base streamed from the file, double quantization, activation checkpointing: the job
 * defaults), {@code qlora-nodq} (without double quantization) or {@code qlora-nockpt} (without
 * activation checkpointing). LoRA r 8, alpha 16, on every projection (Llama's seven, GPT-2's four
 * Conv1D modules), the same seed and data in every mode. DATA is a JSONL file with a {@code text}
 * field (the repository's {@code examples/data/debian-sections.jsonl}); its texts become byte-level
 * token ids (byte b is id 3 + b), the first {@value #HELD_OUT} are held out. Prints one JSON line:
 * resident bytes of the linear weights, RSS after loading, peak RSS, tokens/s of the timed steps
 * (after one warm-up step), held-out loss of the base and after training.
 *
 * <p>{@code QloraMemory speed DIR DATA PAIRS}: tokens/s of QLoRA (the job defaults) against LoRA in
 * one JVM, both models loaded, one training step of each in turn (LoRA, QLoRA, LoRA, QLoRA, ...)
 * after a warm-up step each; prints each pair's ratio and their median, so that a load change on a
 * shared machine hits both sides of a pair alike.
 */
public final class QloraMemory {
    /** Llama layout, weights dominate: 8 layers of 1024 wide, grouped-query attention, SwiGLU. */
    static final String CONFIG =
            "{\"model_type\": \"llama\", \"vocab_size\": 320, \"hidden_size\": 1024,"
                    + " \"intermediate_size\": 2816, \"num_hidden_layers\": 8,"
                    + " \"num_attention_heads\": 16, \"num_key_value_heads\": 4, \"head_dim\": 64,"
                    + " \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-5,"
                    + " \"rope_theta\": 10000.0, \"tie_word_embeddings\": false,"
                    + " \"bos_token_id\": 1, \"eos_token_id\": 2}";

    /**
     * GPT-2 small's shape (Radford et al. 2019; the {@code gpt2} checkpoint: 12 layers of 768, 12
     * heads, 50,257 tokens, 1024 positions): 84,934,656 projection weights, 340 MB in fp32, and a
     * tied 50,257 x 768 embedding (154 MB) that stays fp32 under QLoRA.
     */
    static final Gpt2Config GPT2 = Gpt2Config.of(50257, 1024, 768, 12, 12);

    static final int HELD_OUT = 16;
    static final int SEQ = 64;
    static final int BATCH = 2;
    private static final List<String> LLAMA_LINEAR =
            List.of("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj");
    private static final List<String> GPT2_LINEAR = List.of("c_attn", "c_proj", "c_fc");

    private QloraMemory() {}

    public static void main(String[] args) throws Exception {
        if (args.length == 2 && args[0].equals("write")) {
            LlamaCheckpoint.saveRandom(LlamaConfig.parse(CONFIG), Path.of(args[1]), 1234, 0.02);
            return;
        }
        if (args.length == 2 && args[0].equals("write-gpt2")) {
            Gpt2Checkpoint.saveRandom(GPT2, 1234, Path.of(args[1]));
            return;
        }
        if (args.length != 4) {
            throw new IllegalArgumentException(
                    "usage: QloraMemory write|write-gpt2 DIR | QloraMemory"
                            + " lora|lora-ckpt|qlora|qlora-nodq|qlora-nockpt|speed DIR DATA STEPS");
        }
        if (args[0].equals("speed")) {
            speed(Path.of(args[1]), examples(Path.of(args[2])), Integer.parseInt(args[3]));
            return;
        }
        boolean baseLossOnly = args[0].startsWith("base-loss:");
        String mode = baseLossOnly ? args[0].substring("base-loss:".length()) : args[0];
        Path dir = Path.of(args[1]);
        List<LmExample> all = examples(Path.of(args[2]));
        int steps = Integer.parseInt(args[3]);
        List<LmExample> heldOut = all.subList(0, HELD_OUT);
        List<LmExample> train = all.subList(HELD_OUT, HELD_OUT + (steps + 1) * BATCH);

        FineTuningMethod method = method(mode, dir);
        boolean checkpointing =
                mode.equals("lora-ckpt") || mode.equals("qlora") || mode.equals("qlora-nodq");
        EngineRuntime runtime = EngineRuntime.start(2);
        long loadStart = System.nanoTime();
        try (Model model = load(dir, runtime, method)) {
            double loadSeconds = (System.nanoTime() - loadStart) / 1e9;
            long rssAfterLoad = rssMb("VmRSS:");
            long hwmAfterLoad = rssMb("VmHWM:");
            long rssAfterLoadGc = rssAfterGc();
            CausalLanguageModel lm = (CausalLanguageModel) model.getBlock();
            Engine.getInstance().setRandomSeed(42);
            method.apply(lm, model.getNDManager());
            long linearBytes = 0;
            long linearElements = 0;
            for (Dense d : lm.linears().values()) {
                linearElements += d.weightElements();
                linearBytes +=
                        d.base() instanceof Dense.WeightStore.Nf4 q
                                ? q.residentBytes()
                                : d.weightElements() * 4;
            }
            int maxLength = SEQ;
            long hwmAfterApply = rssMb("VmHWM:");
            if (baseLossOnly) {
                // LoRA's B is zero: the loss of the base as this mode holds it (fp32 or NF4).
                System.out.printf(
                        Locale.ROOT,
                        "{\"mode\":\"%s\",\"held_out_loss_base\":%.4f,\"held_out_tokens\":%d}%n",
                        mode,
                        CausalLmTrainer.validationLoss(model, lm, heldOut, maxLength),
                        HELD_OUT * (SEQ - 1));
                return;
            }
            TrainingSettings s =
                    new TrainingSettings(1, BATCH, 1e-3f, 0f, 0f, 1f, SEQ, 42)
                            .withActivationCheckpointing(checkpointing);
            new CausalLmTrainer().train(model, lm, train.subList(0, BATCH), s, r -> {});
            long start = System.nanoTime();
            List<Double> losses = new ArrayList<>();
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            train.subList(BATCH, train.size()),
                            new TrainingSettings(
                                    1,
                                    BATCH,
                                    1e-3f,
                                    0f,
                                    0f,
                                    1f,
                                    SEQ,
                                    43,
                                    io.tuneline.engine.train.LearningRateSchedule.Shape.CONSTANT,
                                    1,
                                    steps,
                                    checkpointing),
                            r -> losses.add(r.loss()));
            double seconds = (System.nanoTime() - start) / 1e9;
            long trainingPeak = rssMb("VmHWM:");
            long rssAfterTrainingGc = rssAfterGc();
            double tunedLoss = CausalLmTrainer.validationLoss(model, lm, heldOut, maxLength);
            System.out.printf(
                    Locale.ROOT,
                    "{\"mode\":\"%s\",\"activation_checkpointing\":%b,\"linear_weight_elements\":%d,"
                            + "\"linear_weight_bytes\":%d,\"load_s\":%.1f,\"rss_after_load_mb\":%d,"
                            + "\"rss_after_load_gc_mb\":%d,\"rss_after_training_gc_mb\":%d,"
                            + "\"peak_rss_after_load_mb\":%d,\"peak_rss_after_apply_mb\":%d,\"peak_rss_after_training_mb\":%d,\"peak_rss_mb\":%d,\"steps\":%d,"
                            + "\"tokens_per_second\":%.1f,"
                            + "\"held_out_loss_tuned\":%.4f,\"last_train_loss\":%.4f}%n",
                    mode,
                    checkpointing,
                    linearElements,
                    linearBytes,
                    loadSeconds,
                    rssAfterLoad,
                    rssAfterLoadGc,
                    rssAfterTrainingGc,
                    hwmAfterLoad,
                    hwmAfterApply,
                    trainingPeak,
                    rssMb("VmHWM:"),
                    losses.size(),
                    (double) losses.size() * BATCH * SEQ / seconds,
                    tunedLoss,
                    losses.isEmpty() ? Double.NaN : losses.get(losses.size() - 1));
        }
    }

    /** The mode's method, LoRA on every projection of the directory's family. */
    static FineTuningMethod method(String mode, Path dir) throws IOException {
        List<String> targets =
                CausalLmCheckpoint.modelType(dir).equals("gpt2") ? GPT2_LINEAR : LLAMA_LINEAR;
        FineTuningMethod.Lora lora = new FineTuningMethod.Lora(8, 16f, 0f, targets);
        return switch (mode) {
            case "lora", "lora-ckpt" -> lora;
            case "qlora", "qlora-nockpt" -> new FineTuningMethod.Qlora(lora, 64, true);
            case "qlora-nodq" -> new FineTuningMethod.Qlora(lora, 64, false);
            default -> throw new IllegalArgumentException("mode: " + mode);
        };
    }

    /** The directory's model, a QLoRA base streamed into NF4 as the worker loads it. */
    static Model load(Path dir, EngineRuntime runtime, FineTuningMethod method) throws IOException {
        return CausalLmCheckpoint.load(
                dir,
                runtime.device(),
                OptionalDouble.empty(),
                method instanceof FineTuningMethod.Qlora q
                        ? Optional.of(q.loading())
                        : Optional.empty());
    }

    /**
     * LoRA (no checkpointing, its job default) and QLoRA (double quantization, checkpointing, the
     * job defaults) on the same model in one JVM, one step each in turn over the same batches;
     * prints each pair's tokens/s ratio QLoRA / LoRA and the median.
     */
    static void speed(Path dir, List<LmExample> all, int pairs) throws IOException {
        EngineRuntime runtime = EngineRuntime.start(2);
        List<LmExample> train = all.subList(HELD_OUT, all.size());
        FineTuningMethod lora = method("lora", dir);
        FineTuningMethod qlora = method("qlora", dir);
        try (Model loraModel = load(dir, runtime, lora);
                Model qloraModel = load(dir, runtime, qlora)) {
            CausalLanguageModel loraLm = (CausalLanguageModel) loraModel.getBlock();
            CausalLanguageModel qloraLm = (CausalLanguageModel) qloraModel.getBlock();
            Engine.getInstance().setRandomSeed(42);
            lora.apply(loraLm, loraModel.getNDManager());
            Engine.getInstance().setRandomSeed(42);
            qlora.apply(qloraLm, qloraModel.getNDManager());
            List<Double> ratios = new ArrayList<>();
            List<Double> loraRates = new ArrayList<>();
            List<Double> qloraRates = new ArrayList<>();
            // Pair 0 warms both up (libtorch's first passes allocate and pick kernels).
            for (int pair = 0; pair <= pairs; pair++) {
                int from = (pair * BATCH) % (train.size() - BATCH);
                List<LmExample> batch = train.subList(from, from + BATCH);
                double loraSeconds = step(loraModel, loraLm, batch, false);
                double qloraSeconds = step(qloraModel, qloraLm, batch, true);
                if (pair > 0) {
                    ratios.add(loraSeconds / qloraSeconds);
                    loraRates.add(BATCH * SEQ / loraSeconds);
                    qloraRates.add(BATCH * SEQ / qloraSeconds);
                }
            }
            System.out.printf(
                    Locale.ROOT,
                    "{\"mode\":\"speed\",\"model_type\":\"%s\",\"pairs\":%d,"
                            + "\"qlora_over_lora_tokens_per_second\":%s,"
                            + "\"median_ratio\":%.3f,\"min_ratio\":%.3f,\"max_ratio\":%.3f,"
                            + "\"median_lora_tokens_per_second\":%.1f,"
                            + "\"median_qlora_tokens_per_second\":%.1f}%n",
                    CausalLmCheckpoint.modelType(dir),
                    pairs,
                    ratios.stream().map(r -> String.format(Locale.ROOT, "%.3f", r)).toList(),
                    median(ratios),
                    ratios.stream().mapToDouble(Double::doubleValue).min().orElse(Double.NaN),
                    ratios.stream().mapToDouble(Double::doubleValue).max().orElse(Double.NaN),
                    median(loraRates),
                    median(qloraRates));
        }
    }

    /** Seconds of one training step on {@code batch} (one batch, one optimizer step). */
    private static double step(
            Model model, CausalLanguageModel lm, List<LmExample> batch, boolean checkpointing)
            throws IOException {
        TrainingSettings s =
                new TrainingSettings(1, BATCH, 1e-3f, 0f, 0f, 1f, SEQ, 42)
                        .withActivationCheckpointing(checkpointing);
        long start = System.nanoTime();
        new CausalLmTrainer()
                .train(model, lm, batch, s, Validation.none(), r -> {}, Checkpointing.none());
        return (System.nanoTime() - start) / 1e9;
    }

    static double median(List<Double> values) {
        List<Double> sorted = values.stream().sorted().toList();
        int n = sorted.size();
        if (n == 0) {
            return Double.NaN;
        }
        return n % 2 == 1 ? sorted.get(n / 2) : (sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2;
    }

    /**
     * Each text's UTF-8 bytes as token ids (byte b is id 3 + b; 0-2 are padding, BOS, EOS), BOS
     * first, cut to {@link #SEQ}; only texts at least that long, so every batch is full.
     */
    static List<LmExample> examples(Path jsonl) throws IOException {
        ObjectMapper json = new ObjectMapper();
        List<LmExample> out = new ArrayList<>();
        for (String line : Files.readAllLines(jsonl)) {
            if (line.isBlank()) {
                continue;
            }
            byte[] bytes =
                    json.readTree(line).path("text").asText().getBytes(StandardCharsets.UTF_8);
            if (bytes.length < SEQ - 1) {
                continue;
            }
            long[] ids = new long[SEQ];
            ids[0] = 1;
            for (int i = 1; i < SEQ; i++) {
                ids[i] = 3 + (bytes[i - 1] & 0xFF);
            }
            out.add(LmExample.of(ids));
        }
        return out;
    }

    /**
     * VmRSS in MiB after a full collection: the resident set without the garbage the load left in
     * the heap (G1 gives the freed heap back after a full GC), which the peak (VmHWM) still counts.
     */
    static long rssAfterGc() throws IOException {
        System.gc();
        return rssMb("VmRSS:");
    }

    /** A line of /proc/self/status in MiB. */
    static long rssMb(String field) throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith(field)) {
                return Long.parseLong(line.replaceAll("\\D", "")) / 1024;
            }
        }
        return -1;
    }
}
