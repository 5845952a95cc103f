package io.tuneline.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.nn.ResidualTap;
import io.tuneline.engine.nn.Scalars;
import io.tuneline.engine.nn.TrainingDropout;
import io.tuneline.engine.nn.VirtualTokens;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * An encoder with a classification head ({@link ClassifierHead}): a linear layer over the
 * mean-pooled token states (masked mean, the pooling all-MiniLM-L6-v2 was trained with), or Hugging
 * Face's head on the first token ({@code BertForSequenceClassification}: pooler, dropout, linear;
 * {@code RobertaForSequenceClassification}: {@code RobertaClassificationHead}). Inputs: ids (B, T),
 * mask (B, T), and optionally a word embedding perturbation (B, T, H) passed to the encoder.
 * Output: logits (B, labels).
 */
public final class SequenceClassifier extends AbstractBlock implements TunableModel {
    /** The head's module name, as Hugging Face's {@code BertForSequenceClassification} names it. */
    public static final String HEAD = "classifier";

    /** BERT's pooler ({@code BertModel.pooler}: dense + tanh on the first token). */
    public static final String POOLER = "pooler";

    private final BertEncoder encoder;
    private final ClassifierHead headType;
    // The dense + tanh on the first token: BERT's pooler.dense, or RoBERTa's classifier.dense.
    private final Dense firstTokenDense;
    private final Dense head;
    private final float dropout;

    /** The mean-pooling head ({@link ClassifierHead#MEAN}). */
    public SequenceClassifier(BertEncoder encoder, int labels, float dropout) {
        this(encoder, labels, dropout, ClassifierHead.MEAN);
    }

    /**
     * @param dropout the head's dropout rate in training; for {@link ClassifierHead#CLS_POOLER}
     *     Hugging Face uses {@code classifier_dropout}, else {@code hidden_dropout_prob}
     */
    public SequenceClassifier(
            BertEncoder encoder, int labels, float dropout, ClassifierHead headType) {
        int h = encoder.config().hiddenSize();
        this.encoder = addChildBlock("encoder", encoder);
        this.headType = headType;
        // Children are added (and initialised) in the order the Hugging Face model creates its
        // modules; the mean head's order is the one its runs were seeded with.
        this.firstTokenDense =
                headType == ClassifierHead.CLS_POOLER
                        ? addChildBlock(roberta() ? "classifier_dense" : POOLER, new Dense(h, h))
                        : null;
        this.head = addChildBlock(HEAD, new Dense(h, labels));
        this.dropout = dropout;
    }

    public ClassifierHead headType() {
        return headType;
    }

    /** Whether the head is RoBERTa's {@code RobertaClassificationHead} (no pooler). */
    private boolean roberta() {
        return encoder.config().modelType().equals(BertConfig.ROBERTA);
    }

    /**
     * BERT's pooler dense layer ({@code pooler.dense}), part of the base: present for {@link
     * ClassifierHead#CLS_POOLER} on a BERT encoder only.
     */
    public Optional<Dense> pooler() {
        return firstTokenDense != null && !roberta()
                ? Optional.of(firstTokenDense)
                : Optional.empty();
    }

    /** The dropout rate of the head while training. */
    public float dropout() {
        return dropout;
    }

    public BertEncoder encoder() {
        return encoder;
    }

    public Dense head() {
        return head;
    }

    /**
     * Every parameter under its Hugging Face name without the model's prefix ({@code bert.}, {@code
     * roberta.}): the encoder's, BERT's pooler as {@code pooler.dense.*}, the head as {@code
     * classifier.*} (RoBERTa's as {@code classifier.dense.*} and {@code classifier.out_proj.*}).
     */
    @Override
    public Map<String, Parameter> namedParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>(encoder.namedParameters());
        if (firstTokenDense != null) {
            String module = roberta() ? HEAD + ".dense" : POOLER + ".dense";
            firstTokenDense
                    .namedParameters()
                    .forEach((name, param) -> p.put(module + "." + name, param));
        }
        String last =
                headType == ClassifierHead.CLS_POOLER && roberta() ? HEAD + ".out_proj" : HEAD;
        head.namedParameters().forEach((name, param) -> p.put(last + "." + name, param));
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

