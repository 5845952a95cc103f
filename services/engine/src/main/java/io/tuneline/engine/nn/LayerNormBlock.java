package io.tuneline.engine.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.training.ParameterStore;
import ai.djl.training.initializer.ConstantInitializer;
import ai.djl.util.PairList;

/**
 * Layer normalisation over the last axis with a fixed size, so its scale and shift ("weight" and
 * "bias" in Hugging Face checkpoints) exist before the first forward pass and can be loaded. DJL's
 * own LayerNorm infers its shape lazily.
 */
public final class LayerNormBlock extends AbstractBlock {
    private final Shape normalized;
    private final float eps;
    private final Parameter gamma;
    private final Parameter beta;

    public LayerNormBlock(int size, float eps) {
        this.normalized = new Shape(size);
        this.eps = eps;
        gamma =
                addParameter(
                        Parameters.of(
                                "weight",
                                Parameter.Type.GAMMA,
                                normalized,
                                new ConstantInitializer(1f)));
        beta =
                addParameter(
                        Parameters.of(
                                "bias",
                                Parameter.Type.BETA,
                                normalized,
                                new ConstantInitializer(0f)));
    }

    public Parameter weight() {
        return gamma;
    }

    public Parameter bias() {
        return beta;
    }

    @Override
    protected NDList forwardInternal(
            ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        NDArray x = inputs.singletonOrThrow();
        return LayerNorm.layerNorm(
                x,
                normalized,
                ps.getValue(gamma, x.getDevice(), training),
                ps.getValue(beta, x.getDevice(), training),
                eps);
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        return new Shape[] {inputShapes[0]};
    }
}
