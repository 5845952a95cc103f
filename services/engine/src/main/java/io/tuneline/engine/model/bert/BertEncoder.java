package io.tuneline.engine.model.bert;

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
import java.util.function.UnaryOperator;

/**
 * A BERT-family encoder (BERT, MiniLM, and RoBERTa's layout) built from DJL blocks, every parameter
 * reachable under its Hugging Face name so it can be loaded, frozen or wrapped.
 *
 * <p>Inputs: token ids (B, T) and attention mask (B, T) with 1 for tokens, 0 for padding; token
 * type ids are taken as 0 (single-sentence tasks); optionally a third input (B, T, H) added to the
 * word embeddings, for embedding-space attacks. Output: last hidden states (B, T, H).
 *
 * <p>With virtual tokens attached ({@link #attachVirtualTokens}: prompt tuning, P-tuning) the
 * encoder runs on N + T embeddings (positions 0 .. N + T - 1, token type 0, the mask widened by N
 * ones) and still returns the T real tokens' states, or all N + T when the forward pass's
 * parameters hold {@link #WITH_VIRTUAL_TOKENS}.
 */
public final class BertEncoder extends AbstractBlock {
    /** Masked positions get this added to their attention scores: exp() of it is 0 in float32. */
    private static final float MASKED = -1e9f;

    /** Layer {@code i}'s module path is this prefix followed by {@code i}. */
    public static final String LAYER_PREFIX = "encoder.layer.";

    /**
     * A forward-pass parameter (any value) asking for the states of the virtual tokens too, (B, N +
     * T, H): what transformers' heads read when PEFT passes the prompt as {@code inputs_embeds}.
     */
    public static final String WITH_VIRTUAL_TOKENS = "with_virtual_tokens";

    private final BertConfig config;
    private final Parameter wordEmbeddings;
    private final Parameter positionEmbeddings;
    private final Parameter tokenTypeEmbeddings;
    private final LayerNormBlock embeddingNorm;
    private final List<BertLayer> layers = new ArrayList<>();
    private VirtualTokens virtualTokens;
    private KvPrefix prefix;

    public BertEncoder(BertConfig config) {
        this.config = config;
        int h = config.hiddenSize();
        wordEmbeddings = addParameter(embedding("word_embeddings", config.vocabSize(), h));
        positionEmbeddings =
                addParameter(embedding("position_embeddings", config.maxPositions(), h));
        tokenTypeEmbeddings =
                addParameter(embedding("token_type_embeddings", config.typeVocabSize(), h));
        embeddingNorm =
                addChildBlock("embeddings_norm", new LayerNormBlock(h, config.layerNormEps()));
        for (int i = 0; i < config.layers(); i++) {
            layers.add(addChildBlock("layer_" + i, new BertLayer(config)));
        }
    }

    private static Parameter embedding(String name, int rows, int hidden) {
        return Parameter.builder()
                .setName(name)
                .setType(Parameter.Type.WEIGHT)
                .optShape(new Shape(rows, hidden))
                .optInitializer(new NormalInitializer(0.02f))
                .build();
    }

    public BertConfig config() {
        return config;
    }

    /** The word embedding (vocab, hidden). */
    public Parameter wordEmbeddings() {
        return wordEmbeddings;
    }

    /**
     * Prepends {@code tokens} to the word embeddings from now on (prompt tuning, P-tuning): see
     * {@link VirtualTokens}; the encoder's output keeps the real tokens only, unless asked for all
     * ({@link #WITH_VIRTUAL_TOKENS}).
     */
    public void attachVirtualTokens(VirtualTokens tokens) {
        if (virtualTokens != null) {
            throw new IllegalStateException("the encoder has virtual tokens already");
        }
        virtualTokens = tokens;
    }

    public Optional<VirtualTokens> virtualTokens() {
        return Optional.ofNullable(virtualTokens);
    }

    /** Layers, key/value heads and head_dim of the prefixes this encoder's attention takes. */
    public KvPrefix.Sizes kvPrefixSizes() {
        return new KvPrefix.Sizes(
                config.layers(), config.heads(), config.hiddenSize() / config.heads());
    }

    /** Every layer prepends {@code p}'s keys and values from the next forward pass on. */
    public void attachKvPrefix(KvPrefix p) {
        if (prefix != null) {
            throw new IllegalStateException("the encoder has a key/value prefix already");
        }
        prefix = p;
    }

    public Optional<KvPrefix> kvPrefix() {
        return Optional.ofNullable(prefix);
    }

