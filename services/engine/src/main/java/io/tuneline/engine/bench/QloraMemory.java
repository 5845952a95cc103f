package io.tuneline.engine.bench;

import ai.djl.Model;
import ai.djl.engine.Engine;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.model.llama.LlamaCheckpoint;
import io.tuneline.engine.model.llama.LlamaConfig;
import io.tuneline.engine.model.llama.LlamaLmModel;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.LmExample;
import io.tuneline.engine.train.TrainingSettings;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.function.UnaryOperator;

/**
 * QLoRA against LoRA on one Llama-layout model, for {@code bench/qlora-memory.sh}, one JVM per run
 * so that each peak resident set (VmHWM) belongs to one run. Not a test: it measures.
 *
 * <p>{@code QloraMemory write DIR}: writes the bench's random Llama checkpoint (float32, std 0.02,
 * {@link #CONFIG}). {@code QloraMemory MODE DIR DATA STEPS}: MODE is {@code lora} (fp32 base),
 * {@code lora-ckpt} (the same with activation checkpointing), {@code qlora} (NF4 base streamed from
 * the file, double quantization, activation checkpointing: the job defaults), {@code qlora-nodq}
 * (without double quantization) or {@code qlora-nockpt} (without activation checkpointing). LoRA r
 * 8, alpha 16, on all seven projections, the same seed and data in every mode. DATA is a JSONL file
 * with a {@code text} field (the repository's {@code examples/data/debian-sections.jsonl}); its
 * texts become byte-level token ids (the model's vocabulary is 256 bytes plus padding), the first
 * {@value #HELD_OUT} are held out. Prints one JSON line: resident bytes of the linear weights, RSS
 * after loading, peak RSS, tokens/s of the timed steps (after one warm-up step), held-out loss of
 * the base and after training.
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

    static final int HELD_OUT = 16;
    static final int SEQ = 64;
    static final int BATCH = 2;
    private static final List<String> ALL_LINEAR =
            List.of("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj");

    private QloraMemory() {}

    public static void main(String[] args) throws Exception {
        if (args.length == 2 && args[0].equals("write")) {
            LlamaCheckpoint.saveRandom(LlamaConfig.parse(CONFIG), Path.of(args[1]), 1234, 0.02);
            return;
        }
        if (args.length != 4) {
            throw new IllegalArgumentException(
                    "usage: QloraMemory write DIR | QloraMemory"
                            + " lora|lora-ckpt|qlora|qlora-nodq|qlora-nockpt DIR DATA STEPS");
        }
        boolean baseLossOnly = args[0].startsWith("base-loss:");
        String mode = baseLossOnly ? args[0].substring("base-loss:".length()) : args[0];
        Path dir = Path.of(args[1]);
        List<LmExample> all = examples(Path.of(args[2]));
        int steps = Integer.parseInt(args[3]);
        List<LmExample> heldOut = all.subList(0, HELD_OUT);
        List<LmExample> train = all.subList(HELD_OUT, HELD_OUT + (steps + 1) * BATCH);

        FineTuningMethod.Lora lora = new FineTuningMethod.Lora(8, 16f, 0f, ALL_LINEAR);
        boolean qlora = mode.startsWith("qlora");
        FineTuningMethod method =
                switch (mode) {
                    case "lora", "lora-ckpt" -> lora;
                    case "qlora", "qlora-nockpt" -> new FineTuningMethod.Qlora(lora, 64, true);
                    case "qlora-nodq" -> new FineTuningMethod.Qlora(lora, 64, false);
                    default -> throw new IllegalArgumentException("mode: " + mode);
                };
        boolean checkpointing =
                mode.equals("lora-ckpt") || mode.equals("qlora") || mode.equals("qlora-nodq");
        EngineRuntime runtime = EngineRuntime.start(2);
        long loadStart = System.nanoTime();
        try (Model model =
                LlamaCheckpoint.load(
                        dir,
                        runtime.device(),
                        UnaryOperator.identity(),
                        qlora
                                ? Optional.of(((FineTuningMethod.Qlora) method).loading())
                                : Optional.empty())) {
            double loadSeconds = (System.nanoTime() - loadStart) / 1e9;
            long rssAfterLoad = rssMb("VmRSS:");
            long hwmAfterLoad = rssMb("VmHWM:");
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            Engine.getInstance().setRandomSeed(42);
            method.apply(lm, model.getNDManager());
            long linearBytes = 0;
            long linearElements = 0;
            for (Dense d : lm.linears().values()) {
                linearElements += d.weightElements();
                linearBytes +=
                        d.base() instanceof Dense.WeightStore.Nf4 q
                                ? q.weight().residentBytes()
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
            double tunedLoss = CausalLmTrainer.validationLoss(model, lm, heldOut, maxLength);
            System.out.printf(
                    Locale.ROOT,
                    "{\"mode\":\"%s\",\"activation_checkpointing\":%b,\"linear_weight_elements\":%d,"
                            + "\"linear_weight_bytes\":%d,\"load_s\":%.1f,\"rss_after_load_mb\":%d,"
                            + "\"peak_rss_after_load_mb\":%d,\"peak_rss_after_apply_mb\":%d,\"peak_rss_after_training_mb\":%d,\"peak_rss_mb\":%d,\"steps\":%d,"
                            + "\"tokens_per_second\":%.1f,"
                            + "\"held_out_loss_tuned\":%.4f,\"last_train_loss\":%.4f}%n",
                    mode,
                    checkpointing,
                    linearElements,
                    linearBytes,
                    loadSeconds,
                    rssAfterLoad,
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
