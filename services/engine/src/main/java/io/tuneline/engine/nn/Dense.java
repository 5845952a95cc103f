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
    private Parameter loraA;
    private Parameter loraB;
    private float loraScaling;
    private float loraDropout;

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

    /**
     * Adds a LoRA update (Hu et al. 2021, arXiv:2106.09685): {@code y = x W^T + b + (alpha / r) *
     * dropout(x) A^T B^T} with A (r, in) drawn from N(0, 1/in) and B (out, r) zero, so the block
     * computes exactly what it did until B is trained. W stays as it is; freezing it is the
     * method's job.
     */
    public void enableLora(int rank, float alpha, float dropout, ai.djl.ndarray.NDManager manager) {
        if (loraA != null) {
            throw new IllegalStateException("LoRA is already enabled on this layer");
        }
        loraScaling = alpha / rank;
        loraDropout = dropout;
        loraA =
                addParameter(
                        Parameters.of(
                                "lora_A",
                                Parameter.Type.WEIGHT,
                                new Shape(rank, in),
                                new NormalInitializer((float) (1.0 / Math.sqrt(in)))));
        loraB =
                addParameter(
                        Parameters.of(
                                "lora_B",
                                Parameter.Type.WEIGHT,
                                new Shape(out, rank),
                                new ConstantInitializer(0f)));
        loraA.initialize(manager, ai.djl.ndarray.types.DataType.FLOAT32);
        loraB.initialize(manager, ai.djl.ndarray.types.DataType.FLOAT32);
    }

    /** LoRA's A and B when enabled. */
    public java.util.Optional<Parameter[]> lora() {
        return loraA == null
                ? java.util.Optional.empty()
                : java.util.Optional.of(new Parameter[] {loraA, loraB});
    }

    /** W + (alpha / r) B A: the weight a merged export writes. */
    public ai.djl.ndarray.NDArray mergedWeight() {
        ai.djl.ndarray.NDArray w = weight.getArray();
        if (loraA == null) {
            return w.duplicate();
        }
        return w.add(loraB.getArray().matMul(loraA.getArray()).mul(loraScaling));
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
        NDList y =
                Linear.linear(
                        x,
                        ps.getValue(weight, x.getDevice(), training),
                        ps.getValue(bias, x.getDevice(), training));
        if (loraA == null) {
            return y;
        }
        NDArray in =
                training && loraDropout > 0
                        ? ai.djl.nn.norm.Dropout.dropout(x, loraDropout, true).singletonOrThrow()
                        : x;
        NDArray delta =
                Linear.linear(
                                Linear.linear(in, ps.getValue(loraA, x.getDevice(), training))
                                        .singletonOrThrow(),
                                ps.getValue(loraB, x.getDevice(), training))
                        .singletonOrThrow();
        return new NDList(y.singletonOrThrow().add(delta.mul(loraScaling)));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        Shape s = inputShapes[0];
        return new Shape[] {s.slice(0, s.dimension() - 1).add(out)};
    }
}
