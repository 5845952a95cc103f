package io.tuneline.engine.nn;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.nn.core.Linear;
import ai.djl.pytorch.engine.PtNDArray;

/**
 * A causal LM's output projection over a wide vocabulary, {@code logits = h W^T} for h (N, H) and W
 * (V, H), computed on a CPU as {@code (W h^T)^T}, made contiguous.
 *
 * <p>Why: libtorch's CPU build does its float32 products with the MKL it bundles, and on this
 * project's machines (AMD EPYC) MKL is slow when the product's row-major output is very wide: h W^T
 * at GPT-2's head (512 x 768 by 768 x 50,257 at 8 x 64 tokens; 512 wide here) ran at 105-110
 * GFLOP/s where the same multiply with the vocabulary on the other side, W h^T, ran at 160, as did
 * every narrower product of the step, and OpenBLAS (the PyTorch peer's) ran h W^T itself at 165
 * (docs/benchmarks.md, "The LM head's product"). The transpose back to (N, V) is one pass over the
 * logits; the multiply it saves is 50-80 ms of a GPT-2 training step. Autograd differentiates the
 * three operations as it would the plain product ({@link FusedOps#transposedProduct}), so gradients
 * are unchanged. On a GPU, in half precision and for vocabularies under {@value #WIDE} the plain
 * product is kept.
 */
public final class LmHead {
    /** Output widths from which the transposed product is taken on a CPU. */
    static final long WIDE = 16_384;

    private LmHead() {}

    /**
     * Logits (N, V) of hidden states h (N, H) under the vocabulary's weights w (V, H).
     *
     * @throws IllegalArgumentException when h or w is not 2-d or their widths differ
     */
    public static NDArray logits(NDArray h, NDArray w) {
        if (h.getShape().dimension() != 2
                || w.getShape().dimension() != 2
                || h.getShape().get(1) != w.getShape().get(1)) {
            throw new IllegalArgumentException(
                    "hidden states "
                            + h.getShape()
                            + " and head weights "
                            + w.getShape()
                            + ": expected (N, H) and (V, H)");
        }
        if (!transposed(h, w)) {
            return Linear.linear(h, w).singletonOrThrow();
        }
        return FusedOps.transposedProduct(h, w);
    }

    /** Whether {@link #logits} takes the transposed product for these operands. */
    static boolean transposed(NDArray h, NDArray w) {
        return w.getShape().get(0) >= WIDE
                && h instanceof PtNDArray
                && w instanceof PtNDArray
                && h.getDataType() == DataType.FLOAT32
                && w.getDataType() == DataType.FLOAT32
                && h.getDevice().equals(Device.cpu())
                && w.getDevice().equals(Device.cpu());
    }
}
