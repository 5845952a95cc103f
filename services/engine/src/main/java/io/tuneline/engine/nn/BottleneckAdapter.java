package io.tuneline.engine.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Activation;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import ai.djl.training.initializer.ConstantInitializer;
import ai.djl.training.initializer.UniformInitializer;
import ai.djl.util.PairList;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.function.UnaryOperator;

/**
 * A sequential bottleneck adapter as the {@code adapters} library (adapter-hub, 1.2.0) builds it
 * ({@code methods/modeling.py}, class {@code Adapter}): {@code adapter_down = Sequential(Linear(H,
 * m), activation)}, {@code adapter_up = Linear(m, H)}, output {@code dropout(up(down(x)) * scaling)
 * + residual}; around it the residual connection and the layer's own LayerNorm in the order {@code
 * pre_forward} / {@code post_forward} give them:
 *
 * <pre>
 *   adapter_residual = out                      (residual_before_ln = true)
 *   if original_ln_before: x = LN(out + residual)   (pre-LN models: out + residual)
 *   else x = out
 *   y = dropout(up(act(down(x)))) + adapter_residual
 *   if original_ln_after: y = LN(y + residual)      (pre-LN models: y + residual)
 * </pre>
 *
 * <p>Pfeiffer ({@code SeqBnConfig}) has {@code original_ln_before} true, Houlsby ({@code
 * DoubleSeqBnConfig}) false; both have {@code original_ln_after} and {@code residual_before_ln}
 * true, no adapter LayerNorms, scaling 1.0. Initialisation is the library's {@code mam_adapter}
 * (down: PyTorch's Linear default, kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(H), 1/sqrt(H)),
 * bias 0; up: weight and bias 0), so an untrained adapter leaves the layer exactly as it was; the
 * library's default {@code bert} init draws the up-projection from N(0, 0.02) too.
 */
public final class BottleneckAdapter extends AbstractBlock implements ResidualTap.Module {
    private final int width;
    private final int bottleneck;
    private final String activation;
    private final boolean originalLnBefore;
    private final float dropout;
    private final Parameter downWeight;
    private final Parameter downBias;
    private final Parameter upWeight;
    private final Parameter upBias;

    /**
     * @param width the hidden size H of the residual stream
     * @param bottleneck the bottleneck size m ({@code down_sample})
     * @param activation the library's {@code non_linearity} (relu, swish/silu, gelu, gelu_new,
     *     tanh)
     * @param originalLnBefore the config's {@code original_ln_before}
     * @param dropout the config's {@code dropout}, on the up-projection's output
     */
    public BottleneckAdapter(
            int width,
            int bottleneck,
            String activation,
            boolean originalLnBefore,
            float dropout,
            NDManager manager) {
        if (bottleneck < 1) {
            throw new IllegalArgumentException(
                    "bottleneck size must be at least 1, was " + bottleneck);
        }
        this.width = width;
        this.bottleneck = bottleneck;
        this.activation = checkActivation(activation);
        this.originalLnBefore = originalLnBefore;
        this.dropout = dropout;
        float bound = (float) (1.0 / Math.sqrt(width));
        downWeight =
                addParameter(
                        Parameters.of(
                                "adapter_down_0_weight",
                                Parameter.Type.WEIGHT,
                                new Shape(bottleneck, width),
                                new UniformInitializer(bound)));
        downBias =
                addParameter(
                        Parameters.of(
                                "adapter_down_0_bias",
                                Parameter.Type.BIAS,
                                new Shape(bottleneck),
                                new ConstantInitializer(0f)));
        upWeight =
                addParameter(
                        Parameters.of(
                                "adapter_up_weight",
                                Parameter.Type.WEIGHT,
                                new Shape(width, bottleneck),
                                new ConstantInitializer(0f)));
        upBias =
                addParameter(
                        Parameters.of(
                                "adapter_up_bias",
                                Parameter.Type.BIAS,
                                new Shape(width),
                                new ConstantInitializer(0f)));
        for (Parameter p : new Parameter[] {downWeight, downBias, upWeight, upBias}) {
            p.initialize(manager, DataType.FLOAT32);
        }
    }

    /** The activations the library's {@code get_activation} names and the engine computes. */
    public static String checkActivation(String name) {
        String n = name.strip().toLowerCase(Locale.ROOT);
        return switch (n) {
            case "relu", "swish", "silu", "gelu", "gelu_new", "tanh" -> n;
            default ->
                    throw new IllegalArgumentException(
                            "adapter activation '"
                                    + name
                                    + "' is not supported; use relu, swish (silu), gelu,"
                                    + " gelu_new or tanh");
        };
    }

    public int width() {
        return width;
    }

    public int bottleneck() {
        return bottleneck;
    }

    public String activation() {
        return activation;
    }

    /** The library's names ({@code Adapter.state_dict()}). */
    @Override
    public Map<String, Parameter> namedParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>();
        p.put("adapter_down.0.weight", downWeight);
        p.put("adapter_down.0.bias", downBias);
        p.put("adapter_up.weight", upWeight);
        p.put("adapter_up.bias", upBias);
        return p;
    }

    private NDArray activate(NDArray x) {
        return switch (activation) {
            case "relu" -> Activation.relu(x);
            // transformers' SiLUActivation: x * sigmoid(x).
            case "swish", "silu" -> x.mul(Activation.sigmoid(x));
            // transformers' GELUActivation: the exact erf form.
            case "gelu" -> Activation.gelu(x);
            case "gelu_new" -> Activations.geluNew(x);
            case "tanh" -> x.tanh();
            default -> throw new IllegalStateException(activation);
        };
    }

    @Override
    public NDArray apply(
            ParameterStore ps,
            NDArray out,
            NDArray residual,
            UnaryOperator<NDArray> layerNorm,
            boolean training) {
        var device = out.getDevice();
        // pre_forward: residual_before_ln = true keeps the sub-layer's output as the adapter's
        // residual; original_ln_before adds the sub-layer's residual (and LayerNorm, post-LN).
        NDArray adapterResidual = out;
        NDArray x = out;
        if (originalLnBefore) {
            x = out.add(residual);
            if (layerNorm != null) {
                x = layerNorm.apply(x);
            }
        }
        NDArray down =
                activate(
                        Linear.linear(
                                        x,
                                        ps.getValue(downWeight, device, training),
                                        ps.getValue(downBias, device, training))
                                .singletonOrThrow());
        NDArray up =
                Linear.linear(
                                down,
                                ps.getValue(upWeight, device, training),
                                ps.getValue(upBias, device, training))
                        .singletonOrThrow();
        NDArray y = TrainingDropout.apply(up, dropout, training).add(adapterResidual);
        // post_forward, original_ln_after: the sub-layer's residual, then the layer's LayerNorm.
        NDArray sum = y.add(residual);
        return layerNorm == null ? sum : layerNorm.apply(sum);
    }

    @Override
    protected NDList forwardInternal(
            ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        return new NDList(apply(ps, inputs.get(0), inputs.get(1), null, training));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        return new Shape[] {inputShapes[0]};
    }
}
