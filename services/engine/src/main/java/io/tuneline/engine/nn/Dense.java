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
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code y = x W^T + b} with PyTorch's layout, W of shape (out, in), so Hugging Face weights load
 * as they are. Methods change it through {@link LinearDelta}s attached by module path (LoRA: {@link
 * LoraDelta}); the layer itself knows no method.
 */
public final class Dense extends AbstractBlock {
    private final int in;
    private final int out;
    private final Parameter weight;
    private final Parameter bias;
    private final List<LinearDelta> deltas = new ArrayList<>();

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
     * Attaches {@code delta}: from now on the layer adds its output to {@code x W^T + b}. W stays
     * as it is; freezing it is the method's job.
     *
     * @throws IllegalStateException when an attached delta already uses one of its parameter names
     */
    public void attach(LinearDelta delta) {
        // Two deltas of one kind would share PEFT's names (lora_A.weight), and an export could
        // hold only one of them.
        for (LinearDelta d : deltas) {
            for (String name : delta.namedParameters().keySet()) {
                if (d.namedParameters().containsKey(name)) {
                    throw new IllegalStateException(
                            "this layer already has a delta with a parameter named " + name);
                }
            }
        }
        addChildBlock(delta.getClass().getSimpleName(), delta);
        deltas.add(delta);
    }

    /** The attached deltas, in the order they were attached. */
    public List<LinearDelta> deltas() {
        return Collections.unmodifiableList(deltas);
    }

    /**
     * The layer's parameters under names relative to its module path: {@code weight}, {@code bias},
     * then each delta's ({@code lora_A.weight}, PEFT's names).
     */
    public Map<String, Parameter> namedParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>();
        p.put("weight", weight);
        p.put("bias", bias);
        for (LinearDelta d : deltas) {
            p.putAll(d.namedParameters());
        }
        return p;
    }

    /** W plus every delta as a weight change (LoRA: W + (alpha / r) B A); a new array. */
    public NDArray mergedWeight() {
        NDArray merged = weight.getArray().duplicate();
        for (LinearDelta d : deltas) {
            try (NDArray change = d.weightDelta()) {
                merged.addi(change);
            }
        }
        return merged;
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
        if (deltas.isEmpty()) {
            return y;
        }
        NDArray out = y.singletonOrThrow();
        for (LinearDelta d : deltas) {
            out = out.add(d.delta(ps, x, training));
        }
        return new NDList(out);
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        Shape s = inputShapes[0];
        return new Shape[] {s.slice(0, s.dimension() - 1).add(out)};
    }
}
