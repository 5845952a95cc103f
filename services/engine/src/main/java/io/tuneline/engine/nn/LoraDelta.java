package io.tuneline.engine.nn;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import ai.djl.training.initializer.ConstantInitializer;
import ai.djl.training.initializer.NormalInitializer;
import ai.djl.util.PairList;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * LoRA (Hu et al. 2021, arXiv:2106.09685): {@code (alpha / r) * dropout(x) A^T B^T} with A (r, in)
 * drawn from N(0, 1/in) and B (out, r) zero, so the layer computes exactly what it did until B is
 * trained. Shapes and names are PEFT's ({@code lora_A.weight} (r, in), {@code lora_B.weight} (out,
 * r), {@code peft/tuners/lora/layer.py}), for GPT-2's Conv1D projections too.
 */
public final class LoraDelta extends AbstractBlock implements LinearDelta {
    private final int rank;
    private final float alpha;
    private final float scaling;
    private final float dropout;
    private final Parameter a;
    private final Parameter b;

    /** Creates the matrices for {@code layer} and initializes them in {@code manager}. */
    public LoraDelta(Dense layer, int rank, float alpha, float dropout, NDManager manager) {
        if (rank < 1) {
            throw new IllegalArgumentException("LoRA rank must be at least 1, was " + rank);
        }
        this.rank = rank;
        this.alpha = alpha;
        this.scaling = alpha / rank;
        this.dropout = dropout;
        a =
                addParameter(
                        Parameters.of(
                                "lora_A",
                                Parameter.Type.WEIGHT,
                                new Shape(rank, layer.in()),
                                new NormalInitializer((float) (1.0 / Math.sqrt(layer.in())))));
        b =
                addParameter(
                        Parameters.of(
                                "lora_B",
                                Parameter.Type.WEIGHT,
                                new Shape(layer.out(), rank),
                                new ConstantInitializer(0f)));
        a.initialize(manager, DataType.FLOAT32);
        b.initialize(manager, DataType.FLOAT32);
    }

    public int rank() {
        return rank;
    }

    public float alpha() {
        return alpha;
    }

    public float dropout() {
        return dropout;
    }

    /** A (r, in). */
    public Parameter a() {
        return a;
    }

    /** B (out, r). */
    public Parameter b() {
        return b;
    }

    @Override
    public Map<String, Parameter> namedParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>();
        p.put("lora_A.weight", a);
        p.put("lora_B.weight", b);
        return p;
    }

    @Override
    public NDArray delta(ParameterStore ps, NDArray x, boolean training) {
        Device device = x.getDevice();
        NDArray in = TrainingDropout.apply(x, dropout, training);
        NDArray down = Linear.linear(in, ps.getValue(a, device, training)).singletonOrThrow();
        return Scalars.mul(
                Linear.linear(down, ps.getValue(b, device, training)).singletonOrThrow(), scaling);
    }

    /** (alpha / r) B A. */
    @Override
    public NDArray weightDelta() {
        return b.getArray().matMul(a.getArray()).mul(scaling);
    }

    @Override
    protected NDList forwardInternal(
            ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        return new NDList(delta(ps, inputs.singletonOrThrow(), training));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        Shape s = inputShapes[0];
        return new Shape[] {s.slice(0, s.dimension() - 1).add(b.getShape().get(0))};
    }
}
