package io.tuneline.engine.method;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.nn.BottleneckAdapter;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.nn.LoraDelta;
import io.tuneline.engine.nn.PromptEncoder;
import io.tuneline.engine.nn.ResidualTap;
import io.tuneline.engine.nn.SoftPrompt;
import io.tuneline.engine.nn.VirtualTokens;
import java.nio.file.FileSystems;
import java.nio.file.Path;
import java.nio.file.PathMatcher;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * How much of a pretrained model a job trains. Each method decides which parameters get gradients
 * (the others are frozen: no gradient, no optimizer state) and may add its own. Every method is
 * written once against {@link TunableModel}, so it applies to every model family: full, freeze,
 * LoRA and QLoRA change or merge into the base's weights; prompt tuning, P-tuning, prefix tuning
 * and bottleneck adapters attach through the model's seams and are not {@link #mergeable()}.
 */
public sealed interface FineTuningMethod
        permits FineTuningMethod.Full,
                FineTuningMethod.Freeze,
                FineTuningMethod.Lora,
                FineTuningMethod.Qlora,
                FineTuningMethod.Prompt,
                FineTuningMethod.PTuning,
                FineTuningMethod.Prefix,
                FineTuningMethod.Adapter {

    /** Prepares {@code model} for training and says how many parameters train. */
    ParameterCounts apply(TunableModel model, NDManager manager);

    /**
     * Whether what the method trains folds into the base's own weights, so that a merged Hugging
     * Face directory is the whole tuned model (full, freeze, LoRA, QLoRA). Methods that change the
     * forward pass instead (virtual tokens, key/value prefixes, bottleneck adapters) cannot be
     * merged: their tuned model is the base plus the method's state ({@link MethodState}).
     */
    default boolean mergeable() {
        return true;
    }

    /**
     * The method and its settings as JSON, {@code {"method": "PROMPT", ...}}, from which {@link
     * #fromDescription} rebuilds it: what {@link MethodState} stores beside a tuned model that
     * cannot be merged. Mergeable methods need none.
     */
    default ObjectNode describe() {
        throw new UnsupportedOperationException(
                getClass().getSimpleName()
                        + " is mergeable; its tuned model is the merged weights");
    }

    /**
     * Rebuilds a method from {@link #describe()}'s output.
     *
     * @throws IllegalArgumentException naming the method when this engine does not know it
     */
    static FineTuningMethod fromDescription(ObjectNode description) {
        String method = description.path("method").asText("");
        // Each method that cannot be merged adds its case: case "NAME" -> { return ...; }
        switch (method) {
            case Prompt.NAME -> {
                return Prompt.fromDescription(description);
            }
            case PTuning.NAME -> {
                return PTuning.fromDescription(description);
            }
            case "PREFIX" -> {
                return new Prefix(
                        description.path("virtual_tokens").asInt(),
                        description.path("projection_hidden_size").asInt(0));
            }
            case "ADAPTER" -> {
                return Adapter.fromDescription(description);
            }
            default ->
                    throw new IllegalArgumentException(
                            "method '"
                                    + method
                                    + "' in "
                                    + MethodState.CONFIG
                                    + " is not one this engine can rebuild");
        }
    }

    /** Every weight trains. */
    record Full() implements FineTuningMethod {
        @Override
        public ParameterCounts apply(TunableModel model, NDManager manager) {
            model.namedParameters().values().forEach(p -> p.freeze(false));
            return ParameterCounts.of(model);
        }
    }

    /**
     * Only chosen parts train: the top {@code trainTopLayers} layers and what sits above them (the
     * final norm and the task head, {@link TunableModel#outputModules()}, always), the embeddings
     * if asked, and any parameter whose Hugging Face name matches a glob pattern. A language model
     * whose head is tied to its embedding trains that head only with the embeddings.
     */
    record Freeze(int trainTopLayers, boolean trainEmbeddings, List<String> trainablePatterns)
            implements FineTuningMethod {
        public static Freeze headOnly() {
            return new Freeze(0, false, List.of());
        }

        @Override
        public ParameterCounts apply(TunableModel model, NDManager manager) {
            int layers = model.layerCount();
            List<PathMatcher> patterns =
                    trainablePatterns.stream()
                            .map(p -> FileSystems.getDefault().getPathMatcher("glob:" + p))
                            .toList();
            for (Map.Entry<String, Parameter> e : model.namedParameters().entrySet()) {
                String name = e.getKey();
                boolean train =
                        inAny(name, model.outputModules())
                                || (trainEmbeddings && inAny(name, model.embeddingModules()))
                                || inTopLayers(name, model.layerPrefix(), layers, trainTopLayers)
                                || patterns.stream().anyMatch(m -> m.matches(Path.of(name)));
                e.getValue().freeze(!train);
            }
            return ParameterCounts.of(model);
        }

        private static boolean inTopLayers(String name, String prefix, int layers, int top) {
            for (int i = Math.max(0, layers - top); i < layers; i++) {
                if (name.startsWith(prefix + i + ".")) {
                    return true;
                }
            }
            return false;
        }
    }

    /**
     * Low-rank adapters ({@link LoraDelta}) on the linear modules {@code targets} selects by PEFT's
     * rule ({@link TargetMatcher}); the base is frozen, the task head trains (PEFT's {@code
     * modules_to_save}).
     */
    record Lora(int rank, float alpha, float dropout, TargetMatcher targets)
            implements FineTuningMethod {
        /** Targets as a list of names, PEFT's {@code target_modules=[...]}. */
        public Lora(int rank, float alpha, float dropout, List<String> targetModules) {
            this(rank, alpha, dropout, TargetMatcher.anyOf(targetModules));
        }

        /** The defaults of the job spec: r 8, alpha 16, dropout 0.05, query and value. */
        public static Lora defaults() {
            return new Lora(8, 16f, 0.05f, List.of("query", "value"));
        }

        /** PEFT's default for GPT-2: r 8, alpha 16, dropout 0.05 on the fused {@code c_attn}. */
        public static Lora gpt2Defaults() {
            return new Lora(8, 16f, 0.05f, List.of("c_attn"));
        }

        /**
         * Freezes every parameter, attaches an adapter to each selected module (in the model's
         * order, so the engine's seeded generator gives every run the same initial A), then
         * unfreezes the adapters and the task head.
         *
         * @throws TargetMatcher.NoTargetMatchException when no linear module matches
         * @throws IllegalStateException when a selected module has an adapter already
         */
        @Override
        public ParameterCounts apply(TunableModel model, NDManager manager) {
            Map<String, Dense> linears = model.linears();
            List<String> selected = targets.select(linears.keySet());
            for (String module : selected) {
                if (linears.get(module).deltas().stream().anyMatch(LoraDelta.class::isInstance)) {
                    throw new IllegalStateException(
                            "module " + module + " already has a LoRA adapter");
                }
            }
            return trainOnlyWhatAttaches(
                    model,
                    () -> {
                        for (String module : selected) {
                            Dense layer = linears.get(module);
                            layer.attach(new LoraDelta(layer, rank, alpha, dropout, manager));
                        }
                    });
        }
    }

    /**
     * QLoRA (Dettmers et al. 2023, arXiv:2305.14314): the linear layers {@code quantized} selects
     * (by default every one in {@link TunableModel#linears()}, as transformers' {@code
     * load_in_4bit} replaces every {@code nn.Linear} but the output head) are frozen in NF4 with
     * blocksize {@code blocksize} and optional double quantization, then {@link #lora} is applied
     * exactly as on a full-precision base. Embeddings, norms and the head stay in float32
     * (bitsandbytes' {@code llm_int8_skip_modules} default keeps the head unquantized). Written
     * against {@link TunableModel} only, so every family gets it.
     */
    record Qlora(Lora lora, int blocksize, boolean doubleQuant, TargetMatcher quantized)
            implements FineTuningMethod {
        /** QLoRA's defaults: blocksize 64, double quantization, every linear layer in NF4. */
        public Qlora(Lora lora) {
            this(
                    lora,
                    io.tuneline.engine.quant.Nf4.DEFAULT_BLOCKSIZE,
                    true,
                    TargetMatcher.fullMatch(".*"));
        }

        public Qlora(Lora lora, int blocksize, boolean doubleQuant) {
            this(lora, blocksize, doubleQuant, TargetMatcher.fullMatch(".*"));
        }

        /**
         * Quantizes the selected linear weights (one layer at a time, so only one layer's values
         * are copied to the heap at once), then attaches LoRA as {@link Lora#apply} does. The
         * quantization is a pure function of the weights, so a run resumed from a checkpoint
         * quantizes the same base to the same bytes.
         */
        @Override
        public ParameterCounts apply(TunableModel model, NDManager manager) {
            Map<String, Dense> linears = model.linears();
            // Fail on bad LoRA targets before anything is quantized.
            lora.targets().select(linears.keySet());
            for (String module : quantized.select(linears.keySet())) {
                Dense dense = linears.get(module);
                if (dense.base() instanceof Dense.WeightStore.Nf4 held) {
                    // Quantized by the checkpoint loader as it read the tensor (loading()).
                    if (held.blocksize() != blocksize || held.doubleQuantized() != doubleQuant) {
                        throw new IllegalStateException(
                                module
                                        + " was loaded in NF4 with blocks of "
                                        + held.blocksize()
                                        + (held.doubleQuantized() ? " and" : " without")
                                        + " double quantization; this QLoRA asks for "
                                        + blocksize);
                    }
                    continue;
                }
                dense.quantizeWeight(blocksize, doubleQuant);
            }
            return lora.apply(model, manager);
        }

        /**
         * What a checkpoint loader needs to quantize this method's base as it reads it, so the
         * full-precision base is never resident at once; {@link #apply} then finds those layers in
         * NF4 already and only attaches LoRA. The bytes are the same as quantizing after a full
         * load (the same function of the same float32 values).
         */
        public io.tuneline.engine.quant.Nf4Loading loading() {
            return new io.tuneline.engine.quant.Nf4Loading(
                    quantized::select, blocksize, doubleQuant);
        }
    }

    /**
     * Prompt tuning (Lester et al. 2021, arXiv:2104.08691): {@code virtualTokens} trainable vectors
     * ({@link SoftPrompt}) prepended to the input embeddings through {@link
     * TunableModel#attachVirtualTokens}; the base is frozen, the task head trains (PEFT's {@code
     * modules_to_save}). Initialisation as PEFT's {@code PromptEmbedding} ({@code
     * peft/tuners/prompt_tuning/model.py}): {@link Init#RANDOM} as {@code nn.Embedding} (N(0, 1)),
     * {@link Init#VOCAB} ({@code SAMPLE_VOCAB}) rows of the token embedding at ids drawn uniformly
     * from the vocabulary with the engine's seeded generator, {@link Init#TEXT} the token
     * embeddings of {@code initTokenIds} (the caller tokenizes the text as PEFT does, special
     * tokens included), repeated or cut to N.
     */
    record Prompt(int virtualTokens, Prompt.Init init, List<Integer> initTokenIds)
            implements FineTuningMethod {
        /** {@link #describe()}'s method name, the job's {@code PROMPT}. */
        public static final String NAME = "PROMPT";

        /** PEFT's {@code PromptTuningInit}: RANDOM, SAMPLE_VOCAB, TEXT. */
        public enum Init {
            RANDOM,
            VOCAB,
            TEXT
        }

        public Prompt {
            if (virtualTokens < 1) {
                throw new IllegalArgumentException(
                        "prompt tuning needs at least one virtual token, was " + virtualTokens);
            }
            initTokenIds = List.copyOf(initTokenIds);
            if (init == Init.TEXT && initTokenIds.isEmpty()) {
                throw new IllegalArgumentException(
                        "prompt tuning's TEXT init needs the text's token ids; the text gave none");
            }
        }

        /** The job spec's defaults: 20 virtual tokens, random init. */
        public static Prompt defaults() {
            return new Prompt(20, Init.RANDOM, List.of());
        }

        /**
         * PEFT's TEXT rule: the ids cut to N when longer, repeated {@code ceil(N / len)} times and
         * cut to N when shorter.
         */
        public static List<Integer> textIds(List<Integer> ids, int n) {
            List<Integer> out = new java.util.ArrayList<>();
            while (out.size() < n) {
                out.addAll(ids);
            }
            return List.copyOf(out.subList(0, n));
        }

        @Override
        public ParameterCounts apply(TunableModel model, NDManager manager) {
            int n = virtualTokens;
            int h = model.hiddenSize();
            NDArray initial =
                    switch (init) {
                        case RANDOM -> manager.randomNormal(new Shape(n, h));
                        case VOCAB -> {
                            long vocab = model.tokenEmbedding().getArray().getShape().get(0);
                            try (NDManager scratch = manager.newSubManager()) {
                                long[] ids =
                                        scratch.randomInteger(
                                                        0, vocab, new Shape(n), DataType.INT64)
                                                .toLongArray();
                                yield rows(model, ids, manager);
                            }
                        }
                        case TEXT ->
                                rows(
                                        model,
                                        textIds(initTokenIds, n).stream()
                                                .mapToLong(Integer::longValue)
                                                .toArray(),
                                        manager);
                    };
            return attach(model, new SoftPrompt(initial));
        }

        @Override
        public boolean mergeable() {
            return false;
        }

        @Override
        public ObjectNode describe() {
            ObjectNode d = JsonNodeFactory.instance.objectNode();
            d.put("method", NAME);
            d.put("virtual_tokens", virtualTokens);
            d.put("init", init.name());
            var ids = d.putArray("init_token_ids");
            initTokenIds.forEach(ids::add);
            return d;
        }

        static Prompt fromDescription(ObjectNode d) {
            List<Integer> ids = new java.util.ArrayList<>();
            d.path("init_token_ids").forEach(node -> ids.add(node.asInt()));
            return new Prompt(
                    d.path("virtual_tokens").asInt(), Init.valueOf(d.path("init").asText()), ids);
        }

        /** Copies of the token embedding's rows {@code ids}, (len, hidden), in {@code manager}. */
        private static NDArray rows(TunableModel model, long[] ids, NDManager manager) {
            NDArray table = model.tokenEmbedding().getArray();
            long vocab = table.getShape().get(0);
            int h = model.hiddenSize();
            float[] values = new float[ids.length * h];
            for (int i = 0; i < ids.length; i++) {
                if (ids[i] < 0 || ids[i] >= vocab) {
                    throw new IllegalArgumentException(
                            "token id "
                                    + ids[i]
                                    + " for the prompt's init is outside the vocabulary of "
                                    + vocab);
                }
                float[] row = table.get(ids[i]).toFloatArray();
                System.arraycopy(row, 0, values, i * h, h);
            }
            return manager.create(values, new Shape(ids.length, h));
        }
    }

    /**
     * P-tuning (Liu et al. 2021, arXiv:2103.10385): a prompt encoder ({@link PromptEncoder}: an
     * embedding of {@code virtualTokens} rows through an MLP or a bidirectional LSTM, as PEFT's
     * {@code PromptEncoder}) computes the virtual tokens in every forward pass; they are prepended
     * to the input embeddings through {@link TunableModel#attachVirtualTokens}. The base is frozen,
     * the task head trains. {@code encoderHiddenSize} 0 means the model's hidden size (PEFT's
     * default, {@code _prepare_prompt_learning_config}); {@code encoderDropout} is the LSTM's
     * dropout between its two layers (PEFT's MLP ignores it).
     */
    record PTuning(
            int virtualTokens, PTuning.Encoder encoder, int encoderHiddenSize, float encoderDropout)
            implements FineTuningMethod {
        /** {@link #describe()}'s method name, the job's {@code P_TUNING}. */
        public static final String NAME = "P_TUNING";

        /** PEFT's {@code PromptEncoderReparameterizationType}. */
        public enum Encoder {
            MLP,
            LSTM
        }

        public PTuning {
            if (virtualTokens < 1) {
                throw new IllegalArgumentException(
                        "P-tuning needs at least one virtual token, was " + virtualTokens);
            }
            if (encoderHiddenSize < 0) {
                throw new IllegalArgumentException(
                        "encoder hidden size must be positive (or 0 for the model's), was "
                                + encoderHiddenSize);
            }
            if (encoderDropout < 0 || encoderDropout >= 1) {
                throw new IllegalArgumentException(
                        "encoder dropout must be in [0, 1), was " + encoderDropout);
            }
        }

        /** The job spec's defaults: 20 virtual tokens, MLP, the model's hidden size, no dropout. */
        public static PTuning defaults() {
            return new PTuning(20, Encoder.MLP, 0, 0f);
        }

        /** The encoder's hidden size on {@code model}: PEFT's {@code encoder_hidden_size}. */
        public int encoderHiddenSize(TunableModel model) {
            return encoderHiddenSize > 0 ? encoderHiddenSize : model.hiddenSize();
        }

        @Override
        public ParameterCounts apply(TunableModel model, NDManager manager) {
            PromptEncoder e =
                    new PromptEncoder(
                            PromptEncoder.Kind.valueOf(encoder.name()),
                            virtualTokens,
                            model.hiddenSize(),
                            encoderHiddenSize(model),
                            encoderDropout,
                            manager);
            return attach(model, e);
        }

        @Override
        public boolean mergeable() {
            return false;
        }

        @Override
        public ObjectNode describe() {
            ObjectNode d = JsonNodeFactory.instance.objectNode();
            d.put("method", NAME);
            d.put("virtual_tokens", virtualTokens);
            d.put("encoder", encoder.name());
            d.put("encoder_hidden_size", encoderHiddenSize);
            d.put("encoder_dropout", encoderDropout);
            return d;
        }

        static PTuning fromDescription(ObjectNode d) {
            return new PTuning(
                    d.path("virtual_tokens").asInt(),
                    Encoder.valueOf(d.path("encoder").asText()),
                    d.path("encoder_hidden_size").asInt(),
                    (float) d.path("encoder_dropout").asDouble());
        }
    }

    /**
     * Freezes the base, attaches {@code tokens} and trains them and the task head: what prompt
     * tuning and P-tuning share (PEFT's prompt learning freezes the base model and sets {@code
     * modules_to_save} to the classifier for sequence classification).
     */
    private static ParameterCounts attach(TunableModel model, VirtualTokens tokens) {
        if (model.virtualTokens().isPresent()) {
            throw new IllegalStateException("the model has virtual tokens already");
        }
        return trainOnlyWhatAttaches(model, () -> model.attachVirtualTokens(tokens));
    }

    /**
     * Prefix tuning (Li & Liang 2021, arXiv:2101.00190) / P-tuning v2 (Liu et al. 2022,
     * arXiv:2110.07602), PEFT's {@code PREFIX_TUNING}: {@code virtualTokens} trainable keys and
     * values in every attention layer, sized from the model's key/value heads x head_dim ({@link
     * io.tuneline.engine.model.KvPrefix.Sizes}), through the model's key/value prefix seam ({@link
     * TunableModel#attachKvPrefix}). With {@code projectionHiddenSize > 0} they are PEFT's {@code
     * prefix_projection} (an MLP with that hidden size over an N x token_dim embedding) while
     * training; 0 trains the prefixes themselves. The base is frozen, the task head trains (PEFT's
     * {@code modules_to_save} for sequence classification), nothing can be merged.
     */
    record Prefix(int virtualTokens, int projectionHiddenSize) implements FineTuningMethod {
        public Prefix {
            if (virtualTokens < 1) {
                throw new IllegalArgumentException(
                        "prefix tuning needs at least one virtual token, was " + virtualTokens);
            }
            if (projectionHiddenSize < 0) {
                throw new IllegalArgumentException(
                        "projection_hidden_size must be 0 (no projection) or positive, was "
                                + projectionHiddenSize);
            }
        }

        /** Prefixes that train themselves, PEFT's default ({@code prefix_projection=False}). */
        public static Prefix of(int virtualTokens) {
            return new Prefix(virtualTokens, 0);
        }

        /**
         * Freezes every parameter, attaches a {@link PrefixEncoder} (initialised from the engine's
         * seeded generator), then unfreezes it and the task head.
         *
         * @throws IllegalStateException when the model has a prefix already
         * @throws UnsupportedOperationException when the family takes no prefixes
         */
        @Override
        public ParameterCounts apply(TunableModel model, NDManager manager) {
            if (model.kvPrefix().isPresent()) {
                throw new IllegalStateException("the model has a key/value prefix already");
            }
            PrefixEncoder encoder =
                    new PrefixEncoder(
                            virtualTokens, projectionHiddenSize, model.kvPrefixSizes(), manager);
            return trainOnlyWhatAttaches(model, () -> model.attachKvPrefix(encoder));
        }

        @Override
        public boolean mergeable() {
            return false;
        }

        @Override
        public ObjectNode describe() {
            ObjectNode o =
                    com.fasterxml.jackson.databind.node.JsonNodeFactory.instance.objectNode();
            o.put("method", "PREFIX");
            o.put("virtual_tokens", virtualTokens);
            o.put("projection_hidden_size", projectionHiddenSize);
            return o;
        }
    }

    /**
     * Bottleneck adapters (Houlsby et al. 2019, arXiv:1902.00751; Pfeiffer et al. 2020,
     * arXiv:2005.00247) at the model's residual taps ({@link TunableModel#residualTaps()}), as the
     * {@code adapters} library (adapter-hub 1.2.0) builds them: {@link BottleneckAdapter}, named
     * {@code <tap>.adapters.}{@value #NAME}{@code .adapter_down.0.weight} etc. The base is frozen,
     * the adapters and the task head train. The adapters change the forward pass non-linearly, so
     * they cannot be merged; the tuned model is the base plus {@link MethodState}, and {@code
     * export.AdapterHubAdapter} writes the library's own layout.
     *
     * @param placement PFEIFFER ({@code SeqBnConfig}, "seq_bn": after the feed-forward only, the
     *     original LayerNorm before the adapter too) or HOULSBY ({@code DoubleSeqBnConfig},
     *     "double_seq_bn": after attention and after the feed-forward)
     * @param bottleneckSize the adapter's inner width; 0 for {@code hidden / reductionFactor}
     * @param reductionFactor the library's {@code reduction_factor} (16 for both placements), used
     *     when {@code bottleneckSize} is 0
     * @param activation the library's {@code non_linearity}; null or empty for the placement's
     *     (relu for Pfeiffer, swish for Houlsby)
     * @param dropout the library's {@code dropout}: on the up-projection's output, before the
     *     adapter's residual sum ({@code Adapter.forward}), in training only
     */
    record Adapter(
            Adapter.Placement placement,
            int bottleneckSize,
            int reductionFactor,
            String activation,
            float dropout)
            implements FineTuningMethod {
        /**
         * The adapter's name in parameter names and exports ({@code adapters.<name>.}, the name the
         * library's {@code add_adapter} takes).
         */
        public static final String NAME = "tuneline";

        /** The library's default {@code reduction_factor} for both placements. */
        public static final int DEFAULT_REDUCTION_FACTOR = 16;

        /** Where the adapters sit, after the {@code adapters} library's two sequential configs. */
        public enum Placement {
            /** {@code SeqBnConfig}: feed-forward only, {@code original_ln_before} true, relu. */
            PFEIFFER("seq_bn", "relu", false, true),
            /** {@code DoubleSeqBnConfig}: attention and feed-forward, swish. */
            HOULSBY("double_seq_bn", "swish", true, false);

            private final String configName;
            private final String defaultActivation;
            private final boolean afterAttention;
            private final boolean originalLnBefore;

            Placement(
                    String configName,
                    String defaultActivation,
                    boolean afterAttention,
                    boolean originalLnBefore) {
                this.configName = configName;
                this.defaultActivation = defaultActivation;
                this.afterAttention = afterAttention;
                this.originalLnBefore = originalLnBefore;
            }

            /** The library's config name ({@code ADAPTER_CONFIG_MAP}). */
            public String configName() {
                return configName;
            }

            public String defaultActivation() {
                return defaultActivation;
            }

            /** The config's {@code mh_adapter}: an adapter after the attention output too. */
            public boolean afterAttention() {
                return afterAttention;
            }

            /** The config's {@code original_ln_before}. */
            public boolean originalLnBefore() {
                return originalLnBefore;
            }

            /**
             * The placement a name stands for: the engine's (PFEIFFER, HOULSBY) or the library's
             * current and legacy config names (seq_bn, double_seq_bn, pfeiffer, houlsby).
             */
            public static Placement parse(String name) {
                return switch (name.strip().toLowerCase(Locale.ROOT)) {
                    case "pfeiffer", "seq_bn" -> PFEIFFER;
                    case "houlsby", "double_seq_bn" -> HOULSBY;
                    default ->
                            throw new IllegalArgumentException(
                                    "unknown adapter placement '"
                                            + name
                                            + "'; use PFEIFFER (seq_bn) or HOULSBY (double_seq_bn)");
                };
            }
        }

        public Adapter {
            if (placement == null) {
                throw new IllegalArgumentException("an adapter needs a placement");
            }
            if (bottleneckSize < 0) {
                throw new IllegalArgumentException(
                        "adapter bottleneck size must be 0 (from the reduction factor) or"
                                + " positive, was "
                                + bottleneckSize);
            }
            if (bottleneckSize == 0 && reductionFactor < 1) {
                throw new IllegalArgumentException(
                        "adapter reduction factor must be at least 1, was " + reductionFactor);
            }
            if (!(dropout >= 0 && dropout < 1)) {
                throw new IllegalArgumentException(
                        "adapter dropout must be in [0, 1), was " + dropout);
            }
            activation =
                    activation == null || activation.isBlank()
                            ? placement.defaultActivation()
                            : BottleneckAdapter.checkActivation(activation);
        }

        /** {@code SeqBnConfig}'s defaults: reduction factor 16, relu, no dropout. */
        public static Adapter pfeiffer() {
            return new Adapter(Placement.PFEIFFER, 0, DEFAULT_REDUCTION_FACTOR, null, 0f);
        }

        /** {@code DoubleSeqBnConfig}'s defaults: reduction factor 16, swish, no dropout. */
        public static Adapter houlsby() {
            return new Adapter(Placement.HOULSBY, 0, DEFAULT_REDUCTION_FACTOR, null, 0f);
        }

        /**
         * The defaults of a placement named as the engine or the library names it ({@code seq_bn},
         * {@code double_seq_bn}, {@code pfeiffer}, {@code houlsby}, ...).
         */
        public static Adapter parse(String name) {
            return Placement.parse(name) == Placement.PFEIFFER ? pfeiffer() : houlsby();
        }

        /**
         * The method from a job's {@code AdapterParams} (proto {@code tuneline.v1.AdapterParams}),
         * with the contract's defaults for unset fields: placement "" is Pfeiffer, reduction factor
         * 0 is 16, bottleneck size 0 derives the width, activation "" is the placement's.
         */
        public static Adapter fromJob(
                String placement,
                int bottleneckSize,
                int reductionFactor,
                String activation,
                double dropout) {
            return new Adapter(
                    placement == null || placement.isBlank()
                            ? Placement.PFEIFFER
                            : Placement.parse(placement),
                    bottleneckSize,
                    reductionFactor == 0 ? DEFAULT_REDUCTION_FACTOR : reductionFactor,
                    activation,
                    (float) dropout);
        }

        /**
         * The activation in effect (the record holds it resolved: the given name in lower case, or
         * the placement's default when none was given).
         */
        public String effectiveActivation() {
            return activation;
        }

        /**
         * The bottleneck width for a residual stream of {@code hidden}: {@code bottleneckSize},
         * else the library's {@code int(hidden // reduction_factor)}, at least 1.
         */
        public int bottleneck(int hidden) {
            return bottleneckSize > 0 ? bottleneckSize : Math.max(1, hidden / reductionFactor);
        }

        /** Whether a tap at {@code point} gets an adapter under this placement. */
        public boolean covers(ResidualTap.Point point) {
            return point == ResidualTap.Point.FEED_FORWARD || placement.afterAttention();
        }

        /**
         * Freezes every parameter, attaches an adapter (initialised so that the model is unchanged)
         * at each covered tap in the model's order, then unfreezes the adapters and the task head.
         *
         * @throws IllegalArgumentException when the model has no residual taps
         * @throws IllegalStateException when a tap holds an adapter already
         */
        @Override
        public ParameterCounts apply(TunableModel model, NDManager manager) {
            Map<String, ResidualTap> taps = model.residualTaps();
            if (taps.isEmpty()) {
                throw new IllegalArgumentException(
                        model.getClass().getSimpleName()
                                + " has no residual taps for bottleneck adapters");
            }
            taps.forEach(
                    (module, tap) -> {
                        if (!tap.attached().isEmpty()) {
                            throw new IllegalStateException(
                                    module + " already has a bottleneck adapter");
                        }
                    });
            String act = effectiveActivation();
            return trainOnlyWhatAttaches(
                    model,
                    () ->
                            taps.forEach(
                                    (module, tap) -> {
                                        if (covers(tap.point())) {
                                            tap.attach(
                                                    NAME,
                                                    new BottleneckAdapter(
                                                            tap.width(),
                                                            bottleneck(tap.width()),
                                                            act,
                                                            placement.originalLnBefore(),
                                                            dropout,
                                                            manager));
                                        }
                                    }));
        }

        @Override
        public boolean mergeable() {
            return false;
        }

        /**
         * {@code {"method": "ADAPTER", "placement": "PFEIFFER", "bottleneck_size": 0,
         * "reduction_factor": 16, "activation": "relu", "dropout": 0.0}}, the activation resolved.
         */
        @Override
        public ObjectNode describe() {
            ObjectNode o = JsonNodeFactory.instance.objectNode();
            o.put("method", "ADAPTER");
            o.put("placement", placement.name());
            o.put("bottleneck_size", bottleneckSize);
            o.put("reduction_factor", reductionFactor);
            o.put("activation", effectiveActivation());
            o.put("dropout", dropout);
            return o;
        }

        static Adapter fromDescription(ObjectNode d) {
            return new Adapter(
                    Placement.parse(d.path("placement").asText("")),
                    d.path("bottleneck_size").asInt(0),
                    d.path("reduction_factor").asInt(DEFAULT_REDUCTION_FACTOR),
                    d.path("activation").asText(null),
                    (float) d.path("dropout").asDouble(0));
        }
    }

    /**
     * What every parameter-efficient method does around its own attachment: freezes the whole
     * model, runs {@code attach}, then trains exactly what it added ({@link
     * TunableModel#deltaParameters()}) and the task head (PEFT's {@code modules_to_save}).
     */
    private static ParameterCounts trainOnlyWhatAttaches(TunableModel model, Runnable attach) {
        model.namedParameters().values().forEach(p -> p.freeze(true));
        attach.run();
        model.deltaParameters().values().forEach(p -> p.freeze(false));
        model.namedParameters()
                .forEach(
                        (name, p) -> {
                            if (inAny(name, model.headModules())) {
                                p.freeze(false);
                            }
                        });
        return ParameterCounts.of(model);
    }

    /** Whether parameter {@code name} belongs to one of {@code modules}. */
    private static boolean inAny(String name, List<String> modules) {
        return modules.stream().anyMatch(m -> name.startsWith(m + "."));
    }
}
