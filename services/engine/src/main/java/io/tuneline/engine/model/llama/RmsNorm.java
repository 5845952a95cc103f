package io.tuneline.engine.model.llama;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import ai.djl.training.initializer.ConstantInitializer;
import ai.djl.util.PairList;
import io.tuneline.engine.nn.FusedOps;

/**
 * Root-mean-square layer norm (Zhang & Sennrich 2019, arXiv:1910.07467) as {@code LlamaRMSNorm}
 * computes it: {@code weight * (x * rsqrt(mean(x^2, last axis) + eps))}, the normalisation in
 * float32 whatever the input's type, then cast back before the weight multiplies (HF upcasts so
 * half-precision activations do not lose the mean of squares). No bias, no mean subtraction.
 * libtorch's {@code torch.rms_norm} computes exactly that, in one native call ({@link FusedOps}).
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
        return FusedOps.rmsNorm(x, w, eps);
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
