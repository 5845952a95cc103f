package io.tuneline.engine.bench;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import io.tuneline.engine.model.llama.LlamaCheckpoint;
import io.tuneline.engine.model.llama.LlamaInference;
import io.tuneline.engine.model.llama.LlamaLmModel;
import io.tuneline.engine.runtime.EngineRuntime;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Loads a Llama-family Hugging Face directory (single-file or sharded, any float dtype) and
 * greedily generates a few tokens with the key/value cache; prints one JSON line with the load
 * time, the peak Java heap (the loader reads one tensor at a time, so this stays near the largest
 * tensor's size however large the model) and the generation speed.
 *
 * <p>Usage: {@code LlamaLoad DIR [NEW_TOKENS [LOGITS_JSON]]}; run with a small {@code -Xmx} to
 * check the claim. With {@code LOGITS_JSON}, the logits of the prompt are written there as {@code
 * {"input_ids": [[...]], "logits": [[[...]]]}} for a comparison with {@code
 * bench/llama_reference.py}.
 */
public final class LlamaLoad {
    private LlamaLoad() {}

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]);
        int newTokens = args.length > 1 ? Integer.parseInt(args[1]) : 8;
        EngineRuntime runtime = EngineRuntime.start(2);
        long start = System.nanoTime();
        try (Model model = LlamaCheckpoint.load(dir, runtime.device())) {
            double loadSeconds = (System.nanoTime() - start) / 1e9;
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            long params =
                    lm.namedParameters().values().stream()
                            .mapToLong(p -> p.getArray().size())
                            .sum();
            long peakHeap = 0;
            for (MemoryPoolMXBean pool : ManagementFactory.getMemoryPoolMXBeans()) {
                if (pool.getType() == MemoryType.HEAP) {
                    peakHeap += pool.getPeakUsage().getUsed();
                }
            }
            long[] prompt = {lm.config().bosTokenId().orElse(1), 791, 6460, 315, 9822, 374, 12};
            if (args.length > 2) {
                writeLogits(lm, model, prompt, Path.of(args[2]));
            }
            long t0 = System.nanoTime();
            long[] tokens =
                    LlamaInference.greedy(lm, model.getNDManager(), prompt, newTokens, true);
            double genSeconds = (System.nanoTime() - t0) / 1e9;
            System.out.printf(
                    "{\"model_type\": \"%s\", \"parameters\": %d, \"load_s\": %.1f,"
                            + " \"peak_heap_mb\": %d, \"max_heap_mb\": %d, \"new_tokens\": %s,"
                            + " \"tokens_per_s\": %.2f}%n",
                    lm.config().modelType(),
                    params,
                    loadSeconds,
                    peakHeap >> 20,
                    Runtime.getRuntime().maxMemory() >> 20,
                    Arrays.toString(tokens),
                    newTokens / genSeconds);
        }
    }

    private static void writeLogits(LlamaLmModel lm, Model model, long[] prompt, Path out)
            throws java.io.IOException {
        try (NDManager m = model.getNDManager().newSubManager()) {
            NDArray logits =
                    lm.logits(
                            new ParameterStore(m, false),
                            m.create(prompt, new Shape(1, prompt.length)),
                            null,
                            null,
                            false);
            float[] flat = logits.toFloatArray();
            int v = lm.config().vocabSize();
            StringBuilder json = new StringBuilder("{\"input_ids\": [");
            json.append(Arrays.toString(prompt)).append("], \"logits\": [[");
            for (int t = 0; t < prompt.length; t++) {
                json.append(t == 0 ? "[" : ", [");
                for (int i = 0; i < v; i++) {
                    json.append(i == 0 ? "" : ", ").append(flat[t * v + i]);
                }
                json.append(']');
            }
            json.append("]]}");
            Files.writeString(out, json);
        }
    }
}
