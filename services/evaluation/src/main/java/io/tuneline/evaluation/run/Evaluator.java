package io.tuneline.evaluation.run;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.datatype.jdk8.Jdk8Module;
import com.google.protobuf.util.Timestamps;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.tuneline.common.messaging.EventPublisher;
import io.tuneline.common.observability.MetricNames;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.S3Uri;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.model.CausalLmCheckpoint;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.LabelledText;
import io.tuneline.engine.train.PreparedSplit;
import io.tuneline.evaluation.gate.GateVerdict;
import io.tuneline.evaluation.gate.ProductionMetrics;
import io.tuneline.evaluation.gate.QualityGateCheck;
import io.tuneline.evaluation.metrics.Bootstrap;
import io.tuneline.evaluation.metrics.CausalLmMetrics;
import io.tuneline.evaluation.metrics.ClassificationMetrics;
import io.tuneline.evaluation.metrics.ClassificationReport;
import io.tuneline.evaluation.metrics.Estimate;
import io.tuneline.evaluation.report.EvaluationReport;
import io.tuneline.evaluation.report.ReportRenderer;
import io.tuneline.evaluation.robustness.PerturbationKind;
import io.tuneline.evaluation.robustness.TextPerturber;
import io.tuneline.evaluation.scenario.RecordedRequests;
import io.tuneline.evaluation.scenario.ScenarioRunner;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.AttackKind;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.EmbeddingAttack;
import io.tuneline.proto.v1.EvaluationCompleted;
import io.tuneline.proto.v1.EvaluationSpec;
import io.tuneline.proto.v1.GateResult;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.JobStatus;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.proto.v1.MetricValue;
import io.tuneline.proto.v1.Perturbation;
import io.tuneline.proto.v1.RobustnessResult;
import io.tuneline.proto.v1.ScenarioResult;
import io.tuneline.proto.v1.Stage;
import io.tuneline.proto.v1.Task;
import io.tuneline.proto.v1.TrainingCompleted;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicReference;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.eclipse.microprofile.reactive.messaging.Channel;
import org.eclipse.microprofile.reactive.messaging.Emitter;
import org.jboss.logging.Logger;

/**
 * Evaluates a trained classifier against the base model on the held-out test split: metrics with
 * bootstrap intervals, robustness under seeded perturbations, the job's quality gate, and the
 * report in JSON, Markdown and HTML next to the model.
 */
@ApplicationScoped
public class Evaluator {
    static final String ERROR = "EVALUATION_FAILED";
    private static final Logger LOG = Logger.getLogger(Evaluator.class);
    private static final ObjectMapper JSON =
            new ObjectMapper()
                    .registerModule(new Jdk8Module())
                    .enable(SerializationFeature.INDENT_OUTPUT);

    private final ArtifactStore store;
    private final EventPublisher publisher;
    private final Emitter<byte[]> status;
    private final Emitter<byte[]> completed;
    private final MeterRegistry registry;
    private final Map<String, AtomicReference<Double>> headline = new ConcurrentHashMap<>();

    @Inject private final ProductionMetrics productionMetrics;
    private final ScenarioRunner scenarios;

    public Evaluator(
            ArtifactStore store,
            EventPublisher publisher,
            @Channel("job-status") Emitter<byte[]> status,
            @Channel("evaluations-completed") Emitter<byte[]> completed,
            MeterRegistry registry,
            @ConfigProperty(name = "tuneline.evaluation.registry.url") Optional<URI> registryUrl,
            @ConfigProperty(name = "tuneline.evaluation.registry.token")
                    Optional<String> registryToken,
            ScenarioRunner scenarios) {
        this.productionMetrics = new ProductionMetrics(registryUrl, registryToken);
        this.scenarios = scenarios;
        this.store = store;
        this.publisher = publisher;
        this.status = status;
        this.completed = completed;
        this.registry = registry;
    }

    /**
     * Where the reports of {@code training}'s run go: {@code reports/{jobId}/}, or for one method
     * of a comparison {@code reports/{jobId}/{method}/}, so each method is evaluated once on its
     * own.
     */
    public static String reportPrefix(TrainingCompleted training) {
        String method = training.getComparedMethod();
        return "reports/" + training.getJobId() + "/" + (method.isEmpty() ? "" : method + "/");
    }