    /**
     * The encoder's linear layers and BERT's {@code pooler.dense}: it is a module of the base that
     * PEFT's rule matches like any other ({@code dense} selects it too). The head's layers are not
     * among them: the head trains whole.
     */
    @Override
    public Map<String, Dense> linears() {
        if (pooler().isEmpty()) {
            return encoder.linears();
        }
        Map<String, Dense> m = new LinkedHashMap<>(encoder.linears());
        m.put(POOLER + ".dense", firstTokenDense);
        return m;
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

    /**
     * Virtual tokens go before the words. The mean head pools the real tokens only; the Hugging
     * Face head reads position 0 of the whole sequence, the first virtual token (see {@link
     * #forwardInternal}).
     */
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

    /**
     * BERT has no final norm: the head reads the last layer's output directly, through the pooler
     * when there is one (it trains with the top layers under layer freezing).
     */
    @Override
    public List<String> outputModules() {
        return pooler().isPresent() ? List.of(POOLER, HEAD) : List.of(HEAD);
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
        return io.tuneline.engine.method.LoraDefaults.BERT;
    }

    static NDArray meanPool(NDArray hidden, NDArray mask) {
        NDArray m = mask.toType(DataType.FLOAT32, false).expandDims(2);
        return hidden.mul(m).sum(new int[] {1}).div(Scalars.maximum(m.sum(new int[] {1}), 1e-9f));
    }

    /**
     * {@link #forwardInternal} cut at the encoder's layer boundaries ({@link
     * BertEncoder#segments}), the pooling and the head (with its dropout) above the last layer.
     * Empty with virtual tokens or a key/value prefix attached.
     */
    @Override
    public Optional<LayerSegments> segments(
            ParameterStore ps, NDArray ids, NDArray mask, boolean training) {
        return encoder.segments(
                ps, ids, mask, training, hidden -> headOver(ps, hidden, mask, training));
    }

    /** The head over the encoder's last states (B, T, H) of the real tokens: logits (B, labels). */
    private NDArray headOver(ParameterStore ps, NDArray hidden, NDArray mask, boolean training) {
        if (headType == ClassifierHead.CLS_POOLER) {
            return head.forward(ps, new NDList(firstToken(ps, hidden, training)), training)
                    .singletonOrThrow();
        }
        NDArray pooled = meanPool(hidden, mask);
        if (training && dropout > 0) {
            pooled = TrainingDropout.apply(pooled, dropout, true);
        }
        return head.forward(ps, new NDList(pooled), training).singletonOrThrow();
    }

    @Override
    protected NDList forwardInternal(
            ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        if (headType == ClassifierHead.CLS_POOLER) {
            // PEFT's prompt learning passes cat(prompt, words) as inputs_embeds to the unchanged
            // transformers model, whose BertPooler / RobertaClassificationHead take
            // hidden_states[:, 0]: with virtual tokens that is the first virtual token, not [CLS].
            // Pooling the same position keeps the PEFT export's predictions the engine's.
            PairList<String, Object> whole = new PairList<>();
            whole.add(BertEncoder.WITH_VIRTUAL_TOKENS, true);
            NDArray all = encoder.forward(ps, inputs, training, whole).singletonOrThrow();
            return new NDList(headOver(ps, all, inputs.get(1), training));
        }
        // Tuneline's own head, no transformers model to agree with: the real tokens' mean, as
        // without virtual tokens (the mask covers the real tokens only).
        NDArray hidden = encoder.forward(ps, inputs, training).singletonOrThrow();
        return new NDList(headOver(ps, hidden, inputs.get(1), training));
    }

    /**
     * Position 0's state (the first virtual token when there are any) as transformers' heads turn
     * it into the classifier's input: {@code BertPooler} (dense, tanh) then {@code
     * BertForSequenceClassification}'s dropout; {@code RobertaClassificationHead}: dropout, dense,
     * tanh, dropout.
     */
    private NDArray firstToken(ParameterStore ps, NDArray hidden, boolean training) {
        NDArray x = hidden.get(new NDIndex(":, 0, :"));
        if (roberta()) {
            x = TrainingDropout.apply(x, dropout, training);
        }
        x = firstTokenDense.forward(ps, new NDList(x), training).singletonOrThrow().tanh();
        return TrainingDropout.apply(x, dropout, training);
    }

    @Override
    protected void initializeChildBlocks(
            NDManager manager, DataType dataType, Shape... inputShapes) {
        encoder.initialize(manager, dataType, inputShapes);
        if (firstTokenDense != null) {
            firstTokenDense.initialize(
                    manager, dataType, new Shape(-1, encoder.config().hiddenSize()));
        }
        head.initialize(manager, dataType, new Shape(-1, encoder.config().hiddenSize()));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        return new Shape[] {new Shape(inputShapes[0].get(0), head.out())};
    }
}
