package io.tuneline.engine.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;

/**
 * Arithmetic with a constant on arrays autograd may record. Use these, never DJL's {@code
 * mul(Number)}, {@code div(Number)}, {@code pow(Number)}, {@code maximum(Number)} or {@code
 * minimum(Number)}, in any forward pass or loss.
 *
 * <p>Why: DJL's PyTorch engine makes the constant a 0-d tensor over a Java direct buffer ({@code
 * from_blob}, no copy) and closes it as soon as the operation returns, which lets the garbage
 * collector free the buffer. But autograd keeps the constant for the backward pass ({@code mul} and
 * {@code div} need the other operand for the gradient, {@code pow} its exponent, {@code maximum}
 * both inputs), so backward reads freed memory: the gradients come out scaled by whatever was
 * written there since — usually the intact value, sometimes garbage or NaN, more often the harder
 * the collector works. Here the constant is filled by libtorch ({@code torch::full}), whose storage
 * autograd's reference keeps alive.
 */
public final class Scalars {
    private Scalars() {}

    /** {@code x * value}. */
    public static NDArray mul(NDArray x, double value) {
        try (NDArray c = constant(x, value)) {
            return x.mul(c);
        }
    }

    /** {@code x / value}. */
    public static NDArray div(NDArray x, double value) {
        try (NDArray c = constant(x, value)) {
            return x.div(c);
        }
    }

    /** {@code x ^ exponent}. */
    public static NDArray pow(NDArray x, double exponent) {
        try (NDArray c = constant(x, exponent)) {
            return x.pow(c);
        }
    }

    /** The element-wise maximum of {@code x} and {@code value}. */
    public static NDArray maximum(NDArray x, double value) {
        try (NDArray c = constant(x, value)) {
            return x.maximum(c);
        }
    }

    /** A 0-d array of x's type on x's device, in libtorch's memory. */
    private static NDArray constant(NDArray x, double value) {
        NDArray c = x.getManager().full(new Shape(), (float) value, x.getDataType());
        if (c.getDevice().equals(x.getDevice())) {
            return c;
        }
        try (c) {
            return c.toDevice(x.getDevice(), false);
        }
    }
}
