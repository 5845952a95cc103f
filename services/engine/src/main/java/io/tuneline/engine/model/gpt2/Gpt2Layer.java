package io.tuneline.engine.model.gpt2;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import io.tuneline.engine.nn.Activations;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.nn.LayerNormBlock;
import io.tuneline.engine.nn.NativeOps;
import io.tuneline.engine.nn.ResidualTap;
import io.tuneline.engine.nn.Scalars;
import io.tuneline.engine.nn.TrainingDropout;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One pre-LN GPT-2 block (Radford et al. 2019): {@code x + attn(ln_1(x))}, then {@code x +
 * mlp(ln_2(x))} with a GELU "new" (tanh approximation) feed-forward. Inputs: hidden states (B, T,
 * H) and an additive attention mask broadcastable to (B, heads, T, T) that already holds the causal
 * triangle; optionally a key/value prefix (keys, values, each (B, heads, N, head_dim)) prepended to
 * the keys and values, the mask then (1 or B, 1, T, N + T).
 *
 * <p>The four projections are {@link Dense} layers in PyTorch's (out, in) layout; Hugging Face's
 * GPT-2 keeps them as {@code Conv1D} with (in, out) weights, which {@link Gpt2Checkpoint}
 * transposes when it loads and saves.
 */
public final class Gpt2Layer extends AbstractBlock {

    private final int hidden;
    private final int heads;
    private final float attnDropout;
    private final float residDropout;
    private final LayerNormBlock ln1;
    private final Dense cAttn;
    private final Dense attnProj;
    private final LayerNormBlock ln2;
    private final Dense cFc;
    private final Dense mlpProj;
    private final ResidualTap attentionTap;
    private final ResidualTap outputTap;

    public Gpt2Layer(Gpt2Config config) {
        hidden = config.hiddenSize();
        heads = config.heads();
        attnDropout = config.attnPdrop();
        residDropout = config.residPdrop();
        ln1 = addChildBlock("ln_1", new LayerNormBlock(hidden, config.layerNormEps()));
        cAttn = addChildBlock("attn_c_attn", new Dense(hidden, 3 * hidden));
        attnProj = addChildBlock("attn_c_proj", new Dense(hidden, hidden));
        ln2 = addChildBlock("ln_2", new LayerNormBlock(hidden, config.layerNormEps()));
        cFc = addChildBlock("mlp_c_fc", new Dense(hidden, config.innerSize()));
        mlpProj = addChildBlock("mlp_c_proj", new Dense(config.innerSize(), hidden));
        attentionTap =
                addChildBlock(
                        "attention_adapters", new ResidualTap(ResidualTap.Point.ATTENTION, hidden));
        outputTap =
                addChildBlock(
                        "output_adapters", new ResidualTap(ResidualTap.Point.FEED_FORWARD, hidden));
    }

    /**
     * The residual taps by the {@code adapters} library's module path relative to {@code
     * transformer.h.N.} ({@code GPT2BlockWithAdapters}: {@code attention_adapters}, {@code
     * output_adapters}).
     */
    Map<String, ResidualTap> residualTaps() {
        Map<String, ResidualTap> m = new LinkedHashMap<>();
        m.put("attention_adapters", attentionTap);
        m.put("output_adapters", outputTap);
        return m;
    }

    /** Parameters under their Hugging Face names, relative to {@code transformer.h.N.}. */
    Map<String, Parameter> namedParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>();
        p.put("ln_1.weight", ln1.weight());
        p.put("ln_1.bias", ln1.bias());
        dense(p, "attn.c_attn", cAttn);
        dense(p, "attn.c_proj", attnProj);
        p.put("ln_2.weight", ln2.weight());
        p.put("ln_2.bias", ln2.bias());
        dense(p, "mlp.c_fc", cFc);
        dense(p, "mlp.c_proj", mlpProj);
        p.putAll(ResidualTap.parameters(residualTaps()));
        return p;
    }

    private static void dense(Map<String, Parameter> p, String module, Dense d) {
        d.namedParameters().forEach((name, param) -> p.put(module + "." + name, param));
    }

    /** The projections by Hugging Face module path, relative to {@code transformer.h.N.}. */
    Map<String, Dense> linears() {
        Map<String, Dense> m = new LinkedHashMap<>();
        m.put("attn.c_attn", cAttn);
        m.put("attn.c_proj", attnProj);
        m.put("mlp.c_fc", cFc);
        m.put("mlp.c_proj", mlpProj);
        return m;
    }

    @Override
    protected NDList forwardInternal(
            ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        NDArray x = inputs.get(0);
        NDArray mask = inputs.get(1);
        Shape shape = x.getShape();
        long b = shape.get(0);
        long t = shape.get(1);
        long d = hidden / heads;
        NDArray flat = x.reshape(b * t, hidden);
        NDArray qkv = apply(cAttn, ps, apply(ln1, ps, flat, training), training);
        // c_attn's output is [q | k | v] along the last axis, each H wide.
        NDArray heads4 = qkv.reshape(b, t, 3, heads, d).transpose(2, 0, 3, 1, 4);
        NDArray q = heads4.get(0);
        NDArray k = heads4.get(1);
        NDArray v = heads4.get(2);
        if (inputs.size() > 3) {
            // A key/value prefix (B, heads, N, d), in front of the tokens' own keys and values.
            k = NDArrays.concat(new NDList(inputs.get(2), k), 2);
            v = NDArrays.concat(new NDList(inputs.get(3), v), 2);
        }
        NDArray scores =
                Scalars.mul(NativeOps.matMul(q, NativeOps.swapAxes(k, 2, 3)), 1.0 / Math.sqrt(d))
                        .add(mask);
        // As Hugging Face's GPT2Attention and GPT2MLP: attn_pdrop on the attention probabilities,
        // resid_pdrop on the attention's and the MLP's output before each residual sum.
        NDArray probs = TrainingDropout.apply(scores.softmax(-1), attnDropout, training);
        NDArray context =
                NativeOps.swapAxes(NativeOps.matMul(probs, v), 1, 2).reshape(b * t, hidden);
        NDArray h1 =
                attentionTap.apply(
                        ps,
                        TrainingDropout.apply(
                                apply(attnProj, ps, context, training), residDropout, training),
                        flat,
                        null,
                        training);
        NDArray ff =
                TrainingDropout.apply(
                        apply(
                                mlpProj,
                                ps,
                                Activations.geluNew(
                                        apply(cFc, ps, apply(ln2, ps, h1, training), training)),
                                training),
                        residDropout,
                        training);
        return new NDList(outputTap.apply(ps, ff, h1, null, training).reshape(b, t, hidden));
    }

    private static NDArray apply(
            AbstractBlock block, ParameterStore ps, NDArray x, boolean training) {
        return block.forward(ps, new NDList(x), training).singletonOrThrow();
    }

    @Override
    protected void initializeChildBlocks(
            NDManager manager, DataType dataType, Shape... inputShapes) {
        Shape flat = new Shape(-1, hidden);
        for (AbstractBlock blk : new AbstractBlock[] {ln1, cAttn, attnProj, ln2, cFc}) {
            blk.initialize(manager, dataType, flat);
        }
        mlpProj.initialize(manager, dataType, new Shape(-1, cFc.out()));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        return new Shape[] {inputShapes[0]};
    }
}
