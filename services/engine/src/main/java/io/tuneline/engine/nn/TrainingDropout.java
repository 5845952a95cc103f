package io.tuneline.engine.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.norm.Dropout;

/**
 * Inverted dropout (Srivastava et al. 2014) while training, the identity otherwise, as {@code
 * nn.Dropout} in PyTorch. Masks come from the engine's generator, which the training loop seeds
 * from (seed, step), so a step's masks are the same whether or not the run was resumed before it.
 */
public final class TrainingDropout {
    private TrainingDropout() {}

    public static NDArray apply(NDArray x, float rate, boolean training) {
        return training && rate > 0 ? Dropout.dropout(x, rate, true).singletonOrThrow() : x;
    }
}
