package io.tuneline.training.worker;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.util.Timestamps;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.S3Uri;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.export.ClassifierWeights;
import io.tuneline.engine.export.PeftAdapter;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.Checkpointing;
import io.tuneline.engine.train.ClassificationLoss;
import io.tuneline.engine.train.ClassifierTrainer;
import io.tuneline.engine.train.LabelledText;
import io.tuneline.engine.train.LearningRateSchedule;
import io.tuneline.engine.train.PreparedSplit;
import io.tuneline.engine.train.TrainingCheckpoint;
import io.tuneline.engine.train.TrainingListener;
import io.tuneline.engine.train.TrainingOutcome;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.engine.train.Validation;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.Hyperparameters;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.MethodSpec;
import io.tuneline.proto.v1.Task;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.proto.v1.TrainingProgress;
import io.tuneline.training.run.RunStore;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.BooleanSupplier;

/**
 * One training attempt of a sequence-classification job: reads the run's input and prepared
 * training split from the object store, fine-tunes the base model with the job's method, reports
 * progress at a bounded rate, and writes the model and {@code result.json}.
 *
 * <p>Prepared splits are JSON Lines of {@code {"text": ..., "label": ...}} with labels from {@code
 * DatasetPrepared.labels}.
 */
public final class ClassificationRun {

    /** At most one progress event per interval, plus the last step. */
    static final long PROGRESS_INTERVAL_MS = 2000;

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
        TrainingSettings settings = settings(job.getHyperparameters());
        String ref = job.getBaseModel().getRef();
        PretrainedModel base = ModelCatalog.resolve(ref, store::download, scratch);
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
        SequenceClassifier classifier =
                new SequenceClassifier(new BertEncoder(base.config()), labels.size(), 0.1f);
        String runId = jobId + "-a" + attempt;
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
            base.loadInto(classifier.encoder());
            model.setBlock(classifier);
            FineTuningMethod method = method(job.getMethod());
            ParameterCounts counts = method.apply(classifier, model.getNDManager());

            RunCheckpoints checkpoints = new RunCheckpoints(store, jobId);
            Optional<Path> resumeFrom = checkpoints.fetchLatest(scratch.resolve("resume"));
            resumeFrom.ifPresent(
                    dir ->
                            System.out.printf(
                                    "attempt %d of %s resumes from checkpoint %s%n",
                                    attempt, jobId, dir.getFileName()));
            MetricsLog metricsLog = new MetricsLog(store, jobId);
            if (resumeFrom.isPresent()) {
                metricsLog.resumeAt(TrainingCheckpoint.state(resumeFrom.get()).step());
            }
            Checkpointing checkpointing =
                    new Checkpointing(
                            scratch.resolve("checkpoints"),
                            checkpointEvery(job.getHyperparameters()),
                            resumeFrom,
                            (dir, state) -> {
                                // The log first: once latest.json names this checkpoint, the
                                // curve up to its step must already be stored.
                                metricsLog.store();
                                checkpoints.publish(dir, state);
                            },
                            stopRequested);

            long[] lastSent = {0};
            TrainingListener.StepReport[] last = {null};
            TrainingOutcome outcome =
                    new ClassifierTrainer(tokenizer, objective(job.getHyperparameters(), labels))
                            .train(
                                    model,
                                    classifier,
                                    train,
                                    settings,
                                    validation,
                                    r -> {
                                        last[0] = r;
                                        metricsLog.add(r);
                                        long now = System.currentTimeMillis();
                                        // Validation points are rare and each one matters.
                                        if (now - lastSent[0] >= PROGRESS_INTERVAL_MS
                                                || r.step() == r.totalSteps()
                                                || r.validationLoss().isPresent()) {
                                            lastSent[0] = now;
                                            progress.publish(progress(jobId, runId, r, runtime));
                                        }
                                    },
                                    checkpointing);

            String prefix = RunStore.runPrefix(jobId) + "model/";
            List<ArtifactRef> files = new ArrayList<>();
            // A Hugging Face directory: Python reads the encoder with AutoModel, and the catalogue
            // takes it as the base model of the next fine-tuning.
            Path out = scratch.resolve("model");
            ObjectNode provenance = JSON.createObjectNode();
            provenance.put("base_model", ref);
            provenance.put("method", job.getMethod().getKindCase().name());
            ClassifierWeights.writeDirectory(classifier, labels, tokenizerFile, provenance, out);
            files.add(
                    upload(
                            out.resolve(ClassifierWeights.WEIGHTS),
                            prefix + ClassifierWeights.WEIGHTS,
                            "application/octet-stream"));
            // LoRA: the adapter alone as PEFT saves it, for Python users
            // (PeftModel.from_pretrained).
            Path adapter = scratch.resolve("adapter");
            if (method instanceof FineTuningMethod.Lora lora
                    && PeftAdapter.write(
                            classifier, lora, ModelCatalog.huggingFaceName(ref), adapter)) {
                files.add(
                        upload(
                                adapter.resolve("adapter_config.json"),
                                prefix + "adapter/adapter_config.json",
                                "application/json"));
                files.add(
                        upload(
                                adapter.resolve("adapter_model.safetensors"),
                                prefix + "adapter/adapter_model.safetensors",
                                "application/octet-stream"));
            }
            files.add(
                    upload(
                            out.resolve(ClassifierWeights.CONFIG),
                            prefix + ClassifierWeights.CONFIG,
                            "application/json"));
            files.add(
                    upload(
                            out.resolve(ClassifierWeights.TOKENIZER),
                            prefix + ClassifierWeights.TOKENIZER,
                            "application/json"));

