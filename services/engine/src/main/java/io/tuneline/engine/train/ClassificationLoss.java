package io.tuneline.engine.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import io.tuneline.engine.nn.Scalars;
import java.util.Optional;

/**
 * Cross-entropy with optional label smoothing (Szegedy et al. 2016, arXiv:1512.00567) and class
 * weights, as {@code torch.nn.functional.cross_entropy(weight=w, label_smoothing=eps)} computes it:
 * per example {@code (1-eps) w_y (-log p_y) + (eps / C) sum_c w_c (-log p_c)}, summed and divided
 * by {@code sum w_y}.
 *
 * @param smoothing eps in [0, 1)
 * @param classWeights one weight per class, in label order; empty for all ones
 */
public record ClassificationLoss(double smoothing, Optional<float[]> classWeights) {
    public static final ClassificationLoss PLAIN = new ClassificationLoss(0, Optional.empty());

    public ClassificationLoss {
        if (smoothing < 0 || smoothing >= 1) {
            throw new IllegalArgumentException(
                    "label_smoothing must be in [0, 1), was " + smoothing);
        }
    }

    /**
     * @param logits (B, C)
     * @param labels (B) class indices as floats
     * @return the scalar loss, differentiable through {@code logits}
     */
    public NDArray evaluate(NDArray logits, NDArray labels) {
        int classes = (int) logits.getShape().get(1);
        NDArray logp = logits.logSoftmax(-1);
        NDArray onehot = labels.toType(DataType.INT32, false).oneHot(classes);
        NDArray weights =
                classWeights
                        .map(w -> inNativeMemory(logits.getManager(), w))
                        .orElseGet(
                                () ->
                                        logits.getManager()
                                                .ones(new ai.djl.ndarray.types.Shape(classes)));
        NDArray weightOfLabel = onehot.mul(weights).sum(new int[] {1});
        NDArray nll = logp.mul(onehot).sum(new int[] {1}).neg().mul(weightOfLabel);
        NDArray spread = Scalars.div(logp.mul(weights).sum(new int[] {1}).neg(), classes);
        NDArray perExample = Scalars.mul(nll, 1 - smoothing).add(Scalars.mul(spread, smoothing));
        return perExample.sum().div(weightOfLabel.sum());
    }

    /**
     * The weights copied into libtorch's memory: autograd keeps them for {@code logp * weights}'s
     * backward, and an array made from Java data aliases a buffer the garbage collector may free
     * once the array is closed, which the trainer does before backward.
     */
    private static NDArray inNativeMemory(NDManager manager, float[] w) {
        try (NDArray fromJava = manager.create(w)) {
            return fromJava.duplicate();
        }
    }
}
