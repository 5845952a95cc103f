package io.tuneline.engine.method;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import ai.djl.training.initializer.Initializer;
import ai.djl.training.initializer.NormalInitializer;
import ai.djl.training.initializer.UniformInitializer;
import io.tuneline.engine.model.KvPrefix;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * PEFT's {@code PrefixEncoder} ({@code tuners/prefix_tuning/model.py}): without projection an
 * embedding of {@code N x (num_layers * 2 * token_dim)} that is itself the prefix; with projection
 * (Li & Liang's re-parameterization) {@code Embedding(N, token_dim) -> Linear(token_dim,
 * encoder_hidden_size) -> Tanh -> Linear(encoder_hidden_size, num_layers * 2 * token_dim)}, run
 * every forward pass while training. Parameters are named as PEFT names them without the adapter
 * name ({@code prompt_encoder.embedding.weight}, {@code prompt_encoder.transform.0.weight}, ...).
 *
 * <p>The {@code (N, L * 2 * token_dim)} output is laid out as PEFT's {@code get_prompt} reads it:
 * viewed as (N, L * 2, kv heads, head_dim), entry {@code 2 l} is layer {@code l}'s keys and {@code
 * 2 l + 1} its values. Initialisation as PyTorch's defaults: the embedding N(0, 1) ({@code
 * nn.Embedding}), the linear layers U(-1/sqrt(in), 1/sqrt(in)) ({@code nn.Linear}), drawn from the
 * engine's seeded generator.
 */
public final class PrefixEncoder implements KvPrefix {
    /** PEFT's parameter names under {@code prompt_encoder.<adapter>.}, here without the adapter. */
    public static final String EMBEDDING = "prompt_encoder.embedding.weight";

    public static final String TRANSFORM_0_WEIGHT = "prompt_encoder.transform.0.weight";
    public static final String TRANSFORM_0_BIAS = "prompt_encoder.transform.0.bias";
    public static final String TRANSFORM_2_WEIGHT = "prompt_encoder.transform.2.weight";
    public static final String TRANSFORM_2_BIAS = "prompt_encoder.transform.2.bias";

    private final int virtualTokens;
    private final int projectionHiddenSize;
    private final KvPrefix.Sizes shape;
    private final Map<String, Parameter> parameters = new LinkedHashMap<>();

    /**
     * @param projectionHiddenSize PEFT's {@code encoder_hidden_size} with {@code
     *     prefix_projection}, or 0 for none
     */
    public PrefixEncoder(
            int virtualTokens, int projectionHiddenSize, KvPrefix.Sizes shape, NDManager manager) {
        if (virtualTokens < 1) {
            throw new IllegalArgumentException(
                    "prefix tuning needs at least one virtual token, was " + virtualTokens);
        }
        if (projectionHiddenSize < 0) {
            throw new IllegalArgumentException(
                    "the prefix projection's hidden size must be 0 (none) or positive, was "
                            + projectionHiddenSize);
        }
        this.virtualTokens = virtualTokens;
        this.projectionHiddenSize = projectionHiddenSize;
        this.shape = shape;
        long out = (long) shape.layers() * 2 * shape.tokenDim();
        if (projectionHiddenSize == 0) {
            add(EMBEDDING, Parameter.Type.WEIGHT, new Shape(virtualTokens, out), normal(), manager);
        } else {
            int d = shape.tokenDim();
            int h = projectionHiddenSize;
            add(EMBEDDING, Parameter.Type.WEIGHT, new Shape(virtualTokens, d), normal(), manager);
            add(TRANSFORM_0_WEIGHT, Parameter.Type.WEIGHT, new Shape(h, d), uniform(d), manager);
            add(TRANSFORM_0_BIAS, Parameter.Type.BIAS, new Shape(h), uniform(d), manager);
            add(TRANSFORM_2_WEIGHT, Parameter.Type.WEIGHT, new Shape(out, h), uniform(h), manager);
            add(TRANSFORM_2_BIAS, Parameter.Type.BIAS, new Shape(out), uniform(h), manager);
        }
    }

    private static Initializer normal() {
        return new NormalInitializer(1f);
    }

    private static Initializer uniform(int in) {
        return new UniformInitializer((float) (1.0 / Math.sqrt(in)));
    }

    private void add(
            String name, Parameter.Type type, Shape s, Initializer initializer, NDManager manager) {
        Parameter p =
                Parameter.builder()
                        .setName(name)
                        .setType(type)
                        .optShape(s)
                        .optInitializer(initializer)
                        .build();
        p.initialize(manager, DataType.FLOAT32);
        parameters.put(name, p);
    }

    public int projectionHiddenSize() {
        return projectionHiddenSize;
    }

    public KvPrefix.Sizes sizes() {
        return shape;
    }

    @Override
    public int virtualTokens() {
        return virtualTokens;
    }

    @Override
    public Map<String, Parameter> namedParameters() {
        return java.util.Collections.unmodifiableMap(parameters);
    }

    @Override
    public Set<String> undecayed() {
        return Set.of(EMBEDDING);
    }

    /**
     * The encoder's output for the {@code N} virtual tokens, (N, L * 2 * token_dim): what PEFT's
     * {@code get_prompt_embedding_to_save} returns and exports as {@code prompt_embeddings}.
     */
    public NDArray prefix(ParameterStore ps, Device device, boolean training) {
        NDArray weight = ps.getValue(parameters.get(EMBEDDING), device, training);
        // An op's result belongs to its first operand's manager: without this view in the step's
        // manager, every forward pass would leave its prefix arrays in the model's manager.
        NDArray e = weight.reshape(weight.getShape());
        e.attach(ps.getManager());
        if (projectionHiddenSize == 0) {
            return e;
        }
        NDArray hidden =
                Linear.linear(
                                e,
                                ps.getValue(parameters.get(TRANSFORM_0_WEIGHT), device, training),
                                ps.getValue(parameters.get(TRANSFORM_0_BIAS), device, training))
                        .singletonOrThrow()
                        .tanh();
        return Linear.linear(
                        hidden,
                        ps.getValue(parameters.get(TRANSFORM_2_WEIGHT), device, training),
                        ps.getValue(parameters.get(TRANSFORM_2_BIAS), device, training))
                .singletonOrThrow();
    }

    @Override
    public List<NDArray[]> keysAndValues(
            ParameterStore ps, long batch, Device device, boolean training) {
        int n = virtualTokens;
        // PEFT's get_prompt: view (B, N, L * 2, heads, head_dim), permute to (L * 2, B, heads, N,
        // head_dim), split in (keys, values) pairs per layer.
        NDArray all =
                prefix(ps, device, training)
                        .reshape(n, 2L * shape.layers(), shape.kvHeads(), shape.headDim())
                        .transpose(1, 2, 0, 3);
        Shape perLayer = new Shape(batch, shape.kvHeads(), n, shape.headDim());
        List<NDArray[]> out = new ArrayList<>(shape.layers());
        for (int l = 0; l < shape.layers(); l++) {
            NDArray k = all.get(2L * l).expandDims(0).broadcast(perLayer);
            NDArray v = all.get(2L * l + 1).expandDims(0).broadcast(perLayer);
            out.add(new NDArray[] {k, v});
        }
        return out;
    }
}
