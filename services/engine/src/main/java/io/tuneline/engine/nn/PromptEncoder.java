package io.tuneline.engine.nn;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * P-tuning's prompt encoder (Liu et al. 2021, arXiv:2103.10385) as PEFT builds it ({@code
 * peft/tuners/p_tuning/model.py}, {@code PromptEncoder}): an embedding (N, token_dim), then
 *
 * <ul>
 *   <li>MLP: {@code Linear(token_dim, h) -> ReLU -> Linear(h, h) -> ReLU -> Linear(h, token_dim)}
 *       ({@code mlp_head.0/2/4}; {@code encoder_dropout} is not used by PEFT's MLP), or
 *   <li>LSTM: a bidirectional two-layer {@code nn.LSTM(token_dim, h, dropout=encoder_dropout)}
 *       ({@code lstm_head}), then {@code Linear(2h, 2h) -> ReLU -> Linear(2h, token_dim)} ({@code
 *       mlp_head.0/2}).
 * </ul>
 *
 * <p>The virtual tokens are the encoder's output, computed in every forward pass; PEFT's export
 * saves only that output ({@code prompt_embeddings}), the engine's checkpoints and {@code
 * MethodState} keep every weight here so a run can continue. Parameters are named as PEFT's module
 * paths name them under {@code prompt_encoder.}; the embedding is of type {@code OTHER} (no weight
 * decay), linear and LSTM weights {@code WEIGHT} (decayed), biases {@code BIAS}.
 */
public final class PromptEncoder implements VirtualTokens {
    /** The encoder's input embedding, (N, token_dim). */
    public static final String EMBEDDING = "prompt_encoder.embedding.weight";

    /** PEFT's {@code PromptEncoderReparameterizationType}. */
    public enum Kind {
        MLP,
        LSTM
    }

    /** PEFT's {@code encoder_num_layers} default (2), the LSTM's depth; the MLP has 3 linears. */
    public static final int LSTM_LAYERS = 2;

    private final Kind kind;
    private final int hidden;
    private final float dropout;
    private final Parameter embedding;
    private final Map<String, Parameter> parameters = new LinkedHashMap<>();

    /**
     * An encoder for {@code virtualTokens} tokens of width {@code tokenDim} with hidden size {@code
     * hidden}, initialised as PyTorch initialises {@code nn.Embedding} (N(0, 1)), {@code nn.Linear}
     * and {@code nn.LSTM}, from the engine's seeded generator in {@code manager}.
     */
    public PromptEncoder(
            Kind kind,
            int virtualTokens,
            int tokenDim,
            int hidden,
            float dropout,
            NDManager manager) {
        if (virtualTokens < 1 || tokenDim < 1 || hidden < 1) {
            throw new IllegalArgumentException(
                    "a prompt encoder needs at least one virtual token and positive sizes, was "
                            + virtualTokens
                            + " tokens of "
                            + tokenDim
                            + " through "
                            + hidden);
        }
        this.kind = kind;
        this.hidden = hidden;
        this.dropout = dropout;
        embedding =
                PromptParameters.of(
                        EMBEDDING,
                        Parameter.Type.OTHER,
                        manager.randomNormal(new Shape(virtualTokens, tokenDim)));
        parameters.put(EMBEDDING, embedding);
        if (kind == Kind.MLP) {
            linear(manager, "prompt_encoder.mlp_head.0", tokenDim, hidden);
            linear(manager, "prompt_encoder.mlp_head.2", hidden, hidden);
            linear(manager, "prompt_encoder.mlp_head.4", hidden, tokenDim);
        } else {
            double bound = 1.0 / Math.sqrt(hidden);
            for (int layer = 0; layer < LSTM_LAYERS; layer++) {
                int in = layer == 0 ? tokenDim : 2 * hidden;
                for (String suffix : new String[] {"", "_reverse"}) {
                    String l = "_l" + layer + suffix;
                    lstm(manager, "weight_ih" + l, Parameter.Type.WEIGHT, bound, 4 * hidden, in);
                    lstm(
                            manager,
                            "weight_hh" + l,
                            Parameter.Type.WEIGHT,
                            bound,
                            4 * hidden,
                            hidden);
                    lstm(manager, "bias_ih" + l, Parameter.Type.BIAS, bound, 4 * hidden);
                    lstm(manager, "bias_hh" + l, Parameter.Type.BIAS, bound, 4 * hidden);
                }
            }
            linear(manager, "prompt_encoder.mlp_head.0", 2 * hidden, 2 * hidden);
            linear(manager, "prompt_encoder.mlp_head.2", 2 * hidden, tokenDim);
        }
    }

    private void linear(NDManager manager, String module, int in, int out) {
        double bound = 1.0 / Math.sqrt(in);
        parameters.put(
                module + ".weight",
                PromptParameters.of(
                        module + ".weight",
                        Parameter.Type.WEIGHT,
                        PromptParameters.uniform(manager, bound, new Shape(out, in))));
        parameters.put(
                module + ".bias",
                PromptParameters.of(
                        module + ".bias",
                        Parameter.Type.BIAS,
                        PromptParameters.uniform(manager, bound, new Shape(out))));
    }

