package io.tuneline.training.worker;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.S3Uri;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.export.ClassifierWeights;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.JobMethods;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.method.Precision;
import io.tuneline.engine.model.ClassifierHead;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.Checkpointing;
import io.tuneline.engine.train.ClassificationLoss;
import io.tuneline.engine.train.ClassifierTrainer;
import io.tuneline.engine.train.LabelledText;
import io.tuneline.engine.train.PreparedSplit;
import io.tuneline.engine.train.TrainingOutcome;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.engine.train.Validation;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.Hyperparameters;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.Task;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.training.run.RunStore;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
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
        TrainingSettings settings = JobSettings.settings(job.getHyperparameters(), job.getMethod());
        String ref = job.getBaseModel().getRef();
        StartupMarks.mark("data read");
        PretrainedModel base = ModelCatalog.resolve(ref, store::download, scratch);
        StartupMarks.mark("base model fetched");
        JobSettings.requireMergedBase(ref, base);
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
        StartupMarks.mark("libtorch loaded");
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
            // QLoRA: the base's linear weights go to NF4 as they are read, so initializing the
            // classifier never allocates them in fp32.
            base.initializeAndLoad(
                    classifier,
                    model.getNDManager(),
                    settings.maxSeqLength(),
                    JobMethods.nf4Loading(job.getMethod()));
            model.setBlock(classifier);
            StartupMarks.mark("model loaded");
            FineTuningMethod method =
                    JobSettings.method(
                            job.getMethod(),
                            classifier.defaultLoraTargets(),
                            JobSettings.tokenIds(tokenizer));
            ParameterCounts counts = method.apply(classifier, model.getNDManager());

            Attempt run =
                    new Attempt(
                            store, progress, jobId, input.getJobId(), attempt, runtime, started);
            Precision precision = run.applyPrecision(job.getHyperparameters(), classifier);
            TrainingSettings runSettings = JobSettings.forPrecision(settings, precision);
            Checkpointing checkpointing =
                    run.checkpointing(scratch, job.getHyperparameters(), stopRequested);
            TrainingOutcome outcome;
            try (Replicas replicas =
                    Replicas.load(
                            jobId,
                            runtime.devices(job.getResources().getGpus()),
                            job.getResources().getGpus(),
                            device -> {
                                SequenceClassifier r =
                                        new SequenceClassifier(
                                                new BertEncoder(encoderConfig(base, job)),
                                                labels.size(),
                                                0.1f,
                                                head);
                                Model m =
                                        Model.newInstance(
                                                "tuneline-" + jobId + "-" + device,
                                                device,
                                                EngineRuntime.ENGINE);
                                base.initializeAndLoad(
                                        r,
                                        m.getNDManager(),
                                        settings.maxSeqLength(),
                                        JobMethods.nf4Loading(job.getMethod()));
                                m.setBlock(r);
                                JobSettings.method(
                                                job.getMethod(),
                                                r.defaultLoraTargets(),
                                                JobSettings.tokenIds(tokenizer))
                                        .apply(r, m.getNDManager());
                                precision.apply(r);
                                return m;
                            })) {
                outcome =
                        new ClassifierTrainer(
                                        tokenizer, objective(job.getHyperparameters(), labels))
                                .train(
                                        model,
                                        classifier,
                                        replicas.blocks(SequenceClassifier.class),
                                        train,
                                        runSettings,
                                        validation,
                                        run,
                                        checkpointing);
            }

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
            List<ArtifactRef> files =
                    run.uploadTuned(
                            classifier,
                            method,
                            job.getMethod(),
                            ref,
                            labels,
                            out,
                            ClassifierWeights.WEIGHTS,
                            others,
                            scratch.resolve("adapter"));
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

    /** The base's encoder config, with the job's dropout override when it sets one. */
    private static io.tuneline.engine.model.bert.BertConfig encoderConfig(
            PretrainedModel base, JobRequested job) {
        java.util.OptionalDouble dropout = JobSettings.modelDropout(job.getHyperparameters());
        return dropout.isPresent()
                ? base.config().withDropout((float) dropout.getAsDouble())
                : base.config();
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
