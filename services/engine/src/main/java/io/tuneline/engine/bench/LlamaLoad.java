package io.tuneline.engine.bench;

import ai.djl.Model;
import io.tuneline.engine.model.llama.LlamaCheckpoint;
import io.tuneline.engine.model.llama.LlamaInference;
import io.tuneline.engine.model.llama.LlamaLmModel;
import io.tuneline.engine.runtime.EngineRuntime;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Loads a Llama-family Hugging Face directory (single-file or sharded, any float dtype) and
 * greedily generates a few tokens with the key/value cache; prints one JSON line with the load
 * time, the peak Java heap (the loader reads one tensor at a time, so this stays near the largest
 * tensor's size however large the model) and the generation speed.
 *
 * <p>Usage: {@code LlamaLoad DIR [NEW_TOKENS]}; run with a small {@code -Xmx} to check the claim.
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
            long[] prompt = {lm.config().bosTokenId().orElse(1), 791, 6460, 315};
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
}
