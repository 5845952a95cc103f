package io.tuneline.engine.model.llama;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import java.util.Arrays;

/**
 * Greedy generation with a Llama-family model, with a key/value cache (each step computes only the
 * new token) or without (each step reruns the whole sequence, quadratic in length). Both give the
 * same tokens; the cache is what makes generation from a real checkpoint affordable.
 */
public final class LlamaInference {
    private LlamaInference() {}

    /**
     * Appends {@code newTokens} argmax tokens to {@code prompt} (one sequence, no padding) and
     * returns the generated tokens only.
     */
    public static long[] greedy(
            LlamaLmModel model, NDManager manager, long[] prompt, int newTokens, boolean useCache) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("greedy generation needs at least one prompt token");
        }
        long[] out = new long[newTokens];
        long[] sequence = Arrays.copyOf(prompt, prompt.length + newTokens);
        try (NDManager m = manager.newSubManager();
                LlamaKvCache cache =
                        useCache ? new LlamaKvCache(m, model.config().layers()) : null) {
            ParameterStore ps = new ParameterStore(m, false);
            for (int step = 0; step < newTokens; step++) {
                int length = prompt.length + step;
                try (NDManager stepManager = m.newSubManager()) {
                    long[] input =
                            useCache && step > 0
                                    ? new long[] {sequence[length - 1]}
                                    : Arrays.copyOf(sequence, length);
                    NDArray ids = stepManager.create(input, new Shape(1, input.length));
                    NDArray hidden = model.decoder().hidden(ps, ids, null, cache, false);
                    NDArray last = hidden.get(new NDIndex(":, -1:, :"));
                    NDArray logits = model.head(ps, last, false);
                    long next = logits.reshape(-1).argMax().toType(DataType.INT64, false).getLong();
                    sequence[length] = next;
                    out[step] = next;
                }
            }
        }
        return out;
    }
}
