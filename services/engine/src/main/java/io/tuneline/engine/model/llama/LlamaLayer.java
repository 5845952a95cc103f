package io.tuneline.engine.model.llama;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Activation;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.nn.ResidualTap;
import io.tuneline.engine.nn.Scalars;
import io.tuneline.engine.nn.TrainingDropout;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One decoder layer of the Llama family ({@code LlamaDecoderLayer}): {@code h = x +
 * o_proj(attn(input_layernorm(x)))}, then {@code h + down_proj(silu(gate_proj(m)) * up_proj(m))}
 * with {@code m = post_attention_layernorm(h)}.
 *
 * <p>Attention: q (heads x head_dim), k and v (num_key_value_heads x head_dim) projections; Qwen3's
 * per-head RMSNorm of q and k; RoPE on q and k ({@link LlamaRope}); each key/value head serves
 * {@code heads / kv_heads} query heads ({@code repeat_kv}); scores scaled by {@code head_dim^-0.5}
 * plus an additive mask (causal, padding, sliding window), softmax in float32.
 *
 * <p>Projections are {@link Dense} layers in PyTorch's (out, in) layout. {@code Dense} always holds
 * a bias; where the architecture has none it stays zero, frozen, and is neither listed in {@link
 * #namedParameters()} nor read or written in checkpoints.
 */
public final class LlamaLayer extends AbstractBlock {
    private final LlamaConfig config;
    private final int index;
    private final RmsNorm inputNorm;
    private final Dense q;
    private final Dense k;
    private final Dense v;
    private final Dense o;
    private final RmsNorm qNorm;
    private final RmsNorm kNorm;
    private final RmsNorm postNorm;
    private final Dense gate;
    private final Dense up;
    private final Dense down;
    private final ResidualTap attentionTap;
    private final ResidualTap outputTap;

    public LlamaLayer(LlamaConfig config, int index) {
        this.config = config;
        this.index = index;
        int h = config.hiddenSize();
        int d = config.headDim();
        inputNorm = addChildBlock("input_layernorm", new RmsNorm(h, config.rmsNormEps()));
        q = addChildBlock("q_proj", new Dense(h, config.heads() * d));
        k = addChildBlock("k_proj", new Dense(h, config.kvHeads() * d));
        v = addChildBlock("v_proj", new Dense(h, config.kvHeads() * d));
        o = addChildBlock("o_proj", new Dense(config.heads() * d, h));
        if (config.qkNorm()) {
            qNorm = addChildBlock("q_norm", new RmsNorm(d, config.rmsNormEps()));
            kNorm = addChildBlock("k_norm", new RmsNorm(d, config.rmsNormEps()));
        } else {
            qNorm = null;
            kNorm = null;
        }
        postNorm = addChildBlock("post_attention_layernorm", new RmsNorm(h, config.rmsNormEps()));
        gate = addChildBlock("gate_proj", new Dense(h, config.intermediateSize()));
        up = addChildBlock("up_proj", new Dense(h, config.intermediateSize()));
        down = addChildBlock("down_proj", new Dense(config.intermediateSize(), h));
        attentionTap =
                addChildBlock(
                        "attention_adapters", new ResidualTap(ResidualTap.Point.ATTENTION, h));
        outputTap =
                addChildBlock(
                        "output_adapters", new ResidualTap(ResidualTap.Point.FEED_FORWARD, h));
    }

    /**
     * The residual taps by the {@code adapters} library's module path relative to {@code
     * model.layers.N.} ({@code LlamaDecoderLayerWithAdapters}: {@code attention_adapters}, {@code
     * output_adapters}).
     */
    Map<String, ResidualTap> residualTaps() {
        Map<String, ResidualTap> m = new LinkedHashMap<>();
        m.put("attention_adapters", attentionTap);
        m.put("output_adapters", outputTap);
        return m;
    }

    /** The linear layers by Hugging Face module path relative to the layer. */
    Map<String, Dense> linears() {
        Map<String, Dense> m = new LinkedHashMap<>();
        m.put("self_attn.q_proj", q);
        m.put("self_attn.k_proj", k);
        m.put("self_attn.v_proj", v);
        m.put("self_attn.o_proj", o);
        m.put("mlp.gate_proj", gate);
        m.put("mlp.up_proj", up);
        m.put("mlp.down_proj", down);
        return m;
    }

    /** Whether the projection at {@code module} has a bias in this architecture. */
    boolean hasBias(String module) {
        return switch (module) {
            case "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj" -> config.qkvBias();
            case "self_attn.o_proj" -> config.outputBias();
            default -> config.mlpBias();
        };
    }

    /**
     * Parameters under their Hugging Face names relative to {@code model.layers.N.}, in the order
     * of PyTorch's {@code named_parameters()}, attached deltas after their layer's weight and bias.
     */
    Map<String, Parameter> namedParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>();
        for (Map.Entry<String, Dense> e : linears().entrySet()) {
            if (e.getKey().equals("mlp.gate_proj") && qNorm != null) {
                // Qwen3Attention registers q_norm and k_norm after o_proj.
                p.put("self_attn.q_norm.weight", qNorm.weight());
                p.put("self_attn.k_norm.weight", kNorm.weight());
            }
            boolean bias = hasBias(e.getKey());
            String module = e.getKey();
            // Dense lists weight, bias, then its deltas' parameters (PEFT's lora_A.weight, ...).
            e.getValue()
                    .namedParameters()
                    .forEach(
                            (name, param) -> {
                                if (bias || !name.equals("bias")) {
                                    p.put(module + "." + name, param);
                                }
                            });
        }
        p.put("input_layernorm.weight", inputNorm.weight());
        p.put("post_attention_layernorm.weight", postNorm.weight());
        p.putAll(ResidualTap.parameters(residualTaps()));
        return p;
    }

    /**
     * Freezes the zero biases the architecture does not have, so no method trains them, and leaves
     * them out of the forward pass.
     */
    void freezeAbsentBiases() {
        linears()
                .forEach(
                        (module, d) -> {
                            if (!hasBias(module)) {
                                d.omitBias();
                            }
                        });
    }

    /**
     * One layer over hidden states (B, T, H).
     *
     * @param cos cos table (1, 1, T, head_dim) of the tokens' positions
     * @param sin sin table, same shape
     * @param mask additive mask (1 or B, 1, T, S) for this layer's kind (full or sliding)
     * @param prefix a key/value prefix {keys, values}, each (B, kv heads, N, head_dim), put in
     *     front of the keys (after RoPE: prefix keys are not rotated) and values; or null
     * @param cache the cache to extend, or null
     */
    NDArray forward(
            ParameterStore ps,
            NDArray x,
            NDArray cos,
            NDArray sin,
            NDArray mask,
            NDArray[] prefix,
            LlamaKvCache cache,
            boolean training) {
        long b = x.getShape().get(0);
        long t = x.getShape().get(1);
        int hidden = config.hiddenSize();
        int d = config.headDim();
        NDArray flat = x.reshape(b * t, hidden);
        NDArray normed = apply(inputNorm, ps, flat, training);
        NDArray qs = apply(q, ps, normed, training).reshape(b, t, config.heads(), d);
        NDArray ks = apply(k, ps, normed, training).reshape(b, t, config.kvHeads(), d);
        NDArray vs = apply(v, ps, normed, training).reshape(b, t, config.kvHeads(), d);
        if (qNorm != null) {
            // Qwen3Attention: q_norm/k_norm over head_dim of each head, before RoPE.
            qs = apply(qNorm, ps, qs, training);
            ks = apply(kNorm, ps, ks, training);
        }
        qs = rotate(qs.transpose(0, 2, 1, 3), cos, sin);
        ks = rotate(ks.transpose(0, 2, 1, 3), cos, sin);
        vs = vs.transpose(0, 2, 1, 3);
        if (prefix != null) {
            ks = NDArrays.concat(new NDList(prefix[0], ks), 2);
            vs = NDArrays.concat(new NDList(prefix[1], vs), 2);
        }
        if (cache != null) {
            NDArray[] kv = cache.append(index, ks, vs);
            ks = kv[0];
            vs = kv[1];
        }
        ks = repeatKv(ks, config.groups());
        vs = repeatKv(vs, config.groups());
        NDArray scores =
                Scalars.mul(qs.matMul(ks.transpose(0, 1, 3, 2)), (float) Math.pow(d, -0.5))
                        .add(mask);
        // LlamaAttention / eager_attention_forward: dropout on the probabilities, training only.
        NDArray probs =
                TrainingDropout.apply(scores.softmax(-1), config.attentionDropout(), training);
        NDArray context =
                probs.matMul(vs).transpose(0, 2, 1, 3).reshape(b * t, (long) config.heads() * d);
        NDArray h1 = attentionTap.apply(ps, apply(o, ps, context, training), flat, null, training);
        NDArray m = apply(postNorm, ps, h1, training);
        NDArray g = apply(gate, ps, m, training);
        NDArray ff =
                apply(
                        down,
                        ps,
                        g.mul(Activation.sigmoid(g)).mul(apply(up, ps, m, training)),
                        training);
        return outputTap.apply(ps, ff, h1, null, training).reshape(b, t, hidden);
    }

    /** {@code x * cos + rotate_half(x) * sin}, rotate_half(x) = cat(-x2, x1) (HF convention). */
    static NDArray rotate(NDArray x, NDArray cos, NDArray sin) {
        long half = x.getShape().get(x.getShape().dimension() - 1) / 2;
        NDArray x1 = x.get(new NDIndex("..., :" + half));
        NDArray x2 = x.get(new NDIndex("..., " + half + ":"));
        NDArray rotated = NDArrays.concat(new NDList(x2.neg(), x1), -1);
        return x.mul(cos).add(rotated.mul(sin));
    }

    /**
     * {@code repeat_kv}: (B, kv, S, d) to (B, kv * groups, S, d), head h reading kv head h /
     * groups.
     */
    static NDArray repeatKv(NDArray x, int groups) {
        if (groups == 1) {
            return x;
        }
        Shape s = x.getShape();
        return x.expandDims(2)
                .broadcast(new Shape(s.get(0), s.get(1), groups, s.get(2), s.get(3)))
                .reshape(s.get(0), s.get(1) * groups, s.get(2), s.get(3));
    }

    private static NDArray apply(
            AbstractBlock block, ParameterStore ps, NDArray x, boolean training) {
        return block.forward(ps, new NDList(x), training).singletonOrThrow();
    }

    @Override
    protected NDList forwardInternal(
            ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        return new NDList(
                forward(
                        ps,
                        inputs.get(0),
                        inputs.get(1),
                        inputs.get(2),
                        inputs.get(3),
                        null,
                        null,
                        training));
    }

    @Override
    protected void initializeChildBlocks(
            NDManager manager, DataType dataType, Shape... inputShapes) {
        for (AbstractBlock blk : new AbstractBlock[] {inputNorm, q, k, v, postNorm, gate, up}) {
            blk.initialize(manager, dataType, new Shape(-1, config.hiddenSize()));
        }
        o.initialize(manager, dataType, new Shape(-1, (long) config.heads() * config.headDim()));
        down.initialize(manager, dataType, new Shape(-1, config.intermediateSize()));
        if (qNorm != null) {
            qNorm.initialize(manager, dataType, new Shape(-1, config.headDim()));
            kNorm.initialize(manager, dataType, new Shape(-1, config.headDim()));
        }
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        return new Shape[] {inputShapes[0]};
    }
}
