package io.tuneline.engine.model.llama;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;

/**
 * The keys and values earlier positions produced, per layer, so generation computes only the new
 * token's projections (as transformers' {@code DynamicCache}). Keys are stored after RoPE and
 * before grouped-query heads are repeated: (B, num_key_value_heads, S, head_dim). Sliding-window
 * layers keep every position too; the attention mask hides what lies outside the window, which
 * gives the same scores as dropping it.
 *
 * <p>Owns a sub-manager of the one it is created from: close it when the generation ends. For
 * inference only (no gradients flow through the stored arrays).
 */
public final class LlamaKvCache implements AutoCloseable {
    private final NDManager manager;
    private final NDArray[] keys;
    private final NDArray[] values;
    private long length;

    public LlamaKvCache(NDManager parent, int layers) {
        manager = parent.newSubManager();
        keys = new NDArray[layers];
        values = new NDArray[layers];
    }

    /** How many positions are cached (the next token's position). */
    public long length() {
        return length;
    }

    /**
     * Appends this step's keys and values of {@code layer} and returns all of them, (B, kv heads,
     * length + T, head_dim) each.
     */
    NDArray[] append(int layer, NDArray k, NDArray v) {
        NDArray fullK = keys[layer] == null ? k : NDArrays.concat(new NDList(keys[layer], k), 2);
        NDArray fullV =
                values[layer] == null ? v : NDArrays.concat(new NDList(values[layer], v), 2);
        fullK.attach(manager);
        fullV.attach(manager);
        if (keys[layer] != null && keys[layer] != fullK) {
            keys[layer].close();
            values[layer].close();
        }
        keys[layer] = fullK;
        values[layer] = fullV;
        return new NDArray[] {fullK, fullV};
    }

    /**
     * Keeps only the batch rows {@code rows} (in that order): sequences that stopped leave a
     * batched generation and cost nothing in its later steps.
     */
    public void keepRows(long[] rows) {
        try (NDManager scratch = manager.newSubManager()) {
            for (int layer = 0; layer < keys.length; layer++) {
                if (keys[layer] == null) {
                    continue;
                }
                NDArray index = scratch.create(rows).toDevice(keys[layer].getDevice(), false);
                NDArray k = keys[layer].get(new ai.djl.ndarray.index.NDIndex("{}", index));
                NDArray v = values[layer].get(new ai.djl.ndarray.index.NDIndex("{}", index));
                k.attach(manager);
                v.attach(manager);
                keys[layer].close();
                values[layer].close();
                keys[layer] = k;
                values[layer] = v;
            }
        }
    }

    /** Called once every layer has appended a step of {@code t} positions. */
    void advance(long t) {
        length += t;
    }

    @Override
    public void close() {
        manager.close();
    }
}
