package io.tuneline.engine.train;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.GradientCollector;
import io.tuneline.engine.model.LayerSegments;
import io.tuneline.engine.nn.Scalars;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.Function;
import java.util.function.UnaryOperator;

/**
 * One batch's forward and backward pass through a model cut into {@link LayerSegments}, with or
 * without activation checkpointing (Chen et al. 2016, arXiv:1604.06174; PyTorch's {@code
 * torch.utils.checkpoint}, {@code use_reentrant=False}).
 *
 * <p>With checkpointing the layers run once without recording (libtorch's grad mode off), each in a
 * sub-manager closed after it, keeping only its input. Backward then goes layer by layer from the
 * top: the layer is re-run with recording from its saved input (a leaf that requires a gradient),
 * and libtorch's backward with the upstream gradient ({@code JniUtils.backward(out, grad)}, the
 * vector-Jacobian product {@code torch.autograd.backward(out, grad)} computes) adds the layer's
 * parameter gradients and gives its input's gradient for the layer below. Only one layer's
 * activations and dequantized weights (an NF4 base, QLoRA) are alive at a time, where plain
 * autograd keeps every layer's until backward: the dequantized weights of the whole model in the
 * QLoRA case. The cost is one more forward pass of the layers.
 *
 * <p>Without checkpointing each layer, and the head with the loss, still runs in a sub-manager of
 * its own, recorded, closed before backward: autograd keeps what it saved, and every other
 * intermediate (the logits among them) is freed as PyTorch frees it, when nothing refers to it any
 * more, instead of when the step's manager closes after backward. A model without segments (virtual
 * tokens, a key/value prefix) runs whole in one such sub-manager.
 *
 * <p>Exact: the recomputation runs the same code on the same input, and dropout draws the same
 * masks because the engine's generator is reseeded before each segment, from a value drawn once per
 * batch, in both passes; without checkpointing the segments are reseeded the same way, so a run's
 * losses and gradients do not depend on the setting.
 */
final class ActivationCheckpointing {
    private ActivationCheckpointing() {}

    /**
     * A trainer's batch: through {@code segments} when the model offers them ({@link
     * #lossAndBackward(LayerSegments, UnaryOperator, double, boolean, GradientCollector,
     * NDManager)}), else {@code whole} (the model's own forward pass and loss, made in the manager
     * it is given) on {@code inputs} backpropagated in one pass.
     */
    static NDArray lossAndBackward(
            Optional<LayerSegments> segments,
            NDList inputs,
            Function<NDManager, NDArray> whole,
            UnaryOperator<NDArray> lossOf,
            double lossDivisor,
            boolean checkpoint,
            GradientCollector collector,
            NDManager manager) {
        if (segments.isEmpty()) {
            NDArray loss = wholeInOwnManager(inputs, whole, manager);
            collector.backward(Scalars.div(loss, lossDivisor));
            return loss;
        }
        return lossAndBackward(segments.get(), lossOf, lossDivisor, checkpoint, collector, manager);
    }

    /**
     * A model without segments (virtual tokens, a key/value prefix) forward and scored whole in a
     * sub-manager closed before backward, returning the loss moved to {@code manager}: as {@link
     * #layerInOwnManager} does per layer, what autograd did not save (the logits, every layer's
     * scores before softmax) is freed now instead of when the step's manager closes after backward.
     * The inputs are attached to the sub-manager for the call, so that what is made from them is
     * made there, and go back to {@code manager} after it.
     */
    private static NDArray wholeInOwnManager(
            NDList inputs, Function<NDManager, NDArray> whole, NDManager manager) {
        try (NDManager sub = manager.newSubManager()) {
            for (NDArray input : inputs) {
                input.tempAttach(sub);
            }
            NDArray loss = whole.apply(sub);
            loss.attach(manager);
            return loss;
        }
    }

    /**
     * Runs {@code segments}, scores the logits with {@code lossOf}, and accumulates the gradients
     * of {@code lossOf / lossDivisor} into every parameter that requires one; returns the batch's
     * loss.
     */
    static NDArray lossAndBackward(
            LayerSegments segments,
            UnaryOperator<NDArray> lossOf,
            double lossDivisor,
            boolean checkpoint,
            GradientCollector collector,
            NDManager manager) {
        // A value from the engine's generator (seeded per step by the loop), so each batch of an
        // accumulation group gets its own masks.
        long base;
        try (NDArray drawn =
                manager.randomInteger(0, Integer.MAX_VALUE, new Shape(1), DataType.INT64)) {
            base = drawn.getLong(0);
        }
        int layers = segments.layers();
        NDArray loss;
        if (!checkpoint) {
            reseed(base, 0);
            NDArray x = segments.embed();
            for (int i = 0; i < layers; i++) {
                reseed(base, i + 1);
                // Recorded, in a manager of its own: what backward does not need is freed now.
                x = layerInOwnManager(segments, i, x, manager, null);
            }
            reseed(base, layers + 1);
            loss = lossInOwnManager(segments, lossOf, x, manager);
            collector.backward(Scalars.div(loss, lossDivisor));
        } else {
            loss = checkpointed(segments, lossOf, lossDivisor, collector, manager, base);
        }
        // The generator's state after the batch is the same with and without checkpointing.
        reseed(base, -1);
        return loss;
    }

