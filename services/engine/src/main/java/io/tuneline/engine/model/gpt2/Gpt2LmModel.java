package io.tuneline.engine.model.gpt2;

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
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import ai.djl.training.initializer.NormalInitializer;
import ai.djl.util.PairList;
import io.tuneline.engine.model.CausalLanguageModel;
import io.tuneline.engine.model.KvPrefix;
import io.tuneline.engine.model.LayerSegments;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.nn.LayerNormBlock;
import io.tuneline.engine.nn.ResidualTap;
import io.tuneline.engine.nn.TrainingDropout;
import io.tuneline.engine.nn.VirtualTokens;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A GPT-2 decoder with its language-model head ({@code GPT2LMHeadModel}) built from DJL blocks,
 * every parameter reachable under its Hugging Face name ({@code
 * transformer.h.0.attn.c_attn.weight}) so it can be loaded, frozen or wrapped with LoRA.
 *
 * <p>Inputs: token ids (B, T) and optionally an attention mask (B, T) with 1 for tokens and 0 for
 * padding, and optionally position ids (B, T). Every position attends to itself and earlier
 * positions only (the causal triangle); the mask additionally hides padded keys. Without position
 * ids positions are 0..T-1 whatever the mask says, as in Hugging Face's forward pass without {@code
 * position_ids}, so pad on the right; with them (a batch padded on the left) each row's own.
 * Output: logits (B, T, vocab). The head has no weight of its own: it is {@code wte} (tied), as in
 * every published GPT-2.
 *
 * <p>Projection weights are held as (out, in), PyTorch's {@code nn.Linear} layout, while the
 * checkpoints store GPT-2's {@code Conv1D} weights as (in, out): {@link Gpt2Checkpoint} transposes
 * on load and on save, and {@link #namedParameters()} hands out the (out, in) arrays.
 *
 * <p>With virtual tokens attached ({@link #attachVirtualTokens}: prompt tuning, P-tuning) they take
 * positions 0 .. N - 1 before the real tokens and the logits are still (B, T, vocab), the real
 * tokens'; {@link #maxPositions()} is then {@code n_positions - N}.
 */
public final class Gpt2LmModel extends AbstractBlock implements CausalLanguageModel {
    /** Layer {@code i}'s module path is this prefix followed by {@code i}. */
    public static final String LAYER_PREFIX = "transformer.h.";

    /** Hidden positions get this added to their attention scores: exp() of it is 0 in float32. */
    static final float MASKED = -1e9f;

    private final Gpt2Config config;
    private final Parameter wte;
    private final Parameter wpe;
    private final List<Gpt2Layer> layers = new ArrayList<>();
    private final LayerNormBlock lnF;
    private VirtualTokens virtualTokens;
    private KvPrefix prefix;

    public Gpt2LmModel(Gpt2Config config) {
        this.config = config;
        int h = config.hiddenSize();
        wte = addParameter(embedding("wte", config.vocabSize(), h));
        wpe = addParameter(embedding("wpe", config.maxPositions(), h));
        for (int i = 0; i < config.layers(); i++) {
            layers.add(addChildBlock("h_" + i, new Gpt2Layer(config)));
        }
        lnF = addChildBlock("ln_f", new LayerNormBlock(h, config.layerNormEps()));
    }

    private static Parameter embedding(String name, int rows, int hidden) {
        return Parameter.builder()
                .setName(name)
                .setType(Parameter.Type.WEIGHT)
                .optShape(new Shape(rows, hidden))
                // GPT-2's initializer_range.
                .optInitializer(new NormalInitializer(0.02f))
                .build();
    }

    public Gpt2Config config() {
        return config;
    }

    /** The token embedding, which is also the LM head's weight. */
    @Override
    public Parameter tokenEmbedding() {
        return wte;
    }

    /**
     * Every parameter under its Hugging Face name ({@code transformer.wte.weight}, {@code
     * transformer.h.0.attn.c_attn.weight}, LoRA as {@code ...c_attn.lora_A.weight}). The tied
     * {@code lm_head.weight} is not listed, as PyTorch's {@code named_parameters()} does not list
     * it. Projection weights are (out, in): transposed relative to the checkpoint.
     */
    @Override
    public Map<String, Parameter> namedParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>();
        p.put("transformer.wte.weight", wte);
        p.put("transformer.wpe.weight", wpe);
        for (int i = 0; i < layers.size(); i++) {
            String prefix = LAYER_PREFIX + i + ".";
            layers.get(i).namedParameters().forEach((name, param) -> p.put(prefix + name, param));
        }
        p.put("transformer.ln_f.weight", lnF.weight());
        p.put("transformer.ln_f.bias", lnF.bias());
        p.putAll(methodParameters());
        return Collections.unmodifiableMap(p);
    }

    @Override
    public KvPrefix.Sizes kvPrefixSizes() {
        return new KvPrefix.Sizes(
                config.layers(), config.heads(), config.hiddenSize() / config.heads());
    }

    @Override
    public void attachKvPrefix(KvPrefix p) {
        if (prefix != null) {
            throw new IllegalStateException("the model has a key/value prefix already");
        }
        prefix = p;
    }

    @Override
    public Optional<KvPrefix> kvPrefix() {
        return Optional.ofNullable(prefix);
    }

    /**
     * The residual taps by the {@code adapters} library's module path ({@code
     * transformer.h.0.attention_adapters}, {@code transformer.h.0.output_adapters}).
     */
    @Override
    public Map<String, ResidualTap> residualTaps() {
        Map<String, ResidualTap> m = new LinkedHashMap<>();
        for (int i = 0; i < layers.size(); i++) {
            String prefix = LAYER_PREFIX + i + ".";
            layers.get(i).residualTaps().forEach((name, tap) -> m.put(prefix + name, tap));
        }
        return Collections.unmodifiableMap(m);
    }

    /**
     * The projections (GPT-2's {@code Conv1D} modules) by Hugging Face module path ({@code
     * transformer.h.0.attn.c_attn}), layer by layer.
     */
    @Override
    public Map<String, Dense> linears() {
        Map<String, Dense> m = new LinkedHashMap<>();
        for (int i = 0; i < layers.size(); i++) {
            String prefix = LAYER_PREFIX + i + ".";
            layers.get(i).linears().forEach((name, d) -> m.put(prefix + name, d));
        }
        return Collections.unmodifiableMap(m);
    }

    /** None: the LM head is {@code wte} itself. */
    @Override
    public List<String> headModules() {
        return List.of();
    }

    /**
     * Whether a forward pass takes position ids (a third input, (B, T)): no virtual tokens and no
     * key/value prefix attached, whose positions come first.
     */
    public boolean takesPositionIds() {
        return virtualTokens == null && prefix == null;
    }

    /**
     * The final LayerNorm; the head is tied to {@code wte}, which trains with the embeddings when
     * asked.
     */
    @Override
    public List<String> outputModules() {
        return List.of("transformer.ln_f");
    }

    @Override
    public List<String> embeddingModules() {
        return List.of("transformer.wte", "transformer.wpe");
    }

    @Override
    public String layerPrefix() {
        return LAYER_PREFIX;
    }

    @Override
    public int layerCount() {
        return config.layers();
    }

    @Override
    public List<String> defaultLoraTargets() {
        return io.tuneline.engine.method.LoraDefaults.GPT2;
    }

    /**
     * {@code n_positions}, less the N virtual tokens a method attached: prompt tuning's and
     * P-tuning's take the first N learned positions, and under a key/value prefix the real tokens
     * sit at positions N.. (GPT2Model counts positions from {@code past_length}); training and
     * evaluation cut real sequences N tokens shorter.
     */
    @Override
    public int maxPositions() {
        return config.maxPositions()
                - (virtualTokens == null ? 0 : virtualTokens.count())
                - (prefix == null ? 0 : prefix.virtualTokens());
    }

    @Override
    public int hiddenSize() {
        return config.hiddenSize();
    }

    @Override
    public int attentionHeads() {
        return config.heads();
    }

    @Override
    public void attachVirtualTokens(VirtualTokens tokens) {
        if (virtualTokens != null) {
            throw new IllegalStateException("the model has virtual tokens already");
        }
        if (tokens.count() >= config.maxPositions()) {
            throw new IllegalArgumentException(
                    tokens.count()
                            + " virtual tokens leave no room in the model's "
                            + config.maxPositions()
                            + " positions (n_positions)");
        }
        virtualTokens = tokens;
    }

    @Override
    public Optional<VirtualTokens> virtualTokens() {
        return Optional.ofNullable(virtualTokens);
    }

    @Override
    public Map<String, Parameter> methodParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>();
        if (virtualTokens != null) {
            p.putAll(virtualTokens.namedParameters());
        }
        if (prefix != null) {
            p.putAll(prefix.namedParameters());
        }
        p.putAll(ResidualTap.parameters(residualTaps()));
        return p;
    }

    @Override
    public int vocabSize() {
        return config.vocabSize();
    }

    /** GPT-2's projections are {@code Conv1D}, (in, out) in the file: PEFT sets it true. */
    @Override
    public boolean peftFanInFanOut() {
        return true;
    }

    /**
     * The additive mask of the attention scores: 0 where a query may look, {@link #MASKED} above
     * the diagonal and, with a padding mask, on padded keys. Shape (1 or B, 1, T, T).
     */
    static NDArray attentionBias(NDManager manager, long t, NDArray paddingMask) {
        float[] causal = new float[(int) (t * t)];
        for (int i = 0; i < t; i++) {
            for (int j = i + 1; j < t; j++) {
                causal[(int) (i * t + j)] = MASKED;
            }
        }
        NDArray bias = manager.create(causal, new Shape(1, 1, t, t));
        if (paddingMask == null) {
            return bias;
        }
        long b = paddingMask.getShape().get(0);
        NDArray padding =
                paddingMask
                        .toType(DataType.FLOAT32, false)
                        .sub(1f)
                        .mul(-MASKED)
                        .reshape(b, 1, 1, t);
        return bias.add(padding);
    }

    @Override
    protected NDList forwardInternal(
            ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        NDArray ids = inputs.get(0);
        long b = ids.getShape().get(0);
        long real = ids.getShape().get(1);
        // Virtual tokens (prompt tuning, P-tuning) come first, as PEFT passes inputs_embeds of
        // length N + T: they take positions 0 .. N - 1 and N ones in front of the mask.
        long n = virtualTokens == null ? 0 : virtualTokens.count();
        long t = n + real;
        // Under a key/value prefix of P virtual tokens the real tokens sit at positions P..
        int p = prefix == null ? 0 : prefix.virtualTokens();
        if (p + t > config.maxPositions()) {
            throw new IllegalArgumentException(
                    "sequence of "
                            + real
                            + " tokens"
                            + (n > 0 ? " after " + n + " virtual tokens" : "")
                            + " is longer than the model's "
                            + config.maxPositions()
                            + " positions (n_positions)"
                            + (p > 0 ? " less the prefix's " + p + " virtual tokens" : ""));
        }
        var device = ids.getDevice();
        NDArray tokenEmbedding = ps.getValue(wte, device, training);
        NDArray x = Embedding.embedding(ids, tokenEmbedding, SparseFormat.DENSE).singletonOrThrow();
        NDArray mask = inputs.size() > 1 ? inputs.get(1) : null;
        if (n > 0) {
            NDArray prompt = virtualTokens.forBatch(ps, device, training, b, ids.getManager());
            x = prompt.concat(x, 1);
            if (mask != null) {
                mask =
                        mask.getManager()
                                .ones(new Shape(b, n), DataType.FLOAT32, device)
                                .concat(mask.toType(DataType.FLOAT32, false), 1);
            }
        }
        NDArray positions;
        if (inputs.size() > 2) {
            // Position ids per row (B, T): a batch padded on the left numbers each row from its
            // first real token, as transformers does from the attention mask when it generates.
            if (n > 0 || p > 0) {
                throw new IllegalArgumentException(
                        "position ids are not supported with virtual tokens or a key/value prefix"
                                + " attached");
            }
            positions =
                    Embedding.embedding(
                                    inputs.get(2),
                                    ps.getValue(wpe, device, training),
                                    SparseFormat.DENSE)
                            .singletonOrThrow();
        } else {
            positions = ps.getValue(wpe, device, training).get(new NDIndex(p + ":" + (p + t)));
            // The slice would otherwise stay in the model's manager after every forward pass.
            positions.attach(ids.getManager());
        }
        x = x.add(positions);
        // GPT2Model.drop: dropout on the summed embeddings at embd_pdrop.
        x = TrainingDropout.apply(x, config.embdPdrop(), training);
        NDArray bias = attentionBias(ids.getManager(), t, mask).toDevice(device, false);
        if (prefix != null) {
            bias = prefixed(bias, p);
            List<NDArray[]> kv = prefix.keysAndValues(ps, b, device, training);
            for (int i = 0; i < layers.size(); i++) {
                NDList in = new NDList(x, bias, kv.get(i)[0], kv.get(i)[1]);
                x = layers.get(i).forward(ps, in, training).singletonOrThrow();
            }
        } else {
            for (Gpt2Layer layer : layers) {
                x = layer.forward(ps, new NDList(x, bias), training).singletonOrThrow();
            }
        }
        long kept = real;
        if (n > 0) {
            // The output keeps the real tokens: logits (B, T, vocab), as without virtual tokens;
            // the loss PEFT computes needs the last virtual token's too.
            long from = params != null && params.contains(WITH_LAST_VIRTUAL_TOKEN) ? n - 1 : n;
            x = x.get(new NDIndex(":, {}:, :", from));
            kept = t - from;
        }
        NDArray h =
                lnF.forward(ps, new NDList(x.reshape(b * kept, config.hiddenSize())), training)
                        .singletonOrThrow();
        // The LM head is wte itself: logits = h wte^T.
        NDArray logits = Linear.linear(h, tokenEmbedding).singletonOrThrow();
        return new NDList(logits.reshape(b, kept, config.vocabSize()));
    }

    /**
     * {@link #forwardInternal} cut at the layer boundaries: the summed embeddings with GPT-2's
     * {@code embd_pdrop} dropout, each block on its own, then {@code ln_f} and the tied head. The
     * mask is made once. Empty with virtual tokens or a key/value prefix attached (their positions
     * and masks are not cut).
     */
    @Override
    public Optional<LayerSegments> segments(
            ParameterStore ps, NDArray ids, NDArray mask, boolean training) {
        if (virtualTokens != null || prefix != null) {
            return Optional.empty();
        }
        long b = ids.getShape().get(0);
        long t = ids.getShape().get(1);
        if (t > config.maxPositions()) {
            throw new IllegalArgumentException(
                    "sequence of "
                            + t
                            + " tokens is longer than the model's "
                            + config.maxPositions()
                            + " positions (n_positions)");
        }
        var device = ids.getDevice();
        NDArray bias = attentionBias(ids.getManager(), t, mask).toDevice(device, false);
        return Optional.of(
                new LayerSegments() {
                    @Override
                    public NDArray embed() {
                        NDArray x =
                                Embedding.embedding(
                                                ids,
                                                ps.getValue(wte, device, training),
                                                SparseFormat.DENSE)
                                        .singletonOrThrow();
                        NDArray positions =
                                ps.getValue(wpe, device, training).get(new NDIndex("0:" + t));
                        positions.attach(ids.getManager());
                        return TrainingDropout.apply(
                                x.add(positions), config.embdPdrop(), training);
                    }

                    @Override
                    public boolean embeddingTrains() {
                        return wte.requiresGradient() || wpe.requiresGradient();
                    }

                    @Override
                    public int layers() {
                        return layers.size();
                    }

                    @Override
                    public NDArray layer(int i, NDArray x) {
                        return layers.get(i)
                                .forward(ps, new NDList(x, bias), training)
                                .singletonOrThrow();
                    }

                    @Override
                    public NDArray output(NDArray x) {
                        NDArray h =
                                lnF.forward(
                                                ps,
                                                new NDList(x.reshape(b * t, config.hiddenSize())),
                                                training)
                                        .singletonOrThrow();
                        NDArray logits =
                                Linear.linear(h, ps.getValue(wte, device, training))
                                        .singletonOrThrow();
                        return logits.reshape(b, t, config.vocabSize());
                    }
                });
    }

    /**
     * The mask (1 or B, 1, T, N + T) under a prefix of {@code n} virtual tokens: {@code n} open
     * columns in front of the causal and padding mask (PEFT prepends N ones to the attention mask,
     * and every query lies after the cached prefix).
     */
    private static NDArray prefixed(NDArray bias, int n) {
        Shape s = bias.getShape();
        NDArray open =
                bias.getManager()
                        .zeros(new Shape(s.get(0), 1, s.get(2), n), DataType.FLOAT32)
                        .toDevice(bias.getDevice(), false);
        return NDArrays.concat(new NDList(open, bias), 3);
    }

    @Override
    protected void initializeChildBlocks(
            NDManager manager, DataType dataType, Shape... inputShapes) {
        for (Gpt2Layer layer : layers) {
            layer.initialize(manager, dataType, new Shape(-1, -1, config.hiddenSize()));
        }
        lnF.initialize(manager, dataType, new Shape(-1, config.hiddenSize()));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        Shape ids = inputShapes[0];
        return new Shape[] {new Shape(ids.get(0), ids.get(1), config.vocabSize())};
    }
}
