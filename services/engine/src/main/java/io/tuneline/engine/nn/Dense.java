package io.tuneline.engine.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import ai.djl.training.initializer.ConstantInitializer;
import ai.djl.training.initializer.NormalInitializer;
import ai.djl.util.PairList;

/**
 * {@code y = x W^T + b} with PyTorch's layout, W of shape (out, in), so Hugging Face weights load
 * as they are and a method (LoRA, adapters) can wrap it by name.
 */
public final class Dense extends AbstractBlock {
    private final int in;
    private final int out;
    private final Parameter weight;
    private final Parameter bias;

    public Dense(int in, int out) {
        this.in = in;
        this.out = out;
        // BERT's initializer range (config.initializer_range = 0.02).
        weight =
                addParameter(
                        Parameters.of(
                                "weight",
                                Parameter.Type.WEIGHT,
                                new Shape(out, in),
                                new NormalInitializer(0.02f)));
        bias =
                addParameter(
                        Parameters.of(
                                "bias",
                                Parameter.Type.BIAS,
                                new Shape(out),
                                new ConstantInitializer(0f)));
    }

    public Parameter weight() {
        return weight;
    }

    public Parameter bias() {
        return bias;
    }

    public int in() {
        return in;
    }

    public int out() {
        return out;
    }

    @Override
    protected NDList forwardInternal(
            ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        NDArray x = inputs.singletonOrThrow();
        return Linear.linear(
                x,
                ps.getValue(weight, x.getDevice(), training),
                ps.getValue(bias, x.getDevice(), training));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        Shape s = inputShapes[0];
        return new Shape[] {s.slice(0, s.dimension() - 1).add(out)};
    }
}