    /**
     * Every parameter under its Hugging Face name ({@code
     * encoder.layer.0.attention.self.query.weight}).
     */
    public Map<String, Parameter> namedParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>();
        p.put("embeddings.word_embeddings.weight", wordEmbeddings);
        p.put("embeddings.position_embeddings.weight", positionEmbeddings);
        p.put("embeddings.token_type_embeddings.weight", tokenTypeEmbeddings);
        p.put("embeddings.LayerNorm.weight", embeddingNorm.weight());
        p.put("embeddings.LayerNorm.bias", embeddingNorm.bias());
        for (int i = 0; i < layers.size(); i++) {
            String prefix = LAYER_PREFIX + i + ".";
            layers.get(i).namedParameters().forEach((name, param) -> p.put(prefix + name, param));
        }
        if (virtualTokens != null) {
            p.putAll(virtualTokens.namedParameters());
        }
        return Collections.unmodifiableMap(p);
    }

    /**
     * The residual taps by the {@code adapters} library's module path ({@code
     * encoder.layer.0.attention.output}, {@code encoder.layer.0.output}), layer by layer.
     */
    public Map<String, ResidualTap> residualTaps() {
        Map<String, ResidualTap> m = new LinkedHashMap<>();
        for (int i = 0; i < layers.size(); i++) {
            String prefix = LAYER_PREFIX + i + ".";
            layers.get(i).residualTaps().forEach((name, tap) -> m.put(prefix + name, tap));
        }
        return Collections.unmodifiableMap(m);
    }

    /**
     * The linear layers by Hugging Face module path ({@code encoder.layer.0.attention.self.query},
     * {@code encoder.layer.0.intermediate.dense}, ...), layer by layer.
     */
    public Map<String, Dense> linears() {
        Map<String, Dense> m = new LinkedHashMap<>();
        for (int i = 0; i < layers.size(); i++) {
            String prefix = LAYER_PREFIX + i + ".";
            layers.get(i).linears().forEach((name, d) -> m.put(prefix + name, d));
        }
        return Collections.unmodifiableMap(m);
    }

    /**
     * {@link #forwardInternal} cut at the layer boundaries (ids and mask, no perturbation): the
     * embeddings with their LayerNorm and dropout, each layer on its own, then {@code above} (a
     * task head) over the last layer's states (B, T, H). The additive mask is made once. Empty with
     * virtual tokens or a key/value prefix attached (their positions and masks are not cut).
     */
    public Optional<LayerSegments> segments(
            ParameterStore ps,
            NDArray ids,
            NDArray mask,
            boolean training,
            UnaryOperator<NDArray> above) {
        if (virtualTokens != null || prefix != null) {
            return Optional.empty();
        }
        long t = ids.getShape().get(1);
        if (t > config.maxSequenceLength()) {
            throw new IllegalArgumentException(
                    "sequence of "
                            + t
                            + " tokens is longer than the model's "
                            + config.maxSequenceLength()
                            + " positions");
        }
        var device = ids.getDevice();
        NDArray additive = mask == null ? null : additiveMask(mask.toType(DataType.FLOAT32, false));
        return Optional.of(
                new LayerSegments() {
                    @Override
                    public NDArray embed() {
                        long offset = config.positionOffset();
                        NDArray x =
                                Embedding.embedding(
                                                ids,
                                                ps.getValue(wordEmbeddings, device, training),
                                                SparseFormat.DENSE)
                                        .singletonOrThrow();
                        NDArray positions =
                                ps.getValue(positionEmbeddings, device, training)
                                        .get(new NDIndex("{}:{}", offset, offset + t));
                        NDArray tokenType =
                                ps.getValue(tokenTypeEmbeddings, device, training).get(0);
                        positions.attach(ids.getManager());
                        tokenType.attach(ids.getManager());
                        x = x.add(positions).add(tokenType);
                        x = embeddingNorm.forward(ps, new NDList(x), training).singletonOrThrow();
                        return TrainingDropout.apply(x, config.hiddenDropout(), training);
                    }

                    @Override
                    public boolean embeddingTrains() {
                        return wordEmbeddings.requiresGradient()
                                || positionEmbeddings.requiresGradient()
                                || tokenTypeEmbeddings.requiresGradient()
                                || embeddingNorm.weight().requiresGradient()
                                || embeddingNorm.bias().requiresGradient();
                    }

                    @Override
                    public int layers() {
                        return layers.size();
                    }

                    @Override
                    public NDArray layer(int i, NDArray x) {
                        NDList in = additive == null ? new NDList(x) : new NDList(x, additive);
                        return layers.get(i).forward(ps, in, training).singletonOrThrow();
                    }

                    @Override
                    public NDArray output(NDArray x) {
                        return above.apply(x);
                    }
                });
    }

    @Override
    protected NDList forwardInternal(
            ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        NDArray ids = inputs.get(0);
        long b = ids.getShape().get(0);
        long real = ids.getShape().get(1);
        // Virtual tokens (prompt tuning, P-tuning) come first, as PEFT passes inputs_embeds of
        // length N + T: positions 0 .. N + T - 1, token type 0, N ones in front of the mask.
        long n = virtualTokens == null ? 0 : virtualTokens.count();
        long t = n + real;
        // Under a key/value prefix of P virtual tokens the real tokens sit at positions P..
        // (BertEmbeddings slices position_ids from past_key_values_length).
        int p = prefix == null ? 0 : prefix.virtualTokens();
        if (p + t > config.maxSequenceLength()) {
            throw new IllegalArgumentException(
                    "sequence of "
                            + real
                            + " tokens"
                            + (n > 0 ? " after " + n + " virtual tokens" : "")
                            + " is longer than the model's "
                            + config.maxSequenceLength()
                            + " positions"
                            + (p > 0 ? " less the prefix's " + p + " virtual tokens" : ""));
        }
        var device = ids.getDevice();
        // RoBERTa's first position row is pad_token_id + 1; right padding keeps every real token
        // at the position Hugging Face gives it (padded positions are masked out).
        long offset = config.positionOffset() + p;
        NDArray x =
                Embedding.embedding(
                                ids,
                                ps.getValue(wordEmbeddings, device, training),
                                SparseFormat.DENSE)
                        .singletonOrThrow();
        if (inputs.size() > 2) {
            // A perturbation of the word embeddings (B, T, H): what an embedding-space attack
            // (FGSM, PGD) moves along the loss gradient.
            x = x.add(inputs.get(2));
        }
        if (n > 0) {
            NDArray prompt = virtualTokens.forBatch(ps, device, training, b, ids.getManager());
            x = prompt.concat(x, 1);
        }
        NDArray positions =
                ps.getValue(positionEmbeddings, device, training)
                        .get(new NDIndex("{}:{}", offset, offset + t));
        NDArray tokenType = ps.getValue(tokenTypeEmbeddings, device, training).get(0);
        // Slices would otherwise stay in the model's manager after every forward pass.
        positions.attach(ids.getManager());
        tokenType.attach(ids.getManager());
        x = x.add(positions).add(tokenType);
        x = embeddingNorm.forward(ps, new NDList(x), training).singletonOrThrow();
        // BertEmbeddings: LayerNorm, then dropout at hidden_dropout_prob.
        x = TrainingDropout.apply(x, config.hiddenDropout(), training);
        if (prefix != null) {
            // PEFT prepends N ones to the attention mask: every token sees every prefix.
            NDArray mask =
                    inputs.size() > 1
                            ? inputs.get(1).toType(DataType.FLOAT32, false)
                            : ids.getManager().ones(new Shape(b, t), DataType.FLOAT32, device);
            NDArray ones = mask.getManager().ones(new Shape(b, p), DataType.FLOAT32, device);
            NDArray additive = additiveMask(NDArrays.concat(new NDList(ones, mask), 1));
            List<NDArray[]> kv = prefix.keysAndValues(ps, b, device, training);
            for (int i = 0; i < layers.size(); i++) {
                NDList in = new NDList(x, additive, kv.get(i)[0], kv.get(i)[1]);
                x = layers.get(i).forward(ps, in, training).singletonOrThrow();
            }
            return new NDList(x);
        }
        NDList layerInputs;
        if (inputs.size() > 1) {
            NDArray mask = inputs.get(1).toType(DataType.FLOAT32, false);
            if (n > 0) {
                mask =
                        mask.getManager()
                                .ones(new Shape(b, n), DataType.FLOAT32, device)
                                .concat(mask, 1);
            }
            layerInputs = new NDList(x, additiveMask(mask));
        } else {
            layerInputs = new NDList(x);
        }
        for (BertLayer layer : layers) {
            NDArray out = layer.forward(ps, layerInputs, training).singletonOrThrow();
            layerInputs =
                    layerInputs.size() > 1 ? new NDList(out, layerInputs.get(1)) : new NDList(out);
        }
        NDArray hidden = layerInputs.get(0);
        boolean keepVirtual = params != null && params.contains(WITH_VIRTUAL_TOKENS);
        return new NDList(n > 0 && !keepVirtual ? hidden.get(new NDIndex(":, {}:, :", n)) : hidden);
    }

    /**
     * A float (B, S) mask, 1 for keys to attend to and 0 for padding, as the additive (B, 1, 1, S)
     * the attention scores take: 0 or {@link #MASKED}.
     */
    private static NDArray additiveMask(NDArray mask) {
        Shape s = mask.getShape();
        return mask.sub(1f).mul(-MASKED).reshape(s.get(0), 1, 1, s.get(1));
    }

    @Override
    protected void initializeChildBlocks(
            NDManager manager, DataType dataType, Shape... inputShapes) {
        embeddingNorm.initialize(manager, dataType, new Shape(-1, config.hiddenSize()));
        for (BertLayer layer : layers) {
            layer.initialize(manager, dataType, new Shape(-1, -1, config.hiddenSize()));
        }
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        Shape ids = inputShapes[0];
        return new Shape[] {new Shape(ids.get(0), ids.get(1), config.hiddenSize())};
    }
}
