package io.tuneline.training.worker;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.S3Uri;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.export.AdapterHubAdapter;
import io.tuneline.engine.export.ClassifierWeights;
import io.tuneline.engine.export.PeftAdapter;
import io.tuneline.engine.export.PeftPrefixTuning;
import io.tuneline.engine.export.PeftPromptLearning;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.method.TargetMatcher;
import io.tuneline.engine.model.CausalLanguageModel;
import io.tuneline.engine.model.ClassifierHead;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.Checkpointing;
import io.tuneline.engine.train.ClassificationLoss;
import io.tuneline.engine.train.ClassifierTrainer;
import io.tuneline.engine.train.LabelledText;
import io.tuneline.engine.train.LearningRateSchedule;
import io.tuneline.engine.train.PreparedSplit;
import io.tuneline.engine.train.TrainingOutcome;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.engine.train.Validation;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.Hyperparameters;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.LoraParams;
import io.tuneline.proto.v1.MethodSpec;
import io.tuneline.proto.v1.PromptTuningParams;
import io.tuneline.proto.v1.Task;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.training.run.RunStore;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.function.BooleanSupplier;
import java.util.function.Function;

/**
 * One training attempt of a sequence-classification job: reads the run's input and prepared
 * training split from the object store, fine-tunes the base model with the job's method, reports
 * progress at a bounded rate, and writes the model and {@code result.json}.
 *
 * <p>Prepared splits are JSON Lines of {@code {"text": ..., "label": ...}} with labels from {@code
 * DatasetPrepared.labels}.
 */
public final class ClassificationRun {

    private static final ObjectMapper JSON = new ObjectMapper();

    private final ArtifactStore store;
    private final ProgressSink progress;
    private final Path scratch;

    private final BooleanSupplier stopRequested;

    public ClassificationRun(ArtifactStore store, ProgressSink progress, Path scratch) {
        this(store, progress, scratch, () -> false);
    }

    /**
     * @param stopRequested polled between steps; when it turns true the run stores a checkpoint and
     *     ends with {@link io.tuneline.engine.train.TrainingStoppedException}
     */
    public ClassificationRun(
            ArtifactStore store,
            ProgressSink progress,
            Path scratch,
            BooleanSupplier stopRequested) {
        this.store = store;
        this.progress = progress;
        this.scratch = scratch;
        this.stopRequested = stopRequested;
    }

