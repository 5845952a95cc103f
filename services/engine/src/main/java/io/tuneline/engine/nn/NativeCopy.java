package io.tuneline.engine.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;

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
        // The copy is an in-place autograd op: PyTorch refuses it on a leaf that requires grad
        // wherever grad mode is on, which it is by default on every thread but the one DJL's
        // engine started on (grad mode is thread-local), e.g. a service's worker threads.
        boolean grad = target.hasGradient();
        if (grad) {
            target.setRequiresGradient(false);
        }
        try (NDManager scratch = target.getManager().newSubManager()) {
            NDArray source = scratch.create(values, target.getShape());
            target.set(new NDIndex("..."), source);
        } finally {
            if (grad) {
                target.setRequiresGradient(true);
            }
        }
    }
}
