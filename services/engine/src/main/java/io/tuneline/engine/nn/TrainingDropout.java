package io.tuneline.engine.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.nn.norm.Dropout;

/**
 * Inverted dropout (Srivastava et al. 2014) while training, the identity otherwise, as {@code
 * nn.Dropout} in PyTorch: each element kept with probability 1 - rate and scaled by 1 / (1 - rate).
 * Masks come from the engine's generator, which the training loop seeds from (seed, step), so a
 * step's masks are the same whether or not the run was resumed before it.
 *
 * <p>On a CPU the mask is drawn as float32 uniforms compared with the rate, not by libtorch's
 * {@code dropout}: that one fills its mask with {@code bernoulli_(1 - rate)}, whose CPU kernel (on
 * this AMD EPYC, and wherever libtorch's MKL path is not taken) draws one double per element, two
 * 32-bit Mersenne Twister outputs, on one thread; a float32 uniform takes one. At MiniLM's training
 * shapes (98,304 elements) that halves the dropout (720 against 340 us), and dropout was a third of
 * the forward pass's time on both sides of the training benchmark (docs/benchmarks.md, "Where the
 * forward pass goes, op by op"). The keep probability is 1 - rate to float32's 2^-24 grid, as
 * PyTorch's fused CUDA dropout draws float uniforms too. On a GPU libtorch's fused kernel is kept:
 * there one kernel beats four.
 */
public final class TrainingDropout {
    private TrainingDropout() {}

    public static NDArray apply(NDArray x, float rate, boolean training) {
        if (!training || rate <= 0) {
            return x;
        }
        if (rate >= 1 || x.getDevice().isGpu()) {
            return Dropout.dropout(x, rate, true).singletonOrThrow();
        }
        // The mask has no gradient; x * mask is the one recorded operation, as in libtorch's
        // dropout (input * noise), so backward is one multiply too. The temporaries are closed
        // here rather than with the step: a step makes dozens of dropouts.
        NDArray mask;
        try (NDArray u =
                        x.getManager()
                                .randomUniform(
                                        0f, 1f, x.getShape(), DataType.FLOAT32, x.getDevice());
                NDArray keep = Scalars.atLeast(u, rate);
                NDArray ones = keep.toType(x.getDataType(), false)) {
            mask = Scalars.div(ones, 1.0 - rate);
        }
        // Autograd keeps its own reference to the mask for backward.
        try (mask) {
            return x.mul(mask);
        }
    }
}