    public void evaluate(TrainingCompleted training) {
        String jobId = training.getJobId();
        String about =
                training.getComparedMethod().isEmpty() ? "" : training.getComparedMethod() + ": ";
        String prefix = reportPrefix(training);
        if (store.exists(store.uri(prefix + "evaluation.json"))) {
            LOG.infof("%salready evaluated (%sevaluation.json exists); skipped", about, prefix);
            return;
        }
        publisher.sendAndWait(
                status,
                JobStatusChanged.newBuilder()
                        .setJobId(jobId)
                        .setStatus(JobStatus.JOB_STATUS_EVALUATING)
                        .setStage(Stage.STAGE_EVALUATION)
                        .setMessage(
                                about + "evaluating the tuned and the base model on the test split")
                        .setChangedAt(Timestamps.now())
                        .build());
        Timer.Sample timer = Timer.start(registry);
        try {
            EvaluationCompleted event = run(training);
            publisher.sendAndWait(completed, event);
            LOG.infof(
                    "%sevaluated: %s %.4f tuned vs %.4f base; gate %s",
                    about,
                    event.getPrimaryMetric(),
                    event.getTunedMetricsOrThrow(event.getPrimaryMetric()).getValue(),
                    event.getBaseMetricsOrDefault(
                                    event.getPrimaryMetric(), MetricValue.getDefaultInstance())
                            .getValue(),
                    event.getGate().getPassed()
                            ? "passed"
                            : "failed: " + event.getGate().getReasonsList());
        } catch (RuntimeException | IOException e) {
            String message = e.getMessage() == null ? e.toString() : e.getMessage();
            LOG.warnf(e, "evaluation failed: %s", message);
            publisher.sendAndWait(
                    status,
                    JobFailed.newBuilder()
                            .setJobId(jobId)
                            .setStage(Stage.STAGE_EVALUATION)
                            .setErrorCode(ERROR)
                            .setMessage(about + "evaluation failed: " + message)
                            .setFailedAt(Timestamps.now())
                            .build());
        } finally {
            timer.stop(registry.timer(MetricNames.EVALUATION_DURATION));
        }
    }

