package io.tuneline.engine.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.jni.JniUtils;

/**
 * Operations of the attention layers straight through DJL's PyTorch JNI, without the checks DJL's
 * {@code NDArray} methods make first. {@code PtNDArray.matMul} asks both operands whether they are
 * scalars and {@code transpose(int...)} asks its input, each a native call ({@code getShape}) on an
 * array whose shape is not known on the Java side yet: 54 of a MiniLM forward pass's calls. The
 * attention's operands are 4-d by construction, so the checks say nothing there. Arrays of another
 * engine (none today) take DJL's own methods.
 */
public final class NativeOps {
    private NativeOps() {}

    /** {@code a @ b} (torch.matmul). */
    public static NDArray matMul(NDArray a, NDArray b) {
        if (a instanceof PtNDArray pa && b instanceof PtNDArray pb) {
            return JniUtils.matmul(pa, pb);
        }
        return a.matMul(b);
    }

    /** {@code x.transpose(axis1, axis2)} (torch.transpose: a view with two axes swapped). */
    public static NDArray swapAxes(NDArray x, int axis1, int axis2) {
        if (x instanceof PtNDArray px) {
            return JniUtils.transpose(px, axis1, axis2);
        }
        return x.swapAxes(axis1, axis2);
    }
}
