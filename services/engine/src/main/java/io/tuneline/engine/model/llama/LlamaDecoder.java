package io.tuneline.engine.model.llama;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.ndarray.types.SparseFormat;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Embedding;
import ai.djl.training.ParameterStore;
import ai.djl.training.initializer.NormalInitializer;
import ai.djl.util.PairList;
import io.tuneline.engine.model.KvPrefix;
import io.tuneline.engine.model.LayerSegments;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.nn.ResidualTap;
import io.tuneline.engine.nn.VirtualTokens;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.UnaryOperator;

/**
 * The Llama-family decoder without its LM head ({@code LlamaModel}, Hugging Face's {@code model.}
 * prefix): {@code embed_tokens}, the layers, the final {@code norm}. Inputs: token ids (B, T) and
 * optionally an attention mask (B, T) with 1 for tokens and 0 for padding; output: the normalised
 * hidden states (B, T, H).
 *
 * <p>Positions are {@code past .. past + T - 1} for every row (as HF's forward without {@code
 * position_ids}), so pad on the right. A query sees keys at its own and earlier positions, not
 * padded keys, and on sliding-window layers only keys less than {@code sliding_window} positions
 * back ({@code kv_idx > q_idx - sliding_window}, transformers' {@code sliding_window_overlay}).
 * Masked scores get float32's lowest value added, as HF's eager attention does.
 *
 * <p>With virtual tokens attached ({@link #attachVirtualTokens}: prompt tuning, P-tuning) they sit
 * at positions 0 .. N - 1 (rotated by RoPE like any token) and the real tokens at N ..; the hidden
 * states returned are the real tokens'.
 */
public final class LlamaDecoder extends AbstractBlock {
    private final LlamaConfig config;
    private final Parameter embedTokens;
    private final List<LlamaLayer> layers = new ArrayList<>();
    private final RmsNorm norm;
    private VirtualTokens virtualTokens;
    private KvPrefix prefix;

    public LlamaDecoder(LlamaConfig config) {
        this.config = config;
        embedTokens =
                addParameter(
                        Parameter.builder()
                                .setName("embed_tokens")
                                .setType(Parameter.Type.WEIGHT)
                                .optShape(new Shape(config.vocabSize(), config.hiddenSize()))
                                // LlamaConfig.initializer_range.
                                .optInitializer(new NormalInitializer(0.02f))
                                .build());
        for (int i = 0; i < config.layers(); i++) {
            layers.add(addChildBlock("layers_" + i, new LlamaLayer(config, i)));
        }
        norm = addChildBlock("norm", new RmsNorm(config.hiddenSize(), config.rmsNormEps()));
    }

    public LlamaConfig config() {
        return config;
    }

    /** {@code embed_tokens}: (vocab, hidden); also the LM head's weight when tied. */
    public Parameter embedTokens() {
        return embedTokens;
    }

    /**
     * Prepends {@code tokens} to the token embeddings from now on (prompt tuning, P-tuning): see
     * {@link VirtualTokens}. With a key/value cache they are prepended on the first call (an empty
     * cache) and stay in the cache, so generation honours them; the hidden states returned are the
     * real tokens' only.
     */
    public void attachVirtualTokens(VirtualTokens tokens) {
        if (virtualTokens != null) {
            throw new IllegalStateException("the decoder has virtual tokens already");
        }
        virtualTokens = tokens;
    }

    public Optional<VirtualTokens> virtualTokens() {
        return Optional.ofNullable(virtualTokens);
    }

    public List<LlamaLayer> layers() {
        return List.copyOf(layers);
    }

    /** Layers, key/value heads and head_dim of the prefixes this decoder's attention takes. */
    public KvPrefix.Sizes kvPrefixSizes() {
        return new KvPrefix.Sizes(config.layers(), config.kvHeads(), config.headDim());
    }

    /** Every layer prepends {@code p}'s keys and values from the next forward pass on. */
    public void attachKvPrefix(KvPrefix p) {
        if (prefix != null) {
            throw new IllegalStateException("the decoder has a key/value prefix already");
        }
        prefix = p;
    }

    public Optional<KvPrefix> kvPrefix() {
        return Optional.ofNullable(prefix);
    }