    public TrainingCompleted run(String jobId, int attempt) throws IOException {
        RunStore runs = new RunStore(store);
        DatasetPrepared input = runs.input(jobId);
        JobRequested job = input.getJob();
        if (job.getTask() != Task.TASK_SEQUENCE_CLASSIFICATION) {
            throw new UnsupportedOperationException(
                    "task "
                            + job.getTask()
                            + " is not trained by this worker yet; only TASK_SEQUENCE_CLASSIFICATION");
        }
        List<String> labels = input.getLabelsList();
        if (labels.size() < 2) {
            throw new IllegalArgumentException(
                    "the prepared dataset names "
                            + labels.size()
                            + " label(s); classification needs at least 2");
        }
        List<LabelledText> train = read(input.getTrain(), labels);
        List<LabelledText> validationSplit =
                input.getValidation().getUri().isEmpty()
                        ? List.of()
                        : read(input.getValidation(), labels);
        Validation<LabelledText> validation =
                new Validation<>(
                        validationSplit,
                        Math.max(0, job.getHyperparameters().getEvalEverySteps()),
                        Math.max(0, job.getHyperparameters().getEarlyStoppingPatience()));
        TrainingSettings settings = settings(job.getHyperparameters(), job.getMethod());
        String ref = job.getBaseModel().getRef();
        PretrainedModel base = ModelCatalog.resolve(ref, store::download, scratch);
        requireMergedBase(ref, base);
        if (base.architecture() != PretrainedModel.Architecture.BERT) {
            throw new IllegalArgumentException(
                    "base model '"
                            + ref
                            + "' is "
                            + base.architecture()
                            + "; sequence classification needs a BERT-family encoder (the"
                            + " built-in minilm-l6, or a bert or roberta model directory)");
        }
        if (settings.maxSeqLength() > base.config().maxSequenceLength()) {
            throw new IllegalArgumentException(
                    "max_seq_length "
                            + settings.maxSeqLength()
                            + " is longer than base model '"
                            + ref
                            + "' takes ("
                            + base.config().maxSequenceLength()
                            + " positions)");
        }

        long started = System.currentTimeMillis();
        EngineRuntime runtime = EngineRuntime.start(0);
        Path tokenizerFile = Files.createDirectories(scratch).resolve("tokenizer.json");
        try (InputStream in = base.tokenizer().open()) {
            Files.copy(in, tokenizerFile, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
        String namedHead = job.getHyperparameters().getClassifierHead();
        ClassifierHead head =
                namedHead.isBlank()
                        ? base.defaultClassifierHead()
                        : ClassifierHead.parse(namedHead);
        SequenceClassifier classifier =
                new SequenceClassifier(
                        new BertEncoder(encoderConfig(base, job)), labels.size(), 0.1f, head);
        try (HuggingFaceTokenizer tokenizer =
                        HuggingFaceTokenizer.newInstance(
                                tokenizerFile,
                                Map.of(
                                        "truncation",
                                        "true",
                                        "maxLength",
                                        Integer.toString(settings.maxSeqLength())));
                Model model =
                        Model.newInstance(
                                "tuneline-" + jobId, runtime.device(), EngineRuntime.ENGINE)) {
            // The head and the LoRA matrices start random: seeding the engine first makes the
            // same job train the same model, run after run.
            ai.djl.engine.Engine.getInstance().setRandomSeed((int) settings.seed());
            classifier.initialize(
                    model.getNDManager(),
                    DataType.FLOAT32,
                    new Shape(1, settings.maxSeqLength()),
                    new Shape(1, settings.maxSeqLength()));
            base.loadInto(classifier);
            model.setBlock(classifier);
            FineTuningMethod method =
                    method(job.getMethod(), classifier.defaultLoraTargets(), tokenIds(tokenizer));
            ParameterCounts counts = method.apply(classifier, model.getNDManager());

            Attempt run = new Attempt(store, progress, jobId, attempt, runtime, started);
            Checkpointing checkpointing =
                    run.checkpointing(scratch, job.getHyperparameters(), stopRequested);
            TrainingOutcome outcome =
                    new ClassifierTrainer(tokenizer, objective(job.getHyperparameters(), labels))
                            .train(
                                    model,
                                    classifier,
                                    train,
                                    settings,
                                    validation,
                                    run,
                                    checkpointing);

            // A Hugging Face directory: Python reads the encoder with AutoModel, and the catalogue
            // takes it as the base model of the next fine-tuning.
            Path out = scratch.resolve("model");
            ObjectNode provenance = JSON.createObjectNode();
            provenance.put("base_model", ref);
            provenance.put("method", job.getMethod().getKindCase().name());
            ClassifierWeights.writeDirectory(classifier, labels, tokenizerFile, provenance, out);
            List<String> others =
                    new java.util.ArrayList<>(
                            List.of(ClassifierWeights.CONFIG, ClassifierWeights.TOKENIZER));
            if (!method.mergeable()) {
                // Virtual tokens, prefixes and bottleneck adapters change the forward pass: the
                // tuned model is the base weights plus the method's state.
                MethodState.write(classifier, method, out);
                others.addAll(List.of(MethodState.CONFIG, MethodState.WEIGHTS));
            }
            // LoRA: the adapter alone as PEFT saves it, for Python users
            // (PeftModel.from_pretrained).
            Path adapter = scratch.resolve("adapter");
            boolean withAdapter =
                    writeAdapter(
                            classifier,
                            method,
                            job.getMethod(),
                            ModelCatalog.huggingFaceName(ref),
                            labels,
                            adapter);
            List<ArtifactRef> files =
                    run.uploadModel(
                            out,
                            ClassifierWeights.WEIGHTS,
                            others,
                            withAdapter ? Optional.of(adapter) : Optional.empty());
            return run.complete(outcome, counts, files);
        }
    }

    /**
     * The training loss the job asks for: label smoothing and class weights by label name (labels
     * not named weigh 1). A weight for a label the dataset does not have is a mistake worth
     * stopping for.
     */
    static ClassificationLoss objective(Hyperparameters h, List<String> labels) {
        if (h.getLabelSmoothing() == 0 && h.getClassWeightsCount() == 0) {
            return ClassificationLoss.PLAIN;
        }
        Optional<float[]> weights = Optional.empty();
        if (h.getClassWeightsCount() > 0) {
            for (String named : h.getClassWeightsMap().keySet()) {
                if (!labels.contains(named)) {
                    throw new IllegalArgumentException(
                            "hyperparameters.class_weights names label '"
                                    + named
                                    + "', which the dataset does not have; its labels are "
                                    + labels);
                }
            }
            float[] w = new float[labels.size()];
            for (int i = 0; i < w.length; i++) {
                w[i] = (float) (double) h.getClassWeightsMap().getOrDefault(labels.get(i), 1.0);
            }
            weights = Optional.of(w);
        }
        return new ClassificationLoss(h.getLabelSmoothing(), weights);
    }

    /** The job's hyperparameters with the defaults its comments promise. */
    static TrainingSettings settings(Hyperparameters h, MethodSpec method) {
        return new TrainingSettings(
                h.getEpochs() > 0 ? h.getEpochs() : 3,
                h.getBatchSize() > 0 ? h.getBatchSize() : 16,
                h.getLearningRate() > 0 ? (float) h.getLearningRate() : defaultLearningRate(method),
                h.getWeightDecay() > 0 ? (float) h.getWeightDecay() : 0.01f,
                h.getWarmupRatio() > 0 ? (float) h.getWarmupRatio() : 0.06f,
                h.getMaxGradNorm() == 0 ? 1f : (float) Math.max(0, h.getMaxGradNorm()),
                h.getMaxSeqLength() > 0 ? h.getMaxSeqLength() : 128,
                h.getSeed() != 0 ? h.getSeed() : 42,
                switch (h.getLrSchedule()) {
                    case LR_SCHEDULE_COSINE -> LearningRateSchedule.Shape.COSINE;
                    case LR_SCHEDULE_CONSTANT -> LearningRateSchedule.Shape.CONSTANT;
                    default -> LearningRateSchedule.Shape.LINEAR;
                },
                Math.max(1, h.getGradientAccumulationSteps()));
    }

    /** The base's encoder config, with the job's dropout override when it sets one. */
    private static io.tuneline.engine.model.bert.BertConfig encoderConfig(
            PretrainedModel base, JobRequested job) {
        java.util.OptionalDouble dropout = modelDropout(job.getHyperparameters());
        return dropout.isPresent()
                ? base.config().withDropout((float) dropout.getAsDouble())
                : base.config();
    }

    /** The job's override of every dropout rate inside the model, when it sets one. */
    static java.util.OptionalDouble modelDropout(Hyperparameters h) {
        return h.hasModelDropout()
                ? java.util.OptionalDouble.of(h.getModelDropout())
                : java.util.OptionalDouble.empty();
    }

    /**
     * The learning rate job.proto promises when the job sets none: 2e-5 for full fine-tuning (the
     * usual rate for BERT-size models, Devlin et al. 2019), 2e-4 for every method that trains a
     * small part of the model (LoRA's and layer freezing's usual rate, as in PEFT's examples).
     */
    static float defaultLearningRate(MethodSpec method) {
        return switch (method.getKindCase()) {
            case FULL, KIND_NOT_SET -> 2e-5f;
            default -> 2e-4f;
        };
    }

    /**
     * The job's method; a LoRA job's targets are its {@code target_modules} list, its {@code
     * target_modules_regex}, or when it names neither PEFT's targets for the model family ({@code
     * defaultTargets}: query and value for BERT, c_attn for GPT-2).
     */
    static FineTuningMethod method(
            MethodSpec spec,
            List<String> defaultTargets,
            Function<String, List<Integer>> tokenize) {
        return switch (spec.getKindCase()) {
            case FULL, KIND_NOT_SET -> new FineTuningMethod.Full();
            case FREEZE ->
                    spec.getFreeze().getHeadOnly()
                            ? FineTuningMethod.Freeze.headOnly()
                            : new FineTuningMethod.Freeze(
                                    spec.getFreeze().getTrainTopLayers(),
                                    spec.getFreeze().getTrainEmbeddings(),
                                    spec.getFreeze().getTrainablePatternsList());
            case LORA -> lora(spec.getLora(), defaultTargets);
            case QLORA -> {
                var q = spec.getQlora();
                // QLoRA's defaults (Dettmers et al. 2023, arXiv:2305.14314; transformers'
                // BitsAndBytesConfig as the paper's scripts set it): NF4 in blocks of 64 with
                // double quantization, off only when the job says disable_double_quant.
                int blocksize = q.getBlockSize() > 0 ? q.getBlockSize() : 64;
                boolean doubleQuant = !q.getDisableDoubleQuant();
                yield new FineTuningMethod.Qlora(
                        lora(q.getLora(), defaultTargets), blocksize, doubleQuant);
            }
            case ADAPTER ->
                    FineTuningMethod.Adapter.fromJob(
                            spec.getAdapter().getPlacement(),
                            spec.getAdapter().getBottleneckSize(),
                            spec.getAdapter().getReductionFactor(),
                            spec.getAdapter().getActivation(),
                            spec.getAdapter().getDropout());
            case PREFIX ->
                    new FineTuningMethod.Prefix(
                            spec.getPrefix().getNumVirtualTokens() > 0
                                    ? spec.getPrefix().getNumVirtualTokens()
                                    : 20,
                            spec.getPrefix().getProjectionHiddenSize());
            case PROMPT -> prompt(spec.getPrompt(), tokenize);
            case P_TUNING -> {
                var p = spec.getPTuning();
                yield new FineTuningMethod.PTuning(
                        p.getNumVirtualTokens() > 0 ? p.getNumVirtualTokens() : 20,
                        p.getEncoderType().isEmpty()
                                ? FineTuningMethod.PTuning.Encoder.MLP
                                : FineTuningMethod.PTuning.Encoder.valueOf(
                                        p.getEncoderType().toUpperCase(Locale.ROOT)),
                        p.getEncoderHiddenSize(),
                        (float) p.getEncoderDropout());
            }
        };
    }

    /**
     * Prompt tuning with the job's init: the text's token ids (special tokens included, as PEFT
     * tokenizes {@code prompt_tuning_init_text}) when it gives a text, rows drawn from the
     * vocabulary for "vocab", random vectors otherwise.
     */
    private static FineTuningMethod.Prompt prompt(
            PromptTuningParams p, Function<String, List<Integer>> tokenize) {
        int n = p.getNumVirtualTokens() > 0 ? p.getNumVirtualTokens() : 20;
        String init = p.getInit().toLowerCase(Locale.ROOT);
        if (!p.getInitText().isBlank() || init.equals("text")) {
            return new FineTuningMethod.Prompt(
                    n, FineTuningMethod.Prompt.Init.TEXT, tokenize.apply(p.getInitText()));
        }
        return new FineTuningMethod.Prompt(
                n,
                init.equals("vocab")
                        ? FineTuningMethod.Prompt.Init.VOCAB
                        : FineTuningMethod.Prompt.Init.RANDOM,
                List.of());
    }

    /** A tokenizer's ids for a text, special tokens included. */
    static Function<String, List<Integer>> tokenIds(HuggingFaceTokenizer tokenizer) {
        return text ->
                java.util.Arrays.stream(tokenizer.encode(text).getIds())
                        .mapToObj(id -> (int) id)
                        .toList();
    }

    /**
     * Writes the adapter a method trains in the layout Python tools load, and says whether there is
     * one: PEFT's LoRA adapter (also QLoRA's), PEFT's prompt-learning adapter (prompt tuning,
     * P-tuning). Full fine-tuning and freezing have none: their model is the whole result.
     */
    static boolean writeAdapter(
            TunableModel model,
            FineTuningMethod method,
            MethodSpec spec,
            String baseModel,
            List<String> labels,
            Path dir)
            throws IOException {
        if (method instanceof FineTuningMethod.Adapter adapter) {
            if (model instanceof SequenceClassifier classifier) {
                AdapterHubAdapter.write(classifier, adapter, baseModel, labels, dir);
            } else {
                AdapterHubAdapter.write((CausalLanguageModel) model, adapter, baseModel, dir);
            }
            return true;
        }
        if (method instanceof FineTuningMethod.Prompt
                || method instanceof FineTuningMethod.PTuning) {
            PeftPromptLearning.write(
                    model,
                    method,
                    baseModel,
                    spec.getPrompt().getInitText().isBlank()
                            ? Optional.empty()
                            : Optional.of(spec.getPrompt().getInitText()),
                    dir);
            return true;
        }
        if (method instanceof FineTuningMethod.Prefix prefix) {
            PeftPrefixTuning.write(model, prefix, baseModel, dir);
            return true;
        }
        Optional<FineTuningMethod.Lora> lora = adapterOf(method);
        if (lora.isEmpty()) {
            return false;
        }
        return model instanceof SequenceClassifier classifier
                ? PeftAdapter.write(classifier, lora.get(), baseModel, dir)
                : PeftAdapter.write((CausalLanguageModel) model, lora.get(), baseModel, dir);
    }

    private static FineTuningMethod.Lora lora(LoraParams l, List<String> defaultTargets) {
        int rank = l.getRank() > 0 ? l.getRank() : 8;
        return new FineTuningMethod.Lora(
                rank,
                l.getAlpha() > 0 ? (float) l.getAlpha() : 2f * rank,
                l.getDropout() > 0 ? (float) l.getDropout() : 0.05f,
                !l.getTargetModulesRegex().isEmpty()
                        ? TargetMatcher.fullMatch(l.getTargetModulesRegex())
                        : TargetMatcher.anyOf(
                                l.getTargetModulesCount() > 0
                                        ? l.getTargetModulesList()
                                        : defaultTargets));
    }

    /**
     * The LoRA adapter a method trains, for the PEFT export: LoRA's own, or the one QLoRA trains on
     * its NF4 base (PEFT saves a QLoRA adapter exactly as a LoRA one; the base's quantization is
     * the loader's business).
     */
    static Optional<FineTuningMethod.Lora> adapterOf(FineTuningMethod method) {
        if (method instanceof FineTuningMethod.Lora lora) {
            return Optional.of(lora);
        }
        if (method instanceof FineTuningMethod.Qlora qlora) {
            return Optional.of(qlora.lora());
        }
        return Optional.empty();
    }

    /**
     * Fails for a base model that is a tuned model whose method could not be merged into its
     * weights (its directory carries {@link MethodState}'s files): training on its weights alone
     * would silently start from the untuned base.
     */
    static void requireMergedBase(String ref, PretrainedModel base) throws IOException {
        Optional<Path> dir = base.directory().filter(MethodState::present);
        if (dir.isPresent()) {
            throw new IllegalArgumentException(
                    "base model '"
                            + ref
                            + "' was tuned with "
                            + MethodState.description(dir.get()).path("method").asText("a method")
                            + ", which cannot be merged into its weights: it can be evaluated,"
                            + " but not fine-tuned further; start from its own base model");
        }
    }

    private List<LabelledText> read(ArtifactRef split, List<String> labels) throws IOException {
        try (InputStream in = store.get(split)) {
            return PreparedSplit.read(in, labels, split.getUri());
        }
    }

    static S3Uri uri(String value) {
        return S3Uri.parse(value);
    }
}
