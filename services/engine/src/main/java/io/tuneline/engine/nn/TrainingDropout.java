package io.tuneline.engine.nn;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.nn.norm.Dropout;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;
import ai.djl.pytorch.jni.JniUtils;

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
        Device device = x.getDevice();
        if (rate >= 1 || device.isGpu() || !(x instanceof PtNDArray px)) {
            return Dropout.dropout(x, rate, true).singletonOrThrow();
        }
        // The mask has no gradient; x * mask is the one recorded operation, as in libtorch's
        // dropout (input * noise), so backward is one multiply too. The mask is made as
        // where(u >= rate, 1 / (1 - rate), 0) from kept constants, straight through DJL's JNI:
        // DJL's NDArray methods would ask each fresh operand its type and device first.
        DataType type = x.getDataType();
        NDArray threshold = Scalars.kept(rate, DataType.FLOAT32, device);
        NDArray scale = Scalars.kept(1 / (1 - rate), type, device);
        NDArray zero = Scalars.kept(0, type, device);
        if (threshold == null || scale == null || zero == null) {
            // Scalars' table is full (a caller with ever-changing constants): no kept constants.
            return Dropout.dropout(x, rate, true).singletonOrThrow();
        }
        NDArray mask;
        try (PtNDArray u =
                        JniUtils.uniform(
                                (PtNDManager) px.getManager(),
                                0,
                                1,
                                x.getShape(),
                                DataType.FLOAT32,
                                device);
                PtNDArray keep = JniUtils.gte(u, (PtNDArray) threshold)) {
            mask = JniUtils.where(keep, (PtNDArray) scale, (PtNDArray) zero);
        }
        // The temporaries are closed here rather than with the step (a step makes dozens of
        // dropouts); autograd keeps its own reference to the mask for backward.
        try (mask) {
            return x.mul(mask);
        }
    }
}