    private static NDArray checkpointed(
            LayerSegments segments,
            UnaryOperator<NDArray> lossOf,
            double lossDivisor,
            GradientCollector collector,
            NDManager manager,
            long base) {
        int layers = segments.layers();
        List<NDArray> inputs = new ArrayList<>(layers + 1);
        // The embedding is recorded (a lookup: its graph keeps only the ids) and its output is
        // layer 0's input as a separate leaf, so backward ends with one pass into the embedding
        // when one of its parameters trains.
        reseed(base, 0);
        NDArray embedded = segments.embed();
        boolean recording = JniUtils.isGradMode();
        JniUtils.setGradMode(false);
        try {
            NDArray x = embedded.stopGradient();
            for (int i = 0; i < layers; i++) {
                inputs.add(x);
                reseed(base, i + 1);
                x = layerInOwnManager(segments, i, x, manager, null);
            }
            inputs.add(x);
        } finally {
            JniUtils.setGradMode(recording);
        }
        NDArray top = inputs.get(layers);
        top.setRequiresGradient(true);
        reseed(base, layers + 1);
        NDArray loss = lossInOwnManager(segments, lossOf, top, manager);
        collector.backward(Scalars.div(loss, lossDivisor));
        NDArray gradient = top.getGradient();
        top.close();
        for (int i = layers - 1; i >= 0; i--) {
            NDArray x = inputs.get(i);
            x.setRequiresGradient(true);
            reseed(base, i + 1);
            NDArray below = layerInOwnManager(segments, i, x, manager, gradient);
            gradient.close();
            x.close();
            gradient = below;
        }
        if (segments.embeddingTrains()) {
            JniUtils.backward((PtNDArray) embedded, (PtNDArray) gradient, false, false);
        }
        gradient.close();
        return loss;
    }

    /**
     * Layer {@code i} on {@code x} in a sub-manager closed after it, so its intermediate arrays (a
     * dequantized NF4 weight among them) are freed when it returns. Forward only, the layer's
     * output moved to {@code manager}, when {@code upstream} is null (recorded or not, as grad mode
     * is); else a recorded forward and backward with {@code upstream} as the output's gradient,
     * returning {@code x}'s gradient.
     *
     * <p>Closing a recorded forward pass's arrays before backward is safe and is what frees them:
     * autograd holds its own reference to each tensor it saved for backward, and backward releases
     * those as it goes; the Java handles would keep every other intermediate (attention scores
     * before softmax, GELU's partial products, the pre-dropout sums) alive until the step's manager
     * closes, after backward, where PyTorch frees them as soon as no name refers to them. Arrays
     * made in a layer from Java data ({@code NDManager.create(float[])}) alias a Java buffer that
     * closing lets the garbage collector free, so no layer may make one that autograd saves (see
     * {@link io.tuneline.engine.nn.Scalars} for constants).
     */
    private static NDArray layerInOwnManager(
            LayerSegments segments, int i, NDArray x, NDManager manager, NDArray upstream) {
        try (NDManager sub = manager.newSubManager()) {
            x.tempAttach(sub);
            NDArray y = segments.layer(i, x);
            if (upstream == null) {
                y.attach(manager);
                return y;
            }
            JniUtils.backward((PtNDArray) y, (PtNDArray) upstream, false, false);
            NDArray gradient = x.getGradient();
            gradient.attach(manager);
            return gradient;
        }
    }

    /**
     * {@code lossOf} over what sits above the last layer on {@code x}, in a sub-manager closed
     * before backward, returning the loss moved to {@code manager}. For a causal LM this is what
     * frees the logits (B, T, vocab: 103 MB for GPT-2 at 8 x 64 tokens) before backward: the loss
     * keeps only what autograd saved ({@code log_softmax}'s output), as PyTorch does once the
     * logits go out of scope (docs/benchmarks.md, "Eager frees in the training step").
     */
    private static NDArray lossInOwnManager(
            LayerSegments segments, UnaryOperator<NDArray> lossOf, NDArray x, NDManager manager) {
        try (NDManager sub = manager.newSubManager()) {
            x.tempAttach(sub);
            NDArray loss = lossOf.apply(segments.output(x));
            loss.attach(manager);
            return loss;
        }
    }

    /**
     * Seeds the engine's generator for segment {@code segment} of the batch drawn as {@code base}.
     */
    private static void reseed(long base, int segment) {
        Engine.getInstance().setRandomSeed((int) (base * 1_000_003L + segment + 1));
    }
}
