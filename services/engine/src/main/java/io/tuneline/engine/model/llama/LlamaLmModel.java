package io.tuneline.engine.model.llama;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import io.tuneline.engine.model.CausalLanguageModel;
import io.tuneline.engine.model.KvPrefix;
import io.tuneline.engine.model.LayerSegments;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.nn.ResidualTap;
import io.tuneline.engine.nn.VirtualTokens;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A Llama-family causal LM ({@code LlamaForCausalLM}, {@code MistralForCausalLM}, {@code
 * Qwen2ForCausalLM}, {@code Qwen3ForCausalLM}): the {@link LlamaDecoder} under {@code model.} and
 * {@code lm_head}, its own (vocab, hidden) weight without bias, or {@code embed_tokens} itself when
 * {@code tie_word_embeddings} is set (SmolLM, Llama 3.2 1B/3B, small Qwen models).
 *
 * <p>Inputs: token ids (B, T) and optionally an attention mask (B, T), 1 for tokens, 0 for padding
 * (pad on the right). Output: logits (B, T, vocab). {@link #logits} also takes a {@link
 * LlamaKvCache} for generation.
 *
 * <p>As a {@link io.tuneline.engine.model.TunableModel}: linears are the seven projections of each
 * layer ({@code lm_head} is left out, as PEFT's {@code all-linear} leaves the output layer out); no
 * task head ({@code lm_head} is the pretrained model's own output layer, not a new head, so LoRA
 * leaves it frozen as PEFT does); the output module is the final {@code model.norm}; the embedding
 * modules are {@code model.embed_tokens} and, when untied, {@code lm_head}: layer freezing trains
 * both vocabulary matrices only when asked for the embeddings (LLaMA-Factory's freeze method
 * likewise trains modules outside the hidden layers, {@code embed_tokens} and {@code lm_head}, only
 * when named in {@code freeze_extra_modules}, default None: {@code hparams/finetuning_args.py},
 * {@code model/adapter.py}; with tied embeddings they are one matrix anyway, as GPT-2's). RMSNorm
 * weights are {@code GAMMA} parameters and so are not decayed, as Hugging Face's Trainer excludes
 * norm weights; the zero biases the architecture lacks are not listed, so no method trains them.
 */
public final class LlamaLmModel extends AbstractBlock implements CausalLanguageModel {
    /** Layer {@code i}'s module path is this prefix followed by {@code i}. */
    public static final String LAYER_PREFIX = "model.layers.";

    private final LlamaConfig config;
    private final LlamaDecoder decoder;
    private final Dense lmHead;

    public LlamaLmModel(LlamaConfig config) {
        this.config = config;
        decoder = addChildBlock("model", new LlamaDecoder(config));
        lmHead =
                config.tieWordEmbeddings()
                        ? null
                        : addChildBlock(
                                "lm_head", new Dense(config.hiddenSize(), config.vocabSize()));
    }

    public LlamaConfig config() {
        return config;
    }

    public LlamaDecoder decoder() {
        return decoder;
    }

    /** The untied head; empty when the head is {@code embed_tokens}. */
    public Optional<Dense> lmHead() {
        return Optional.ofNullable(lmHead);
    }

    /**
     * Every parameter under its Hugging Face name ({@code model.embed_tokens.weight}, {@code
     * model.layers.0.self_attn.q_proj.weight}, {@code model.norm.weight}, {@code lm_head.weight}
     * when untied), as PyTorch's {@code named_parameters()} lists them: biases only where the
     * architecture has them, a tied head not listed; attached deltas under PEFT's names ({@code
     * model.layers.0.self_attn.q_proj.lora_A.weight}).
     */
    @Override
    public Map<String, Parameter> namedParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>();
        decoder.namedParameters().forEach((name, param) -> p.put("model." + name, param));
        if (lmHead != null) {
            p.put("lm_head.weight", lmHead.weight());
        }
        p.putAll(methodParameters());
        return Collections.unmodifiableMap(p);
    }

    /** Sized from num_key_value_heads x head_dim, so grouped-query attention gets its width. */
    @Override
    public KvPrefix.Sizes kvPrefixSizes() {
        return decoder.kvPrefixSizes();
    }

    @Override
    public void attachKvPrefix(KvPrefix prefix) {
        decoder.attachKvPrefix(prefix);
    }

    @Override
    public Optional<KvPrefix> kvPrefix() {
        return decoder.kvPrefix();
    }

    /**
     * The decoder's linear layers by full Hugging Face module path ({@code
     * model.layers.0.self_attn.q_proj} ... {@code model.layers.N.mlp.down_proj}), where fine-tuning
     * methods attach. {@code lm_head} is not among them (PEFT's {@code all-linear} leaves the
     * output layer out too).
     */
    @Override
    public Map<String, Dense> linears() {
        Map<String, Dense> m = new LinkedHashMap<>();
        decoder.linears().forEach((name, d) -> m.put("model." + name, d));
        return Collections.unmodifiableMap(m);
    }

    /**
     * The residual taps by the {@code adapters} library's module path ({@code
     * model.layers.0.attention_adapters}, {@code model.layers.0.output_adapters}).
     */
    @Override
    public Map<String, ResidualTap> residualTaps() {
        Map<String, ResidualTap> m = new LinkedHashMap<>();
        decoder.residualTaps().forEach((name, tap) -> m.put("model." + name, tap));
        return Collections.unmodifiableMap(m);
    }

    /** None: {@code lm_head} belongs to the pretrained model (PEFT has no modules_to_save). */
    @Override
    public List<String> headModules() {
        return List.of();
    }

    /** The final RMSNorm, which reads the top layer's output. */
    @Override
    public List<String> outputModules() {
        return List.of("model.norm");
    }

    /** {@code model.embed_tokens}, and {@code lm_head} when untied (see the class comment). */
    @Override
    public List<String> embeddingModules() {
        List<String> m = new ArrayList<>();
        m.add("model.embed_tokens");
        if (lmHead != null) {
            m.add("lm_head");
        }
        return List.copyOf(m);
    }

    @Override
    public String layerPrefix() {
        return LAYER_PREFIX;
    }

    @Override
    public int layerCount() {
        return config.layers();
    }

    /**
     * PEFT's {@code TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING} ({@code
     * peft/utils/constants.py}): {@code llama}, {@code mistral}, {@code qwen2} and {@code qwen3}
     * all map to {@code ["q_proj", "v_proj"]}.
     */
    @Override
    public List<String> defaultLoraTargets() {
        return io.tuneline.engine.method.LoraDefaults.LLAMA;
    }

    /**
     * {@code max_position_embeddings}: training and evaluation cut sequences there; less the N
     * virtual tokens a method attached: prompt tuning's and P-tuning's take the first N positions,
     * and real tokens sit at positions N.. under a prefix of N virtual tokens.
     */
    @Override
    public int maxPositions() {
        return config.maxPositionEmbeddings()
                - decoder.virtualTokens().map(VirtualTokens::count).orElse(0)
                - decoder.kvPrefix().map(KvPrefix::virtualTokens).orElse(0);
    }

    @Override
    public int hiddenSize() {
        return config.hiddenSize();
    }

    /** {@code num_attention_heads} (query heads; PEFT's prompt tuning records these). */
    @Override
    public int attentionHeads() {
        return config.heads();
    }

    @Override
    public Parameter tokenEmbedding() {
        return decoder.embedTokens();
    }

    @Override
    public void attachVirtualTokens(VirtualTokens tokens) {
        if (tokens.count() >= config.maxPositionEmbeddings()) {
            throw new IllegalArgumentException(
                    tokens.count()
                            + " virtual tokens leave no room in the model's "
                            + config.maxPositionEmbeddings()
                            + " positions (max_position_embeddings)");
        }
        decoder.attachVirtualTokens(tokens);
    }

    @Override
    public Optional<VirtualTokens> virtualTokens() {
        return decoder.virtualTokens();
    }

    @Override
    public Map<String, Parameter> methodParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>();
        decoder.virtualTokens().ifPresent(v -> p.putAll(v.namedParameters()));
        decoder.kvPrefix().ifPresent(k -> p.putAll(k.namedParameters()));
        p.putAll(ResidualTap.parameters(residualTaps()));
        return p;
    }

    @Override
    public int vocabSize() {
        return config.vocabSize();
    }

    /**
     * Logits (B, T, vocab).
     *
     * @param mask (B, past + T), 1 for tokens and 0 for padding, or null
     * @param cache keys and values of earlier positions, extended by this call; or null
     */
    public NDArray logits(
            ParameterStore ps, NDArray ids, NDArray mask, LlamaKvCache cache, boolean training) {
        return head(ps, decoder.hidden(ps, ids, mask, cache, training), training);
    }

    /** The LM head over hidden states (B, T, H): logits (B, T, vocab). */
    public NDArray head(ParameterStore ps, NDArray hidden, boolean training) {
        Shape s = hidden.getShape();
        NDArray flat = hidden.reshape(s.get(0) * s.get(1), s.get(2));
        NDArray logits =
                lmHead != null
                        ? lmHead.forward(ps, new NDList(flat), training).singletonOrThrow()
                        : Linear.linear(
                                        flat,
                                        ps.getValue(
                                                decoder.embedTokens(), flat.getDevice(), training))
                                .singletonOrThrow();
        return logits.reshape(s.get(0), s.get(1), config.vocabSize());
    }

    @Override
    public Optional<LayerSegments> segments(
            ParameterStore ps, NDArray ids, NDArray mask, boolean training) {
        return decoder.segments(ps, ids, mask, training, h -> head(ps, h, training));
    }

    @Override
    protected NDList forwardInternal(
            ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        boolean lastVirtual = params != null && params.contains(WITH_LAST_VIRTUAL_TOKEN);
        NDArray hidden =
                decoder.hidden(
                        ps,
                        inputs.get(0),
                        inputs.size() > 1 ? inputs.get(1) : null,
                        null,
                        training,
                        lastVirtual);
        return new NDList(head(ps, hidden, training));
    }

    @Override
    protected void initializeChildBlocks(
            NDManager manager, DataType dataType, Shape... inputShapes) {
        decoder.initialize(manager, dataType, new Shape(-1, -1));
        if (lmHead != null) {
            lmHead.initialize(manager, dataType, new Shape(-1, config.hiddenSize()));
            // LlamaForCausalLM's lm_head has no bias.
            lmHead.omitBias();
        }
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        Shape ids = inputShapes[0];
        return new Shape[] {new Shape(ids.get(0), ids.get(1), config.vocabSize())};
    }
}
