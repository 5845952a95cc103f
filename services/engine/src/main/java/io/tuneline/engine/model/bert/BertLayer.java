package io.tuneline.engine.model.bert;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Activation;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.nn.LayerNormBlock;
import io.tuneline.engine.nn.NativeOps;
import io.tuneline.engine.nn.ResidualTap;
import io.tuneline.engine.nn.Scalars;
import io.tuneline.engine.nn.TrainingDropout;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One post-LN transformer layer as in BERT (Devlin et al. 2019, arXiv:1810.04805): self-attention,
 * residual, LayerNorm; feed-forward with GELU, residual, LayerNorm. Inputs: hidden states (B, T, H)
 * and an additive attention mask broadcastable to (B, heads, T, T); optionally a key/value prefix
 * (keys, values, each (B, heads, N, head_dim)) prepended to the keys and values, the mask then (B,
 * 1, 1, N + T).
 */
public final class BertLayer extends AbstractBlock {
    private final int hidden;
    private final int heads;
    private final float hiddenDropout;
    private final float attentionDropout;
    private final Dense query;
    private final Dense key;
    private final Dense value;
    private final Dense attentionOutput;
    private final LayerNormBlock attentionNorm;
    private final Dense intermediate;
    private final Dense output;
    private final LayerNormBlock outputNorm;
    private final ResidualTap attentionTap;
    private final ResidualTap outputTap;

    public BertLayer(BertConfig config) {
        hidden = config.hiddenSize();
        heads = config.heads();
        hiddenDropout = config.hiddenDropout();
        attentionDropout = config.attentionDropout();
        query = addChildBlock("query", new Dense(hidden, hidden));
        key = addChildBlock("key", new Dense(hidden, hidden));
        value = addChildBlock("value", new Dense(hidden, hidden));
        attentionOutput = addChildBlock("attention_output", new Dense(hidden, hidden));
        attentionNorm =
                addChildBlock("attention_norm", new LayerNormBlock(hidden, config.layerNormEps()));
        intermediate = addChildBlock("intermediate", new Dense(hidden, config.intermediateSize()));
        output = addChildBlock("output", new Dense(config.intermediateSize(), hidden));
        outputNorm =
                addChildBlock("output_norm", new LayerNormBlock(hidden, config.layerNormEps()));
        // The adapters library's BertSelfOutput / BertOutput are its BottleneckLayers.
        attentionTap =
                addChildBlock(
                        "attention_output_adapters",
                        new ResidualTap(ResidualTap.Point.ATTENTION, hidden));
        outputTap =
                addChildBlock(
                        "output_adapters", new ResidualTap(ResidualTap.Point.FEED_FORWARD, hidden));
    }

    /**
     * The residual taps by the {@code adapters} library's module path relative to {@code
     * encoder.layer.N.}: {@code attention.output} (BertSelfOutput) and {@code output} (BertOutput).
     */
    Map<String, ResidualTap> residualTaps() {
        Map<String, ResidualTap> m = new LinkedHashMap<>();
        m.put("attention.output", attentionTap);
        m.put("output", outputTap);
        return m;
    }

    /** Parameters under their Hugging Face names, relative to {@code encoder.layer.N.}. */
    Map<String, Parameter> namedParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>();
        dense(p, "attention.self.query", query);
        dense(p, "attention.self.key", key);
        dense(p, "attention.self.value", value);
        dense(p, "attention.output.dense", attentionOutput);
        p.put("attention.output.LayerNorm.weight", attentionNorm.weight());
        p.put("attention.output.LayerNorm.bias", attentionNorm.bias());
        dense(p, "intermediate.dense", intermediate);
        dense(p, "output.dense", output);
        p.put("output.LayerNorm.weight", outputNorm.weight());
        p.put("output.LayerNorm.bias", outputNorm.bias());
        p.putAll(ResidualTap.parameters(residualTaps()));
        return p;
    }

    private static void dense(Map<String, Parameter> p, String module, Dense d) {
        d.namedParameters().forEach((name, param) -> p.put(module + "." + name, param));
    }

    /** The linear layers by Hugging Face module path, relative to {@code encoder.layer.N.}. */
    Map<String, Dense> linears() {
        Map<String, Dense> m = new LinkedHashMap<>();
        m.put("attention.self.query", query);
        m.put("attention.self.key", key);
        m.put("attention.self.value", value);
        m.put("attention.output.dense", attentionOutput);
        m.put("intermediate.dense", intermediate);
        m.put("output.dense", output);
        return m;
    }

    @Override
    protected NDList forwardInternal(
            ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        NDArray x = inputs.get(0);
        NDArray mask = inputs.size() > 1 ? inputs.get(1) : null;
        Shape shape = x.getShape();
        long b = shape.get(0);
        long t = shape.get(1);
        long d = hidden / heads;
        NDArray flat = x.reshape(b * t, hidden);
        NDArray q = split(apply(query, ps, flat, training), b, t, d);
        NDArray k = split(apply(key, ps, flat, training), b, t, d);
        NDArray v = split(apply(value, ps, flat, training), b, t, d);
        if (inputs.size() > 3) {
            // A key/value prefix (B, heads, N, d), in front of the tokens' own keys and values.
            k = NDArrays.concat(new NDList(inputs.get(2), k), 2);
            v = NDArrays.concat(new NDList(inputs.get(3), v), 2);
        }
        // Scaled dot-product attention (Vaswani et al. 2017, eq. 1).
        NDArray scores =
                Scalars.mul(NativeOps.matMul(q, NativeOps.swapAxes(k, 2, 3)), 1.0 / Math.sqrt(d));
        if (mask != null) {
            scores = scores.add(mask);
        }
        // As Hugging Face's BertSelfAttention / BertSelfOutput / BertOutput: dropout on the
        // attention probabilities, and on each sublayer's output before its residual LayerNorm.
        NDArray probs = TrainingDropout.apply(scores.softmax(-1), attentionDropout, training);
        NDArray context =
                NativeOps.swapAxes(NativeOps.matMul(probs, v), 1, 2).reshape(b * t, hidden);
        NDArray attended =
                TrainingDropout.apply(
                        apply(attentionOutput, ps, context, training), hiddenDropout, training);
        NDArray h1 =
                attentionTap.apply(
                        ps, attended, flat, s -> apply(attentionNorm, ps, s, training), training);
        NDArray ff =
                TrainingDropout.apply(
                        apply(
                                output,
                                ps,
                                Activation.gelu(apply(intermediate, ps, h1, training)),
                                training),
                        hiddenDropout,
                        training);
        NDArray h2 = outputTap.apply(ps, ff, h1, s -> apply(outputNorm, ps, s, training), training);
        return new NDList(h2.reshape(b, t, hidden));
    }

    private NDArray split(NDArray x, long b, long t, long d) {
        return NativeOps.swapAxes(x.reshape(b, t, heads, d), 1, 2);
    }

    private static NDArray apply(
            AbstractBlock block, ParameterStore ps, NDArray x, boolean training) {
        return block.forward(ps, new NDList(x), training).singletonOrThrow();
    }

    @Override
    protected void initializeChildBlocks(
            NDManager manager, DataType dataType, Shape... inputShapes) {
        Shape flat = new Shape(-1, hidden);
        for (AbstractBlock b :
                new AbstractBlock[] {
                    query, key, value, attentionOutput, intermediate, attentionNorm, outputNorm
                }) {
            b.initialize(manager, dataType, flat);
        }
        output.initialize(manager, dataType, new Shape(-1, intermediate.out()));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        return new Shape[] {inputShapes[0]};
    }
}
