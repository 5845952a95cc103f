package io.tuneline.engine.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.tuneline.engine.nn.Scalars;

/**
 * Next-token cross-entropy as Hugging Face's causal LM heads compute it: labels are aligned with
 * the inputs (usually a copy of {@code input_ids}), the logits at position t are scored against the
 * label at t + 1, and positions whose label is {@value #IGNORE} (prompt tokens, padding) take no
 * part. The mean is over the counted positions: {@code CrossEntropyLoss(ignore_index=-100)} on
 * {@code logits[:, :-1]} and {@code labels[:, 1:]}.
 */
public final class CausalLmLoss {
    /** Hugging Face's {@code ignore_index}: such a label contributes no loss and no gradient. */
    public static final long IGNORE = -100;

    private static final float IGNORE_FLOAT = IGNORE;

    private CausalLmLoss() {}

    /**
     * @param logits (B, T, V)
     * @param labels (B, T) int64, aligned with the inputs, {@value #IGNORE} where not scored
     * @return the mean loss over the scored positions, differentiable through {@code logits}; 0
     *     when no position is scored (Hugging Face would give NaN)
     */
    public static NDArray mean(NDArray logits, NDArray labels) {
        NDArray[] sumAndCount = sumAndCount(logits, labels);
        return sumAndCount[0].div(Scalars.maximum(sumAndCount[1], 1));
    }

    /**
     * The summed negative log-likelihood of the scored positions and their number (a float scalar
     * each), for callers that weight batches by tokens.
     */
    public static NDArray[] sumAndCount(NDArray logits, NDArray labels) {
        long t = logits.getShape().get(1);
        if (labels.getShape().dimension() != 2
                || labels.getShape().get(0) != logits.getShape().get(0)
                || labels.getShape().get(1) != t) {
            throw new IllegalArgumentException(
                    "labels "
                            + labels.getShape()
                            + " do not match logits "
                            + logits.getShape()
                            + " (B, T, V)");
        }
        // The labels move left by one and the last position, which has no next token, is
        // ignored, rather than the logits being cut to their first T - 1 positions: a slice of the
        // logits made log_softmax copy them whole into a contiguous tensor, and its backward
        // allocate, zero and fill one more logits-sized gradient (B x T x vocab floats each:
        // 103 MB for GPT-2 at 8 x 64 tokens). The last position's log-probabilities are computed
        // and not used, 1/T more of the softmax.
        NDArray next = labels.get(new NDIndex(":, 1:")).toType(DataType.INT64, false);
        NDArray target =
                next.concat(
                        next.getManager()
                                .full(new Shape(labels.getShape().get(0), 1), IGNORE_FLOAT)
                                .toType(DataType.INT64, false),
                        1);
        NDArray scored = target.neq(IGNORE);
        // Ignored positions point at token 0 and are then multiplied away.
        NDArray safe = target.mul(scored.toType(DataType.INT64, false));
        NDArray logp = logits.logSoftmax(-1);
        NDArray picked = logp.gather(safe.expandDims(-1), -1).squeeze(-1);
        NDArray weight = scored.toType(DataType.FLOAT32, false);
        return new NDArray[] {picked.mul(weight).sum().neg(), weight.sum()};
    }

    /** How many positions of {@code labels} (one example) are scored. */
    public static int targets(long[] labels) {
        int n = 0;
        for (int i = 1; i < labels.length; i++) {
            if (labels[i] != IGNORE) {
                n++;
            }
        }
        return n;
    }
}