            long size = files.stream().mapToLong(ArtifactRef::getSizeBytes).sum();
            TrainingCompleted.Builder completed =
                    TrainingCompleted.newBuilder().setMetricsLog(metricsLog.store());
            outcome.validationLoss().ifPresent(completed::setFinalValidationLoss);
            TrainingCompleted result =
                    completed
                            .setJobId(jobId)
                            .setRunId(runId)
                            .setModel(
                                    ArtifactRef.newBuilder()
                                            .setUri(store.uri(prefix).toString())
                                            .setSha256(files.get(0).getSha256())
                                            .setSizeBytes(size))
                            .addAllModelFiles(files)
                            .setFinalLoss(outcome.finalLoss())
                            .setSteps(outcome.steps())
                            .setEpochs(last[0] == null ? 0 : last[0].epoch())
                            .setDurationSeconds((System.currentTimeMillis() - started) / 1000.0)
                            .setDevice(runtime.deviceName())
                            .setTrainableParameters(counts.trainable())
                            .setTotalParameters(counts.total())
                            .setCompletedAt(Timestamps.now())
                            .build();
            runs.writeResult(result);
            return result;
        }
    }

    ArtifactRef upload(Path file, String key, String contentType) {
        return store.put(store.uri(key), file, contentType);
    }

    static TrainingProgress progress(
            String jobId, String runId, TrainingListener.StepReport r, EngineRuntime runtime) {
        Runtime rt = Runtime.getRuntime();
        TrainingProgress.Builder p =
                TrainingProgress.newBuilder()
                        .setJobId(jobId)
                        .setRunId(runId)
                        .setStep(r.step())
                        .setTotalSteps(r.totalSteps())
                        .setEpoch(r.epoch())
                        .setLoss(r.loss())
                        .setLearningRate(r.learningRate())
                        .setTokensPerSecond(r.tokensPerSecond())
                        .setEtaSeconds(r.etaSeconds())
                        .setDevice(runtime.deviceName())
                        .setDeviceMemoryBytes(rt.totalMemory() - rt.freeMemory())
                        .setReportedAt(Timestamps.now());
        r.validationLoss().ifPresent(p::setValidationLoss);
        return p.build();
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

    /** Default checkpoint interval: often enough to lose little, rarely enough to cost little. */
    static final long DEFAULT_CHECKPOINT_EVERY = 50;

    static long checkpointEvery(Hyperparameters h) {
        return h.getCheckpointEverySteps() > 0
                ? h.getCheckpointEverySteps()
                : DEFAULT_CHECKPOINT_EVERY;
    }

    /** The job's hyperparameters with the defaults its comments promise. */
    static TrainingSettings settings(Hyperparameters h) {
        return new TrainingSettings(
                h.getEpochs() > 0 ? h.getEpochs() : 3,
                h.getBatchSize() > 0 ? h.getBatchSize() : 16,
                h.getLearningRate() > 0 ? (float) h.getLearningRate() : 2e-4f,
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

    static FineTuningMethod method(MethodSpec spec) {
        return switch (spec.getKindCase()) {
            case FULL, KIND_NOT_SET -> new FineTuningMethod.Full();
            case FREEZE ->
                    spec.getFreeze().getHeadOnly()
                            ? FineTuningMethod.Freeze.headOnly()
                            : new FineTuningMethod.Freeze(
                                    spec.getFreeze().getTrainTopLayers(),
                                    spec.getFreeze().getTrainEmbeddings(),
                                    spec.getFreeze().getTrainablePatternsList());
            case LORA -> {
                var l = spec.getLora();
                int rank = l.getRank() > 0 ? l.getRank() : 8;
                yield new FineTuningMethod.Lora(
                        rank,
                        l.getAlpha() > 0 ? (float) l.getAlpha() : 2f * rank,
                        l.getDropout() > 0 ? (float) l.getDropout() : 0.05f,
                        l.getTargetModulesCount() > 0
                                ? l.getTargetModulesList()
                                : List.of("query", "value"));
            }
            default ->
                    throw new UnsupportedOperationException(
                            "method "
                                    + spec.getKindCase()
                                    + " is not trained by this worker yet; use full, freeze or lora");
        };
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
