package io.tuneline.serving.load;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import io.tuneline.serving.registry.RegisteredVersion;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;

/**
 * A version in memory: a sequence classifier ({@code ClassifierModel}) or a causal LM ({@code
 * LanguageModel}).
 */
public interface LoadedModel extends AutoCloseable {
    /** Where a version's PEFT or {@code adapters}-library export sits in its model directory. */
    String ADAPTER_DIR = "adapter";

    RegisteredVersion version();

    /** {@code classification} or {@code causal_lm}, as {@code GET /v1/models} shows it. */
    String task();

    /** Who uses this version's engine now and who waits for it. */
    ModelQueue queue();

    /**
     * Bytes of the version's parameters in memory (base, method state and head); a base shared with
     * other versions is not counted ({@link SharedBases} counts it once).
     */
    long parameterBytes();

    /** The model in memory, as methods see it. */
    io.tuneline.engine.model.TunableModel tunable();

    @Override
    void close();

    /**
     * Bytes of {@code block}'s parameters, each array counted once: a tied weight (GPT-2's LM head
     * is its token embedding) is one array in memory under two names.
     */
    static long parameterBytes(Block block) {
        return parameterBytes(block, Set.of());
    }

    /**
     * As {@link #parameterBytes(Block)}, leaving out {@code shared}: the arrays of a base held once
     * for several versions ({@link SharedBases}), which count there.
     */
    static long parameterBytes(Block block, Set<NDArray> shared) {
        Set<NDArray> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        seen.addAll(shared);
        long bytes = 0;
        for (Parameter p : block.getParameters().values()) {
            if (p.isInitialized() && seen.add(p.getArray())) {
                bytes += p.getArray().size() * p.getArray().getDataType().getNumOfBytes();
            }
        }
        return bytes;
    }
}
