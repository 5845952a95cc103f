package io.tuneline.engine.nn;

import ai.djl.Device;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

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
 *
 * <p>Each constant is made once per value, type and device and kept for the life of the process (in
 * a manager of its own, never closed), so a forward pass crosses into libtorch once per operation
 * instead of three times (fill, operate, free). A kept constant is never written to and autograd
 * only reads it, so sharing it between layers, steps and threads is safe. The table is bounded:
 * past {@link #KEPT} distinct constants (a caller whose constant varies, such as a changing loss
 * scale) each further one is made and freed per call as before.
 */
public final class Scalars {
    private Scalars() {}

    /** {@code x * value}. */
    public static NDArray mul(NDArray x, double value) {
        NDArray c = kept(x, value);
        if (c != null) {
            return x.mul(c);
        }
        try (NDArray fresh = constant(x, value)) {
            return x.mul(fresh);
        }
    }

    /** {@code x / value}. */
    public static NDArray div(NDArray x, double value) {
        NDArray c = kept(x, value);
        if (c != null) {
            return x.div(c);
        }
        try (NDArray fresh = constant(x, value)) {
            return x.div(fresh);
        }
    }

    /** {@code x ^ exponent}. */
    public static NDArray pow(NDArray x, double exponent) {
        NDArray c = kept(x, exponent);
        if (c != null) {
            return x.pow(c);
        }
        try (NDArray fresh = constant(x, exponent)) {
            return x.pow(fresh);
        }
    }

    /** The element-wise maximum of {@code x} and {@code value}. */
    public static NDArray maximum(NDArray x, double value) {
        NDArray c = kept(x, value);
        if (c != null) {
            return x.maximum(c);
        }
        try (NDArray fresh = constant(x, value)) {
            return x.maximum(fresh);
        }
    }

    /** How many distinct constants are kept at most (a few dozen are in use). */
    static final int KEPT = 1024;

    private record Key(double value, DataType type, Device device) {}

    private static final Map<Key, NDArray> CONSTANTS = new ConcurrentHashMap<>();
    private static final Map<Device, NDManager> MANAGERS = new ConcurrentHashMap<>();

    /**
     * The kept 0-d constant {@code value} of x's type on x's device, made by the first call; null
     * when the table is full and does not hold it.
     */
    private static NDArray kept(NDArray x, double value) {
        return kept(value, x.getDataType(), x.getDevice());
    }

    /**
     * The kept 0-d constant {@code value} of {@code type} on {@code device} (for callers that know
     * both without asking an array, a native call each), made by the first call; null when the
     * table is full and does not hold it.
     */
    static NDArray kept(double value, DataType type, Device device) {
        Key key = new Key(value, type, device);
        NDArray c = CONSTANTS.get(key);
        if (c != null || CONSTANTS.size() >= KEPT) {
            return c;
        }
        return CONSTANTS.computeIfAbsent(
                key,
                k -> {
                    NDManager m =
                            MANAGERS.computeIfAbsent(
                                    k.device(),
                                    d ->
                                            NDManager.newBaseManager(
                                                    d, Engine.getInstance().getEngineName()));
                    return m.full(new Shape(), (float) k.value(), k.type());
                });
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
