package io.tuneline.engine.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.function.Function;

/** Copies Java values into an existing tensor inside libtorch. */
public final class NativeCopy {
    private NativeCopy() {}

    /**
     * Copies {@code values} into {@code target} natively. Not {@code NDArray.set(Buffer)}: DJL's
     * PyTorch engine keeps the direct buffer it copies a heap buffer into as the tensor's storage
     * ({@code dataRef}), so a loaded model would sit in direct memory, capped by {@code
     * -XX:MaxDirectMemorySize} (default: the heap size), instead of libtorch's allocator, and a
     * later in-place update can race the buffer's reuse. Here the direct buffer belongs to a
     * temporary array that is closed (and its buffer collectable) once libtorch has copied it.
     */
    public static void copyInto(NDArray target, float[] values) {
        copy(target, scratch -> scratch.create(values, target.getShape()));
    }

    /**
     * Copies float32 values given as little-endian bytes, in {@code shape}, into {@code target}
     * natively; when {@code transpose}, {@code shape} is target's transposed and libtorch
     * transposes them. No Java array is made.
     */
    public static void copyInto(
            NDArray target, ByteBuffer littleEndian, Shape shape, boolean transpose) {
        copy(
                target,
                scratch -> {
                    NDArray source =
                            scratch.create(
                                    littleEndian.order(ByteOrder.LITTLE_ENDIAN),
                                    shape,
                                    DataType.FLOAT32);
                    return transpose ? source.transpose() : source;
                });
    }

    private static void copy(NDArray target, Function<NDManager, NDArray> source) {
        // The copy is an in-place autograd op: PyTorch refuses it on a leaf that requires grad
        // wherever grad mode is on, which it is by default on every thread but the one DJL's
        // engine started on (grad mode is thread-local), e.g. a service's worker threads.
        boolean grad = target.hasGradient();
        if (grad) {
            target.setRequiresGradient(false);
        }
        try (NDManager scratch = target.getManager().newSubManager()) {
            target.set(new NDIndex("..."), source.apply(scratch));
        } finally {
            if (grad) {
                target.setRequiresGradient(true);
            }
        }
    }
}
