package io.tuneline.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.norm.Dropout;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.nn.ResidualTap;
import io.tuneline.engine.nn.VirtualTokens;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * An encoder with a classification head over its mean-pooled token states (masked mean, the pooling
 * all-MiniLM-L6-v2 was trained with). Inputs: ids (B, T), mask (B, T), and optionally a word
 * embedding perturbation (B, T, H) passed to the encoder. Output: logits (B, labels).
 */
public final class SequenceClassifier extends AbstractBlock implements TunableModel {
    /** The head's module name, as Hugging Face's {@code BertForSequenceClassification} names it. */
    public static final String HEAD = "classifier";

    private final BertEncoder encoder;
    private final Dense head;
    private final float dropout;

    public SequenceClassifier(BertEncoder encoder, int labels, float dropout) {
        this.encoder = addChildBlock("encoder", encoder);
        this.head = addChildBlock(HEAD, new Dense(encoder.config().hiddenSize(), labels));
        this.dropout = dropout;
    }

    public BertEncoder encoder() {
        return encoder;
    }

    public Dense head() {
        return head;
    }

    /** Every parameter under its Hugging Face name, the head as {@code classifier.*}. */
    @Override
    public Map<String, Parameter> namedParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>(encoder.namedParameters());
        head.namedParameters().forEach((name, param) -> p.put(HEAD + "." + name, param));
        p.putAll(methodParameters());
        return p;
    }

    @Override
    public KvPrefix.Sizes kvPrefixSizes() {
        return encoder.kvPrefixSizes();
    }

    /** The encoder prepends it; mean pooling still reads the real tokens only. */
    @Override
    public void attachKvPrefix(KvPrefix prefix) {
        encoder.attachKvPrefix(prefix);
    }

    @Override
    public Optional<KvPrefix> kvPrefix() {
        return encoder.kvPrefix();
    }

    @Override
    public Map<String, Dense> linears() {
        return encoder.linears();
    }

    /**
     * The longest real sequence the encoder takes: its positions, less the N virtual tokens a
     * method attached (prompt tuning's and P-tuning's take the first N positions; under a key/value
     * prefix the real tokens sit at positions N..). The trainer cuts inputs there.
     */
    public int maxSequenceLength() {
        return encoder.config().maxSequenceLength()
                - encoder.virtualTokens().map(VirtualTokens::count).orElse(0)
                - encoder.kvPrefix().map(KvPrefix::virtualTokens).orElse(0);
    }

    @Override
    public int hiddenSize() {
        return encoder.config().hiddenSize();
    }

    @Override
    public int attentionHeads() {
        return encoder.config().heads();
    }

    @Override
    public Parameter tokenEmbedding() {
        return encoder.wordEmbeddings();
    }

    /** Virtual tokens go before the words; the mean pooling reads the real tokens only. */
    @Override
    public void attachVirtualTokens(VirtualTokens tokens) {
        encoder.attachVirtualTokens(tokens);
    }

    @Override
    public Optional<VirtualTokens> virtualTokens() {
        return encoder.virtualTokens();
    }

    @Override
    public Map<String, Parameter> methodParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>();
        encoder.virtualTokens().ifPresent(v -> p.putAll(v.namedParameters()));
        encoder.kvPrefix().ifPresent(k -> p.putAll(k.namedParameters()));
        p.putAll(ResidualTap.parameters(residualTaps()));
        return p;
    }

    @Override
    public Map<String, ResidualTap> residualTaps() {
        return encoder.residualTaps();
    }

    @Override
    public List<String> headModules() {
        return List.of(HEAD);
    }

    /** BERT has no final norm: the head reads the last layer's output directly. */
    @Override
    public List<String> outputModules() {
        return List.of(HEAD);
    }

    @Override
    public List<String> embeddingModules() {
        return List.of("embeddings");
    }

    @Override
    public String layerPrefix() {
        return BertEncoder.LAYER_PREFIX;
    }

    @Override
    public int layerCount() {
        return encoder.config().layers();
    }

    @Override
    public List<String> defaultLoraTargets() {
        return List.of("query", "value");
    }

    static NDArray meanPool(NDArray hidden, NDArray mask) {
        NDArray m = mask.toType(DataType.FLOAT32, false).expandDims(2);
        return hidden.mul(m).sum(new int[] {1}).div(m.sum(new int[] {1}).maximum(1e-9f));
    }

    @Override
    protected NDList forwardInternal(
            ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        NDArray hidden = encoder.forward(ps, inputs, training).singletonOrThrow();
        NDArray pooled = meanPool(hidden, inputs.get(1));
        if (training && dropout > 0) {
            pooled = Dropout.dropout(pooled, dropout, true).singletonOrThrow();
        }
        return head.forward(ps, new NDList(pooled), training);
    }

    @Override
    protected void initializeChildBlocks(
            NDManager manager, DataType dataType, Shape... inputShapes) {
        encoder.initialize(manager, dataType, inputShapes);
        head.initialize(manager, dataType, new Shape(-1, encoder.config().hiddenSize()));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        return new Shape[] {new Shape(inputShapes[0].get(0), head.out())};
    }
}