    /**
     * Every parameter under its Hugging Face name without the {@code model.} prefix ({@code
     * embed_tokens.weight}, {@code layers.0.self_attn.q_proj.weight}, {@code norm.weight}).
     */
    public Map<String, Parameter> namedParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>();
        p.put("embed_tokens.weight", embedTokens);
        for (int i = 0; i < layers.size(); i++) {
            String prefix = "layers." + i + ".";
            layers.get(i).namedParameters().forEach((name, param) -> p.put(prefix + name, param));
        }
        p.put("norm.weight", norm.weight());
        return p;
    }

    /** The residual taps by module path without the {@code model.} prefix. */
    public Map<String, ResidualTap> residualTaps() {
        Map<String, ResidualTap> m = new LinkedHashMap<>();
        for (int i = 0; i < layers.size(); i++) {
            String prefix = "layers." + i + ".";
            layers.get(i).residualTaps().forEach((name, tap) -> m.put(prefix + name, tap));
        }
        return m;
    }

    /** The linear layers by module path without the {@code model.} prefix. */
    public Map<String, Dense> linears() {
        Map<String, Dense> m = new LinkedHashMap<>();
        for (int i = 0; i < layers.size(); i++) {
            String prefix = "layers." + i + ".";
            layers.get(i).linears().forEach((name, d) -> m.put(prefix + name, d));
        }
        return m;
    }

    /**
     * Hidden states (B, T, H) after the final norm.
     *
     * @param mask (B, past + T) with 1 for tokens and 0 for padding, or null for none
     * @param cache keys and values of earlier positions, extended by this call; or null
     */
    public NDArray hidden(
            ParameterStore ps, NDArray ids, NDArray mask, LlamaKvCache cache, boolean training) {
        return hidden(ps, ids, mask, cache, training, false);
    }

    /**
     * As {@link #hidden(ParameterStore, NDArray, NDArray, LlamaKvCache, boolean)}; with {@code
     * lastVirtual} and virtual tokens going in on this call, the states start at the last virtual
     * token: (B, 1 + T, H) ({@link
     * io.tuneline.engine.model.CausalLanguageModel#WITH_LAST_VIRTUAL_TOKEN}).
     */
    public NDArray hidden(
            ParameterStore ps,
            NDArray ids,
            NDArray mask,
            LlamaKvCache cache,
            boolean training,
            boolean lastVirtual) {
        return hidden(ps, ids, mask, cache, training, lastVirtual, null);
    }

    /** Whether {@link #hiddenLeftPadded} applies: no virtual tokens and no key/value prefix. */
    public boolean takesLeftPaddedBatches() {
        return virtualTokens == null && prefix == null;
    }

    /**
     * Hidden states (B, T, H) of a batch of sequences padded on the left, for batched generation:
     * row b starts with {@code leftPads[b]} padding positions (0 in {@code mask}), and its tokens
     * take positions 0, 1, ... from its first real token on, as transformers numbers them from the
     * attention mask ({@code position_ids = cumsum(mask) - 1}) when it generates for a left-padded
     * batch. Rotary tables are per row; the causal and padding masks are as {@link #hidden}'s.
     *
     * @throws IllegalArgumentException with virtual tokens or a key/value prefix attached (their
     *     positions come before the padding, which this layout does not place)
     */
    public NDArray hiddenLeftPadded(
            ParameterStore ps, NDArray ids, NDArray mask, LlamaKvCache cache, long[] leftPads) {
        if (!takesLeftPaddedBatches()) {
            throw new IllegalArgumentException(
                    "left-padded batches are not supported with virtual tokens or a key/value"
                            + " prefix attached");
        }
        if (leftPads.length != ids.getShape().get(0) || mask == null) {
            throw new IllegalArgumentException(
                    leftPads.length
                            + " padding counts and "
                            + (mask == null ? "no mask" : "a mask")
                            + " for "
                            + ids.getShape().get(0)
                            + " rows; give one count per row and the mask");
        }
        return hidden(ps, ids, mask, cache, false, false, leftPads);
    }

    private NDArray hidden(
            ParameterStore ps,
            NDArray ids,
            NDArray mask,
            LlamaKvCache cache,
            boolean training,
            boolean lastVirtual,
            long[] leftPads) {
        long b = ids.getShape().get(0);
        int real = Math.toIntExact(ids.getShape().get(1));
        Device device = ids.getDevice();
        NDManager manager = ids.getManager();
        // Virtual tokens (prompt tuning, P-tuning) come first, as PEFT passes inputs_embeds of
        // length N + T: positions 0 .. N + T - 1 (RoPE rotates them too), N ones in front of the
        // mask. With a cache they go in on the first call and stay there.
        int n =
                virtualTokens != null && (cache == null || cache.length() == 0)
                        ? virtualTokens.count()
                        : 0;
        int t = n + real;
        // A key/value prefix is P positions before the real tokens, as transformers sees PEFT's
        // past_key_values: real tokens at positions P.. (cache_position), prefix keys unrotated.
        // With a cache, the prefix is its first P positions; without, each layer prepends it.
        int p = prefix == null ? 0 : prefix.virtualTokens();
        List<NDArray[]> prefixKv = null;
        if (prefix != null && cache == null) {
            prefixKv = prefix.keysAndValues(ps, b, device, training);
        } else if (prefix != null && cache.length() == 0) {
            List<NDArray[]> kv = prefix.keysAndValues(ps, b, device, false);
            for (int i = 0; i < layers.size(); i++) {
                cache.append(i, kv.get(i)[0], kv.get(i)[1]);
            }
            cache.advance(p);
        }
        long past = cache == null ? p : cache.length();
        // The caller's mask covers the real tokens (cached and new) and, once cached, the virtual
        // tokens; the prefix's P ones and, on the first call, the virtual tokens' N ones go first.
        if (mask != null
                && (mask.getShape().dimension() != 2
                        || mask.getShape().get(0) != b
                        || mask.getShape().get(1) != past - p + real)) {
            throw new IllegalArgumentException(
                    "attention mask of shape "
                            + mask.getShape()
                            + " for "
                            + b
                            + " rows of "
                            + (past - p)
                            + " cached and "
                            + real
                            + " new tokens; expected ("
                            + b
                            + ", "
                            + (past - p + real)
                            + ")");
        }
        if (virtualTokens != null && past + t > config.maxPositionEmbeddings()) {
            throw new IllegalArgumentException(
                    "sequence of "
                            + (past + t - virtualTokens.count())
                            + " tokens after "
                            + virtualTokens.count()
                            + " virtual tokens is longer than the model's "
                            + config.maxPositionEmbeddings()
                            + " positions (max_position_embeddings)");
        }
        if (mask != null && p > 0) {
            NDArray ones = manager.ones(new Shape(b, p), mask.getDataType(), mask.getDevice());
            mask = NDArrays.concat(new NDList(ones, mask), 1);
        }
        NDArray x =
                Embedding.embedding(
                                ids, ps.getValue(embedTokens, device, training), SparseFormat.DENSE)
                        .singletonOrThrow();
        if (n > 0) {
            NDArray prompt = virtualTokens.forBatch(ps, device, training, b, ids.getManager());
            x = prompt.concat(x, 1);
            if (mask != null) {
                mask =
                        manager.ones(new Shape(b, n), DataType.FLOAT32, device)
                                .concat(mask.toType(DataType.FLOAT32, false), 1);
            }
        }
        NDArray cos;
        NDArray sin;
        if (leftPads == null) {
            float[][] cs = LlamaRope.cosSin(config, past, t);
            Shape table = new Shape(1, 1, t, config.headDim());
            cos = rotary(manager, cs[0], table, device);
            sin = rotary(manager, cs[1], table, device);
        } else {
            // Row r's tokens sit at positions past - pads .. : its padding gets negative
            // positions, whose rotations nothing attends to.
            int d = config.headDim();
            float[] c = new float[Math.toIntExact(b) * t * d];
            float[] sn = new float[c.length];
            for (int r = 0; r < b; r++) {
                float[][] cs = LlamaRope.cosSin(config, past - leftPads[r], t);
                System.arraycopy(cs[0], 0, c, r * t * d, t * d);
                System.arraycopy(cs[1], 0, sn, r * t * d, t * d);
            }
            Shape table = new Shape(b, 1, t, d);
            cos = rotary(manager, c, table, device);
            sin = rotary(manager, sn, table, device);
        }
        NDArray full = attentionBias(manager, past, t, mask, 0).toDevice(device, false);
        NDArray sliding =
                config.slidingWindow() > 0
                        ? attentionBias(manager, past, t, mask, config.slidingWindow())
                                .toDevice(device, false)
                        : full;
        for (int i = 0; i < layers.size(); i++) {
            NDArray bias = config.sliding(i) ? sliding : full;
            NDArray[] kv = prefixKv == null ? null : prefixKv.get(i);
            x = layers.get(i).forward(ps, x, cos, sin, bias, kv, cache, training);
        }
        if (cache != null) {
            cache.advance(t);
        }
        if (n > 0) {
            x = x.get(new NDIndex(":, {}:, :", lastVirtual ? n - 1 : n));
        }
        return norm.forward(ps, new NDList(x), training).singletonOrThrow();
    }

    /**
     * The forward pass of {@link #hidden} cut at the layer boundaries, with {@code head} after the
     * final norm; empty with virtual tokens or a key/value prefix attached (their positions and
     * masks are not cut yet). No cache: training and scoring only.
     */
    Optional<LayerSegments> segments(
            ParameterStore ps,
            NDArray ids,
            NDArray mask,
            boolean training,
            UnaryOperator<NDArray> head) {
        if (virtualTokens != null || prefix != null) {
            return Optional.empty();
        }
        long b = ids.getShape().get(0);
        int t = Math.toIntExact(ids.getShape().get(1));
        if (mask != null && !mask.getShape().equals(ids.getShape())) {
            throw new IllegalArgumentException(
                    "attention mask of shape "
                            + mask.getShape()
                            + " for ids of shape "
                            + ids.getShape());
        }
        Device device = ids.getDevice();
        NDManager manager = ids.getManager();
        float[][] cs = LlamaRope.cosSin(config, 0, t);
        Shape table = new Shape(1, 1, t, config.headDim());
        NDArray cos = rotary(manager, cs[0], table, device);
        NDArray sin = rotary(manager, cs[1], table, device);
        NDArray full = attentionBias(manager, 0, t, mask, 0).toDevice(device, false);
        NDArray sliding =
                config.slidingWindow() > 0
                        ? attentionBias(manager, 0, t, mask, config.slidingWindow())
                                .toDevice(device, false)
                        : full;
        return Optional.of(
                new LayerSegments() {
                    @Override
                    public NDArray embed() {
                        return Embedding.embedding(
                                        ids,
                                        ps.getValue(embedTokens, device, training),
                                        SparseFormat.DENSE)
                                .singletonOrThrow();
                    }

                    @Override
                    public boolean embeddingTrains() {
                        return embedTokens.requiresGradient();
                    }

                    @Override
                    public int layers() {
                        return layers.size();
                    }

                    @Override
                    public NDArray layer(int i, NDArray x) {
                        NDArray bias = config.sliding(i) ? sliding : full;
                        return layers.get(i).forward(ps, x, cos, sin, bias, null, null, training);
                    }

                    @Override
                    public NDArray output(NDArray x) {
                        return head.apply(
                                norm.forward(ps, new NDList(x), training).singletonOrThrow());
                    }
                });
    }

    /**
     * A rotary table in libtorch's own memory on {@code device}. Autograd saves it ({@code x * cos
     * + rotate(x) * sin}), and an array made from Java data aliases a buffer the garbage collector
     * may free once the array is closed: a model without segments runs its forward pass in a
     * manager closed before backward (the trainers' whole path), and under collection pressure
     * backward then read freed memory (NaN gradients in {@code MemoryPressureTest}).
     */
    private static NDArray rotary(NDManager manager, float[] values, Shape shape, Device device) {
        try (NDArray fromJava = manager.create(values, shape)) {
            // A move to another device copies; on the same one, an explicit copy.
            return fromJava.getDevice().equals(device)
                    ? fromJava.duplicate()
                    : fromJava.toDevice(device, false);
        }
    }

    /**
     * The additive attention mask (1 or B, 1, T, past + T): 0 where query {@code past + i} may see
     * key {@code j} ({@code j <= past + i}, within the window when {@code window > 0}, not
     * padding), float32's lowest value elsewhere ({@code torch.finfo(float32).min}, as HF's eager
     * masks).
     */
    static NDArray attentionBias(
            NDManager manager, long past, int t, NDArray paddingMask, int window) {
        long s = past + t;
        NDArray queries = manager.arange((float) past, (float) s, 1f).reshape(t, 1);
        NDArray keys = manager.arange(0f, (float) s, 1f).reshape(1, s);
        NDArray allowed = keys.lte(queries);
        if (window > 0) {
            allowed = allowed.logicalAnd(queries.sub(keys).lt((float) window));
        }
        allowed = allowed.reshape(1, 1, t, s);
        if (paddingMask != null) {
            long b = paddingMask.getShape().get(0);
            NDArray real =
                    paddingMask
                            .toType(DataType.FLOAT32, false)
                            .gt(0f)
                            .reshape(b, 1, 1, s)
                            .toDevice(manager.getDevice(), false);
            allowed = allowed.logicalAnd(real);
        }
        return allowed.toType(DataType.FLOAT32, false).sub(1f).mul(Float.MAX_VALUE);
    }

    @Override
    protected NDList forwardInternal(
            ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        return new NDList(
                hidden(
                        ps,
                        inputs.get(0),
                        inputs.size() > 1 ? inputs.get(1) : null,
                        null,
                        training));
    }

    @Override
    protected void initializeChildBlocks(
            NDManager manager, DataType dataType, Shape... inputShapes) {
        for (LlamaLayer layer : layers) {
            layer.initialize(manager, dataType, new Shape(-1, -1, config.hiddenSize()));
            layer.freezeAbsentBiases();
        }
        norm.initialize(manager, dataType, new Shape(-1, config.hiddenSize()));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        Shape ids = inputShapes[0];
        return new Shape[] {new Shape(ids.get(0), ids.get(1), config.hiddenSize())};
    }
}