    private void lstm(
            NDManager manager, String name, Parameter.Type type, double bound, long... shape) {
        String full = "prompt_encoder.lstm_head." + name;
        parameters.put(
                full,
                PromptParameters.of(
                        full, type, PromptParameters.uniform(manager, bound, new Shape(shape))));
    }

    public Kind kind() {
        return kind;
    }

    @Override
    public int count() {
        return Math.toIntExact(embedding.getArray().getShape().get(0));
    }

    @Override
    public Map<String, Parameter> namedParameters() {
        return java.util.Collections.unmodifiableMap(parameters);
    }

    private NDArray value(ParameterStore ps, String name, Device device, boolean training) {
        return ps.getValue(parameters.get(name), device, training);
    }

    private NDArray linear(
            ParameterStore ps, NDArray x, String module, Device device, boolean training) {
        return Linear.linear(
                        x,
                        value(ps, module + ".weight", device, training),
                        value(ps, module + ".bias", device, training))
                .singletonOrThrow();
    }

    @Override
    public NDArray embeddings(ParameterStore ps, Device device, boolean training) {
        // A differentiable copy of the rows, owned by the forward pass's manager: every later
        // operation takes its first operand's manager, so the encoder's activations go with the
        // step instead of piling up in the model's manager (VirtualTokens.forBatch says more).
        // A differentiable view of the rows owned by the forward pass's manager: every later
        // operation takes its first operand's manager, so the encoder's activations go with the
        // step instead of piling up in the model's manager (VirtualTokens.forBatch says more).
        // A view, not duplicate(): DJL's duplicate copies through Java memory, outside autograd.
        NDArray rows = ps.getValue(embedding, device, training);
        NDArray x = rows.reshape(rows.getShape());
        x.attach(ps.getManager());
        if (kind == Kind.MLP) {
            x = Activation.relu(linear(ps, x, "prompt_encoder.mlp_head.0", device, training));
            x = Activation.relu(linear(ps, x, "prompt_encoder.mlp_head.2", device, training));
            return linear(ps, x, "prompt_encoder.mlp_head.4", device, training);
        }
        for (int layer = 0; layer < LSTM_LAYERS; layer++) {
            if (layer > 0) {
                // nn.LSTM's dropout: on every layer's output but the last, in training only.
                x = TrainingDropout.apply(x, dropout, training);
            }
            NDArray forward = direction(ps, x, "_l" + layer, false, device, training);
            NDArray backward = direction(ps, x, "_l" + layer + "_reverse", true, device, training);
            x = forward.concat(backward, 1);
        }
        x = Activation.relu(linear(ps, x, "prompt_encoder.mlp_head.0", device, training));
        return linear(ps, x, "prompt_encoder.mlp_head.2", device, training);
    }

    /**
     * One direction of one LSTM layer over the N virtual tokens as a sequence (batch 1), PyTorch's
     * gate order i, f, g, o: {@code c = f c + i g}, {@code h = o tanh(c)}. Returns (N, hidden), row
     * t the state after token t (for the reverse direction, after tokens N-1 .. t).
     */
    private NDArray direction(
            ParameterStore ps,
            NDArray x,
            String suffix,
            boolean reverse,
            Device device,
            boolean training) {
        String p = "prompt_encoder.lstm_head.";
        NDArray inputs =
                Linear.linear(
                                x,
                                value(ps, p + "weight_ih" + suffix, device, training),
                                value(ps, p + "bias_ih" + suffix, device, training))
                        .singletonOrThrow()
                        .add(value(ps, p + "bias_hh" + suffix, device, training));
        NDArray recurrent = value(ps, p + "weight_hh" + suffix, device, training);
        int n = count();
        NDArray h = x.getManager().zeros(new Shape(1, hidden), DataType.FLOAT32, device);
        NDArray c = h;
        List<NDArray> states = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int t = reverse ? n - 1 - i : i;
            NDArray gates =
                    inputs.get(new NDIndex("{}:{}", t, t + 1))
                            .add(Linear.linear(h, recurrent).singletonOrThrow());
            NDArray in = Activation.sigmoid(gates.get(new NDIndex(":, 0:{}", hidden)));
            NDArray forget =
                    Activation.sigmoid(gates.get(new NDIndex(":, {}:{}", hidden, 2 * hidden)));
            NDArray cell =
                    Activation.tanh(gates.get(new NDIndex(":, {}:{}", 2 * hidden, 3 * hidden)));
            NDArray out = Activation.sigmoid(gates.get(new NDIndex(":, {}:", 3 * hidden)));
            c = forget.mul(c).add(in.mul(cell));
            h = out.mul(Activation.tanh(c));
            states.add(h);
        }
        if (reverse) {
            java.util.Collections.reverse(states);
        }
        return NDArrays.concat(new NDList(states), 0);
    }
}