    EvaluationCompleted run(TrainingCompleted training) throws IOException {
        String jobId = training.getJobId();
        JobRequested job = training.getJob();
        DatasetPrepared dataset = training.getDataset();
        if (job.getTask() == Task.TASK_CAUSAL_LM) {
            return runCausalLm(training);
        }
        if (job.getTask() != Task.TASK_SEQUENCE_CLASSIFICATION) {
            throw new EvaluationFailedException(
                    "task "
                            + job.getTask()
                            + " is not evaluated yet; only TASK_SEQUENCE_CLASSIFICATION and"
                            + " TASK_CAUSAL_LM");
        }
        List<String> labels = dataset.getLabelsList();
        ArtifactRef split = heldOut(dataset);
        List<String> texts = new ArrayList<>();
        int[] truth = readSplit(split, labels, texts);
        EvaluationSpec spec = job.getEvaluation();
        String primary = spec.getPrimaryMetric().isBlank() ? "macro_f1" : spec.getPrimaryMetric();
        int samples = bootstrapSamples(spec);
        int maxLength = maxLength(job);
        List<RecordedRequests.Classify> recorded = List.of();
        if (spec.hasScenario() && !spec.getScenario().getRequests().isBlank()) {
            String uri = spec.getScenario().getRequests();
            try (InputStream in = recordedRequests(uri)) {
                recorded =
                        RecordedRequests.classify(
                                in, uri, ScenarioRunner.maxRequests(spec.getScenario()));
            } catch (IllegalArgumentException e) {
                throw new EvaluationFailedException(e.getMessage(), e);
            }
        }

        Path work = Files.createTempDirectory("evaluation-" + jobId);
        try {
            String ref = job.getBaseModel().getRef();
            PretrainedModel base = ModelCatalog.resolve(ref, store::download, work.resolve("base"));
            if (base.architecture() != PretrainedModel.Architecture.BERT) {
                throw new EvaluationFailedException(
                        "base model '" + ref + "' is not a BERT-family encoder");
            }
            Path tokenizer = work.resolve("tokenizer.json");
            try (InputStream in = base.tokenizer().open()) {
                Files.copy(in, tokenizer);
            }
            Path weights = work.resolve("model.safetensors");
            ArtifactRef weightsRef =
                    training.getModelFilesList().stream()
                            .filter(f -> f.getUri().endsWith("/model.safetensors"))
                            .findFirst()
                            .orElseThrow(
                                    () ->
                                            new EvaluationFailedException(
                                                    "the training result lists no model.safetensors"));
            try (InputStream in = store.get(weightsRef)) {
                Files.copy(in, weights);
            }
            // A method that cannot be merged (prompts, prefixes, bottleneck adapters) travels as
            // its own state beside the weights; ClassifierScorer rebuilds base + method from it.
            for (ArtifactRef f : training.getModelFilesList()) {
                String name = f.getUri().substring(f.getUri().lastIndexOf('/') + 1);
                if (!f.getUri().contains("/adapter/")
                        && List.of(MethodState.CONFIG, MethodState.WEIGHTS).contains(name)) {
                    try (InputStream in = store.get(f)) {
                        Files.copy(in, work.resolve(name));
                    }
                }
            }
            EngineRuntime runtime = EngineRuntime.start(0);

            double[][] tunedProbs;
            double[][] recordedProbs = new double[0][];
            List<EvaluationReport.Robustness> robustness = new ArrayList<>();
            try (ClassifierScorer tuned =
                    ClassifierScorer.load(
                            runtime,
                            base,
                            tokenizer,
                            labels.size(),
                            maxLength,
                            Optional.of(weights))) {
                tunedProbs = tuned.probabilities(texts);
                // The offline answers to the recorded requests, with the model evaluated here.
                List<String> recordedTexts = new ArrayList<>();
                recorded.forEach(r -> recordedTexts.addAll(r.inputs()));
                if (!recordedTexts.isEmpty()) {
                    recordedProbs = tuned.probabilities(recordedTexts);
                }
                double clean = ClassificationMetrics.compute(labels, truth, tunedProbs).accuracy();
                for (Perturbation p : spec.getPerturbationsList()) {
                    robustness.add(robustness(tuned, labels, texts, truth, tunedProbs, clean, p));
                }
                for (EmbeddingAttack a : spec.getAttacksList()) {
                    robustness.add(attack(tuned, labels, texts, truth, tunedProbs, clean, a));
                }
            }
            Optional<Map<String, Estimate>> baseMetrics = Optional.empty();
            if (!spec.getSkipBaseModel()) {
                try (ClassifierScorer baseScorer =
                        ClassifierScorer.load(
                                runtime,
                                base,
                                tokenizer,
                                labels.size(),
                                maxLength,
                                Optional.empty())) {
                    baseMetrics =
                            Optional.of(
                                    Bootstrap.classification(
                                            labels,
                                            truth,
                                            baseScorer.probabilities(texts),
                                            samples,
                                            7));
                }
            }
            ClassificationReport detail = ClassificationMetrics.compute(labels, truth, tunedProbs);
            Map<String, Estimate> tunedMetrics =
                    Bootstrap.classification(labels, truth, tunedProbs, samples, 7);
            Optional<ScenarioResult> scenario = Optional.empty();
            if (spec.hasScenario()) {
                String candidate = ScenarioRunner.candidateName(training) + ":candidate";
                List<ScenarioRunner.Request> requests = new ArrayList<>();
                if (recorded.isEmpty()) {
                    List<String> predicted = new ArrayList<>();
                    for (double[] p : tunedProbs) {
                        predicted.add(labels.get(ClassificationMetrics.argMax(p)));
                    }
                    requests = ScenarioRunner.classify(candidate, texts, predicted);
                } else {
                    int row = 0;
                    for (RecordedRequests.Classify r : recorded) {
                        List<String> offline = new ArrayList<>();
                        for (int i = 0; i < r.inputs().size(); i++) {
                            offline.add(
                                    labels.get(ClassificationMetrics.argMax(recordedProbs[row++])));
                        }
                        requests.add(RecordedRequests.request(candidate, r, offline));
                    }
                }
                scenario = Optional.of(scenarios.run(training, spec.getScenario(), requests));
            }
            return finish(
                    training,
                    primary,
                    tunedMetrics,
                    baseMetrics,
                    detail,
                    robustness,
                    texts.size(),
                    List.of(),
                    scenario);
        } finally {
            try (var files = Files.walk(work)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /** How many greedy answers the report shows. */
    static final int REPORTED_GENERATIONS = 5;

    /**
     * A causal LM: perplexity, token accuracy and loss of the tuned and the base model on the test
     * split (the validation split when there is none), and for instruction data exact match and
     * token F1 of greedy answers; each with a bootstrap interval over examples.
     */
    /** The split the model is judged on: test, or validation when the job kept no test split. */
    private static ArtifactRef heldOut(DatasetPrepared dataset) {
        ArtifactRef split =
                dataset.hasTest() && !dataset.getTest().getUri().isEmpty()
                        ? dataset.getTest()
                        : dataset.getValidation();
        if (split.getUri().isEmpty()) {
            throw new EvaluationFailedException(
                    "the prepared dataset has no test or validation split to evaluate on; give the job a split.test fraction");
        }
        return split;
    }

    /**
     * The scenario's recorded requests ({@code ScenarioSpec.requests}) from the store.
     *
     * @throws EvaluationFailedException when the URI is not {@code s3://bucket/key} or names no
     *     object
     */
    private InputStream recordedRequests(String uri) {
        S3Uri at;
        try {
            at = S3Uri.parse(uri);
        } catch (IllegalArgumentException e) {
            throw new EvaluationFailedException(
                    "evaluation.scenario.requests: " + e.getMessage(), e);
        }
        if (!store.exists(at)) {
            throw new EvaluationFailedException(
                    "evaluation.scenario.requests: " + uri + " does not exist in the store");
        }
        return store.get(at);
    }

    /** Tokens per scenario completion that names no budget: {@code max_tokens}, else 16. */
    private static int scenarioMaxTokens(EvaluationSpec spec) {
        return spec.getScenario().getMaxTokens() > 0 ? spec.getScenario().getMaxTokens() : 16;
    }

    private static int bootstrapSamples(EvaluationSpec spec) {
        return spec.getBootstrapSamples() == 0
                ? Bootstrap.DEFAULT_SAMPLES
                : Math.max(0, spec.getBootstrapSamples());
    }

    private static int maxLength(JobRequested job) {
        int m = job.getHyperparameters().getMaxSeqLength();
        return m > 0 ? m : 128;
    }

    EvaluationCompleted runCausalLm(TrainingCompleted training) throws IOException {
        String jobId = training.getJobId();
        JobRequested job = training.getJob();
        DatasetPrepared dataset = training.getDataset();
        ArtifactRef split = heldOut(dataset);
        EvaluationSpec spec = job.getEvaluation();
        String primary = spec.getPrimaryMetric().isBlank() ? "perplexity" : spec.getPrimaryMetric();
        int samples = bootstrapSamples(spec);
        int maxLength = maxLength(job);
        List<CausalLmScorer.TestExample> examples;
        try (InputStream in = store.get(split)) {
            examples = CausalLmScorer.read(in, split.getUri());
        } catch (IllegalArgumentException e) {
            throw new EvaluationFailedException(e.getMessage(), e);
        }
        if (examples.isEmpty()) {
            throw new EvaluationFailedException(
                    "the split " + split.getUri() + " has no example of 2 or more tokens");
        }
        boolean instruction = examples.stream().allMatch(e -> e.completion().isPresent());
        List<RecordedRequests.Generate> recorded = List.of();
        if (spec.hasScenario() && !spec.getScenario().getRequests().isBlank()) {
            String uri = spec.getScenario().getRequests();
            try (InputStream in = recordedRequests(uri)) {
                recorded =
                        RecordedRequests.generate(
                                in,
                                uri,
                                ScenarioRunner.maxRequests(spec.getScenario()),
                                scenarioMaxTokens(spec));
            } catch (IllegalArgumentException e) {
                throw new EvaluationFailedException(e.getMessage(), e);
            }
        }

        Path work = Files.createTempDirectory("evaluation-" + jobId);
        try {
            Path tuned = work.resolve("tuned");
            Files.createDirectories(tuned);
            for (ArtifactRef f : training.getModelFilesList()) {
                String uri = f.getUri();
                String name = uri.substring(uri.lastIndexOf('/') + 1);
                // tokenizer_config.json / special_tokens_map.json, when training passed them on,
                // name the end-of-sequence token generation stops at (ModelTokens).
                if (!uri.contains("/adapter/")
                        && (CausalLmCheckpoint.isWeightFile(name)
                                || List.of(
                                                "config.json",
                                                "tokenizer.json",
                                                ModelCatalog.TOKENIZER_CONFIG,
                                                ModelCatalog.SPECIAL_TOKENS_MAP,
                                                MethodState.CONFIG,
                                                MethodState.WEIGHTS)
                                        .contains(name))) {
                    try (InputStream in = store.get(f)) {
                        Files.copy(in, tuned.resolve(name));
                    }
                }
            }
            List<String> missing = new ArrayList<>();
            for (String name : List.of("config.json", "tokenizer.json")) {
                if (!Files.exists(tuned.resolve(name))) {
                    missing.add(name);
                }
            }
            if (!Files.exists(tuned.resolve(CausalLmCheckpoint.WEIGHTS))
                    && !Files.exists(tuned.resolve(CausalLmCheckpoint.INDEX))) {
                missing.add(
                        CausalLmCheckpoint.WEIGHTS
                                + " (or a sharded "
                                + CausalLmCheckpoint.INDEX
                                + ")");
            }
            if (!missing.isEmpty()) {
                throw new EvaluationFailedException(
                        "the training result lists no " + String.join(", ", missing));
            }
            EngineRuntime runtime = EngineRuntime.start(0);
            CausalLmScorer.Result tunedResult =
                    CausalLmScorer.score(runtime, tuned, examples, maxLength, instruction);
            Optional<CausalLmScorer.Result> baseResult = Optional.empty();
            if (!spec.getSkipBaseModel()) {
                PretrainedModel base =
                        ModelCatalog.resolve(
                                job.getBaseModel().getRef(), store::download, work.resolve("base"));
                if (base.architecture() != PretrainedModel.Architecture.GPT2
                        && base.architecture() != PretrainedModel.Architecture.LLAMA) {
                    throw new EvaluationFailedException(
                            "base model '"
                                    + job.getBaseModel().getRef()
                                    + "' is not a GPT-2 or Llama-family model directory");
                }
                baseResult =
                        Optional.of(
                                CausalLmScorer.score(
                                        runtime,
                                        base.directory().orElseThrow(),
                                        examples,
                                        maxLength,
                                        instruction));
            }
            Map<String, Estimate> tunedMetrics =
                    CausalLmMetrics.withIntervals(
                            tunedResult.scores(), tunedResult.answers(), samples, 7);
            Optional<Map<String, Estimate>> baseMetrics =
                    baseResult.map(
                            b ->
                                    CausalLmMetrics.withIntervals(
                                            b.scores(), b.answers(), samples, 7));
            List<EvaluationReport.Generation> generations = new ArrayList<>();
            if (instruction) {
                for (int i = 0; i < Math.min(REPORTED_GENERATIONS, examples.size()); i++) {
                    int at = i;
                    generations.add(
                            new EvaluationReport.Generation(
                                    examples.get(i).prompt().orElse(""),
                                    examples.get(i).completion().orElse(""),
                                    tunedResult.generated().get(i),
                                    baseResult.map(b -> b.generated().get(at))));
                }
            }
            Optional<ScenarioResult> scenario = Optional.empty();
            if (spec.hasScenario()) {
                String candidate = ScenarioRunner.candidateName(training) + ":candidate";
                List<ScenarioRunner.Request> requests;
                try {
                    requests =
                            recorded.isEmpty()
                                    ? CausalLmScorer.scenarioRequests(
                                            candidate,
                                            tuned,
                                            examples,
                                            instruction
                                                    ? Optional.of(tunedResult.generated())
                                                    : Optional.empty(),
                                            maxLength,
                                            scenarioMaxTokens(spec))
                                    : CausalLmScorer.recordedRequests(
                                            runtime,
                                            tuned,
                                            candidate,
                                            recorded,
                                            spec.getScenario().getRequests());
                } catch (IllegalArgumentException e) {
                    throw new EvaluationFailedException(e.getMessage(), e);
                }
                scenario = Optional.of(scenarios.run(training, spec.getScenario(), requests));
            }
            return finish(
                    training,
                    primary,
                    tunedMetrics,
                    baseMetrics,
                    null,
                    List.of(),
                    examples.size(),
                    generations,
                    scenario);
        } finally {
            try (var files = Files.walk(work)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /**
     * The gate, the reports in the store, the headline gauge and the event, for any task.
     *
     * @param detail a classifier's per-class detail; null for a causal LM
     */
    EvaluationCompleted finish(
            TrainingCompleted training,
            String primary,
            Map<String, Estimate> tunedMetrics,
            Optional<Map<String, Estimate>> baseMetrics,
            ClassificationReport detail,
            List<EvaluationReport.Robustness> robustness,
            int examples,
            List<EvaluationReport.Generation> generations,
            Optional<ScenarioResult> scenario)
            throws IOException {
        String jobId = training.getJobId();
        JobRequested job = training.getJob();
        EvaluationSpec spec = job.getEvaluation();
        List<String> notes = new ArrayList<>();
        String modelName =
                job.getRegistration().getModelName().isBlank()
                        ? jobId
                        : job.getRegistration().getModelName();
        Optional<Map<String, Double>> reference;
        if (spec.getGate().getReference()
                        == io.tuneline.proto.v1.GateReference.GATE_REFERENCE_PRODUCTION
                && spec.getGate().getMaxRegressionCount() > 0) {
            Optional<ProductionMetrics.Reference> production;
            try {
                production = productionMetrics.of(modelName);
            } catch (ProductionMetrics.ReferenceUnavailableException e) {
                throw new EvaluationFailedException(e.getMessage(), e);
            }
            production.ifPresent(
                    p ->
                            LOG.infof(
                                    "gate reference: %s version %d (production)",
                                    modelName, p.version()));
            reference = production.map(ProductionMetrics.Reference::metrics);
        } else {
            reference = baseMetrics.map(Evaluator::values);
        }
        GateVerdict verdict =
                QualityGateCheck.check(spec.getGate(), values(tunedMetrics), reference);
        List<String> allNotes = new ArrayList<>(verdict.notes());
        allNotes.addAll(notes);
        List<String> reasons = new ArrayList<>(verdict.reasons());
        List<String> scenarioReasons =
                scenario.map(s -> QualityGateCheck.scenario(spec.getScenario(), s))
                        .orElse(List.of());
        reasons.addAll(scenarioReasons);
        verdict = new GateVerdict(verdict.passed() && scenarioReasons.isEmpty(), reasons, allNotes);
        EvaluationReport report =
                new EvaluationReport(
                        jobId,
                        training.getModel().getUri(),
                        primary,
                        examples,
                        detail,
                        tunedMetrics,
                        baseMetrics,
                        robustness,
                        verdict,
                        lossCurve(training.getMetricsLog()),
                        generations,
                        scenario);

        String prefix = reportPrefix(training);
        ArtifactRef md =
                store.put(
                        store.uri(prefix + "evaluation.md"),
                        ReportRenderer.markdown(report).getBytes(StandardCharsets.UTF_8),
                        "text/markdown; charset=utf-8");
        ArtifactRef html =
                store.put(
                        store.uri(prefix + "evaluation.html"),
                        ReportRenderer.html(report).getBytes(StandardCharsets.UTF_8),
                        "text/html; charset=utf-8");
        ArtifactRef json =
                store.put(
                        store.uri(prefix + "evaluation.json"),
                        JSON.writeValueAsBytes(jsonReport(report, modelName)),
                        "application/json");

        AtomicReference<Double> gauge =
                headline.computeIfAbsent(
                        modelName + "/" + primary,
                        key -> {
                            AtomicReference<Double> ref = new AtomicReference<>(Double.NaN);
                            Gauge.builder(
                                            "tuneline.evaluation.primary.metric",
                                            ref,
                                            AtomicReference::get)
                                    .tag("model", modelName)
                                    .tag("metric", primary)
                                    .register(registry);
                            return ref;
                        });
        gauge.set(
                tunedMetrics.containsKey(primary) ? tunedMetrics.get(primary).value() : Double.NaN);

        EvaluationCompleted.Builder event =
                EvaluationCompleted.newBuilder()
                        .setJobId(jobId)
                        .setTraining(training)
                        .setPrimaryMetric(primary)
                        .setGate(
                                GateResult.newBuilder()
                                        .setPassed(verdict.passed())
                                        .addAllReasons(verdict.reasons()))
                        .setReportJson(json)
                        .setReportMarkdown(md)
                        .setReportHtml(html)
                        .setTestExamples(examples)
                        .setEvaluatedAt(Timestamps.now());
        scenario.ifPresent(event::setScenario);
        tunedMetrics.forEach((k, v) -> event.putTunedMetrics(k, metric(v)));
        baseMetrics.ifPresent(b -> b.forEach((k, v) -> event.putBaseMetrics(k, metric(v))));
        robustness.forEach(
                r ->
                        event.addRobustness(
                                RobustnessResult.newBuilder()
                                        .setName(r.name())
                                        .setAccuracy(r.accuracy())
                                        .setAccuracyDrop(r.accuracyDrop())
                                        .setAttackSuccessRate(r.attackSuccessRate())));
        return event.build();
    }

    private static EvaluationReport.Robustness robustness(
            ClassifierScorer scorer,
            List<String> labels,
            List<String> texts,
            int[] truth,
            double[][] cleanProbs,
            double clean,
            Perturbation p) {
        PerturbationKind kind =
                PerturbationKind.valueOf(p.getKind().name().replace("PERTURBATION_KIND_", ""));
        TextPerturber perturber =
                new TextPerturber(kind, p.getRate(), p.getSeed() == 0 ? 42 : p.getSeed());
        List<String> noisy = new ArrayList<>();
        for (int i = 0; i < texts.size(); i++) {
            noisy.add(perturber.apply(texts.get(i), i));
        }
        return outcome(
                perturber.name(), labels, truth, cleanProbs, clean, scorer.probabilities(noisy));
    }

    /** Accuracy under an FGSM or PGD attack on the word embeddings. */
    private static EvaluationReport.Robustness attack(
            ClassifierScorer scorer,
            List<String> labels,
            List<String> texts,
            int[] truth,
            double[][] cleanProbs,
            double clean,
            EmbeddingAttack a) {
        int steps = a.getSteps() > 0 ? a.getSteps() : 10;
        String name =
                a.getKind() == AttackKind.ATTACK_KIND_FGSM
                        ? String.format(Locale.ROOT, "fgsm eps=%s", a.getEpsilon())
                        : String.format(Locale.ROOT, "pgd eps=%s steps=%d", a.getEpsilon(), steps);
        return outcome(
                name,
                labels,
                truth,
                cleanProbs,
                clean,
                scorer.attacked(texts, truth, a.getKind(), a.getEpsilon(), steps));
    }

    /**
     * Accuracy, its drop from clean, and the attack success rate: the share of examples the model
     * got right on clean input that it gets wrong under attack.
     */
    private static EvaluationReport.Robustness outcome(
            String name,
            List<String> labels,
            int[] truth,
            double[][] cleanProbs,
            double clean,
            double[][] probs) {
        double accuracy = ClassificationMetrics.compute(labels, truth, probs).accuracy();
        int correctBefore = 0;
        int flipped = 0;
        for (int i = 0; i < truth.length; i++) {
            if (argMax(cleanProbs[i]) == truth[i]) {
                correctBefore++;
                if (argMax(probs[i]) != truth[i]) {
                    flipped++;
                }
            }
        }
        return new EvaluationReport.Robustness(
                name,
                accuracy,
                clean - accuracy,
                correctBefore == 0 ? 0 : (double) flipped / correctBefore);
    }

    /**
     * The training loss curve from the worker's metrics log ({@code metrics.jsonl}); empty when the
     * run has none. A log that cannot be read costs the chart, not the evaluation.
     */
    private List<EvaluationReport.LossPoint> lossCurve(ArtifactRef log) {
        if (log.getUri().isEmpty()) {
            return List.of();
        }
        List<EvaluationReport.LossPoint> points = new ArrayList<>();
        try (InputStream in = store.get(log);
                java.io.BufferedReader reader =
                        new java.io.BufferedReader(
                                new java.io.InputStreamReader(in, StandardCharsets.UTF_8))) {
            String line;
            while ((line = reader.readLine()) != null) {
                if (line.isBlank()) {
                    continue;
                }
                var row = JSON.readTree(line);
                points.add(
                        new EvaluationReport.LossPoint(
                                row.path("step").asLong(),
                                row.path("loss").asDouble(),
                                row.has("validation_loss")
                                        ? Optional.of(row.path("validation_loss").asDouble())
                                        : Optional.empty()));
            }
        } catch (IOException | RuntimeException e) {
            LOG.warnf(
                    "training metrics log %s not readable (%s); the report has no loss curve",
                    log.getUri(), e.getMessage());
            return List.of();
        }
        return points;
    }

    private int[] readSplit(ArtifactRef split, List<String> labels, List<String> texts)
            throws IOException {
        List<LabelledText> examples;
        try (InputStream in = store.get(split)) {
            examples = PreparedSplit.read(in, labels, split.getUri());
        } catch (IllegalArgumentException e) {
            throw new EvaluationFailedException(e.getMessage(), e);
        }
        examples.forEach(e -> texts.add(e.text()));
        return examples.stream().mapToInt(LabelledText::label).toArray();
    }

    private static Map<String, Object> jsonReport(EvaluationReport r, String modelName) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("job_id", r.jobId());
        m.put("model_name", modelName);
        m.put("model", r.model());
        m.put("primary_metric", r.primaryMetric());
        m.put("test_examples", r.examples());
        m.put("tuned", r.tuned());
        m.put("base", r.base().orElse(null));
        m.put("difference", r.differences());
        if (r.tunedDetail() != null) {
            m.put("per_class", r.tunedDetail().perClass());
            m.put("labels", r.tunedDetail().labels());
            m.put("confusion_matrix", r.tunedDetail().confusion());
        }
        if (!r.generations().isEmpty()) {
            m.put("generations", r.generations());
        }
        m.put("robustness", r.robustness());
        r.scenario()
                .ifPresent(
                        sc -> {
                            Map<String, Object> scenario = new LinkedHashMap<>();
                            scenario.put("serving_url", sc.getServingUrl());
                            scenario.put("model", sc.getModel());
                            scenario.put("requests", sc.getRequests());
                            scenario.put("errors", sc.getErrors());
                            scenario.put("error_rate", sc.getErrorRate());
                            scenario.put("p50_ms", sc.getP50Ms());
                            scenario.put("p95_ms", sc.getP95Ms());
                            scenario.put("p99_ms", sc.getP99Ms());
                            scenario.put("requests_per_second", sc.getRequestsPerSecond());
                            scenario.put("wall_seconds", sc.getWallSeconds());
                            scenario.put("agreement", sc.getAgreement());
                            scenario.put("examples", sc.getExamplesList());
                            m.put("scenario", scenario);
                        });
        m.put("gate", r.gate());
        return m;
    }

    private static Map<String, Double> values(Map<String, Estimate> estimates) {
        Map<String, Double> v = new LinkedHashMap<>();
        estimates.forEach((k, e) -> v.put(k, e.value()));
        return v;
    }

    private static MetricValue metric(Estimate e) {
        return MetricValue.newBuilder()
                .setValue(e.value())
                .setCiLower(e.lower())
                .setCiUpper(e.upper())
                .build();
    }

    private static int argMax(double[] p) {
        int best = 0;
        for (int i = 1; i < p.length; i++) {
            if (p[i] > p[best]) {
                best = i;
            }
        }
        return best;
    }

    static String format(double v) {
        return String.format(Locale.ROOT, "%.4f", v);
    }
}
