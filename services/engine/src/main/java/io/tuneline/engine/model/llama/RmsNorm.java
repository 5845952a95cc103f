package io.tuneline.engine.model.llama;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import ai.djl.training.initializer.ConstantInitializer;
import ai.djl.util.PairList;

/**
 * Root-mean-square layer norm (Zhang & Sennrich 2019, arXiv:1910.07467) as {@code LlamaRMSNorm}
 * computes it: {@code weight * (x / sqrt(mean(x^2, last axis) + eps))}, the normalisation in
 * float32 whatever the input's type, then cast back before the weight multiplies (HF upcasts so
 * half-precision activations do not lose the mean of squares). No bias, no mean subtraction.
 */
public final class RmsNorm extends AbstractBlock {
    private final int size;
    private final float eps;
    private final Parameter weight;

    public RmsNorm(int size, float eps) {
        this.size = size;
        this.eps = eps;
        weight =
                addParameter(
                        Parameter.builder()
                                .setName("weight")
                                .setType(Parameter.Type.GAMMA)
                                .optShape(new Shape(size))
                                .optInitializer(new ConstantInitializer(1f))
                                .build());
    }

    public Parameter weight() {
        return weight;
    }

    public int size() {
        return size;
    }

    /** Normalises the last axis of {@code x} with {@code w}, in float32. */
    static NDArray apply(NDArray x, NDArray w, float eps) {
        DataType type = x.getDataType();
        NDArray x32 = type == DataType.FLOAT32 ? x : x.toType(DataType.FLOAT32, false);
        NDArray variance = x32.square().mean(new int[] {-1}, true);
        NDArray normed = x32.div(variance.add(eps).sqrt());
        if (type != DataType.FLOAT32) {
            normed = normed.toType(type, false);
        }
        return normed.mul(w);
    }

    @Override
    protected NDList forwardInternal(
            ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        NDArray x = inputs.singletonOrThrow();
        return new NDList(apply(x, ps.getValue(weight, x.getDevice(), training), eps));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        return new Shape[] {inputShapes[0]};
    }
}
