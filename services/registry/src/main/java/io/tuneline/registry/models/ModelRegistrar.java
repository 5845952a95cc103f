package io.tuneline.registry.models;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageOrBuilder;
import com.google.protobuf.util.JsonFormat;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.EvaluationCompleted;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.RegistrationSpec;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.registry.db.RegistryDatabase;
import io.tuneline.registry.error.RegistryException;
import io.tuneline.registry.jobs.EventSummaries;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.persistence.EntityManager;
import jakarta.persistence.LockModeType;
import jakarta.transaction.Transactional;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Pattern;

/** Turns an evaluated job into a new model version, once per job. */
@ApplicationScoped
public class ModelRegistrar {
    /** Model names appear in URLs and object keys: keep them to a safe alphabet. */
    public static final Pattern MODEL_NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");

    private static final JsonFormat.Printer PROTO_JSON =
            JsonFormat.printer().preservingProtoFieldNames().omittingInsignificantWhitespace();

    private final RegistryDatabase db;
    private final StageTransitions transitions;
    private final ObjectMapper json;

    @Inject
    public ModelRegistrar(RegistryDatabase db, StageTransitions transitions, ObjectMapper json) {
        this.db = db;
        this.transitions = transitions;
        this.json = json;
    }

    /** What registration decided for a job. */
    public sealed interface Outcome {
        /** A version exists for the job; {@code created} is false when it already existed. */
        record Registered(
                String model,
                long version,
                String stage,
                List<String> aliases,
                ArtifactRef primaryFile,
                ArtifactRef report,
                boolean gatePassed,
                boolean created)
                implements Outcome {}

        /** The job asked not to be registered. */
        record Skipped(String reason) implements Outcome {}

        /** The quality gate failed and the job did not ask to register anyway. */
        record GateFailed(List<String> reasons) implements Outcome {}
    }

    @Transactional
    public Outcome register(EvaluationCompleted evaluation) {
        return register(evaluation, Map.of());
    }

    /**
     * @param extra further files recorded with the version by name, e.g. a method comparison's
     *     {@code comparison.json} and {@code comparison.html}
     */
    @Transactional
    public Outcome register(EvaluationCompleted evaluation, Map<String, ArtifactRef> extra) {
        TrainingCompleted training = evaluation.getTraining();
        JobRequested job = training.getJob();
        RegistrationSpec spec = job.getRegistration();
        if (spec.getDisabled()) {
            return new Outcome.Skipped("registration is disabled for this job");
        }
        boolean gatePassed = evaluation.getGate().getPassed();
        if (!gatePassed && !spec.getRegisterOnGateFailure()) {
            return new Outcome.GateFailed(evaluation.getGate().getReasonsList());
        }
        EntityManager em = db.em();
        String jobId = evaluation.getJobId();
        List<ModelVersion> existing =
                em.createQuery("from ModelVersion v where v.jobId = :job", ModelVersion.class)
                        .setParameter("job", jobId)
                        .getResultList();
        if (!existing.isEmpty()) {
            ModelVersion v = existing.get(0);
            RegisteredModel model = em.find(RegisteredModel.class, v.modelId);
            return registered(evaluation, model, v, false);
        }

        String name = modelName(job);
        String task = EventSummaries.shortNameOf(job.getTask());
        RegisteredModel model = findOrCreate(em, name, task, spec);
        if (!model.task.equals(task)) {
            throw new RegistryException.Conflict(
                    "model '"
                            + name
                            + "' holds "
                            + model.task
                            + " models but job "
                            + jobId
                            + " trained "
                            + task
                            + "; set registration.model_name to another model");
        }
        Long max =
                em.createQuery(
                                "select max(v.version) from ModelVersion v where v.modelId = :m",
                                Long.class)
                        .setParameter("m", model.id)
                        .getSingleResult();
        Instant now = Instant.now();
        DatasetPrepared dataset = training.getDataset();

        ModelVersion v = new ModelVersion();
        v.modelId = model.id;
        v.version = max == null ? 1 : max + 1;
        v.jobId = jobId;
        v.baseModel = job.getBaseModel().getRef();
        v.method = EventSummaries.methodName(job.getMethod());
        v.methodParams = protoJson(job.getMethod());
        v.hyperparameters = protoJson(job.getHyperparameters());
        v.datasetRawSha256 = emptyToNull(dataset.getRaw().getSha256());
        v.datasetManifestSha256 = emptyToNull(dataset.getManifest().getSha256());
        Map<String, Object> counts = new LinkedHashMap<>();
        counts.put("train", dataset.getCounts().getTrain());
        counts.put("validation", dataset.getCounts().getValidation());
        counts.put("test", dataset.getCounts().getTest());
        counts.put("input_records", dataset.getStats().getInputRecords());
        counts.put("exact_duplicates_removed", dataset.getStats().getExactDuplicatesRemoved());
        counts.put("near_duplicates_removed", dataset.getStats().getNearDuplicatesRemoved());
        counts.put("leakage_removed", dataset.getStats().getLeakageRemoved());
        v.datasetCounts = write(counts);
        EvaluationCompleted.Builder metrics =
                EvaluationCompleted.newBuilder()
                        .putAllTunedMetrics(evaluation.getTunedMetricsMap())
                        .putAllBaseMetrics(evaluation.getBaseMetricsMap())
                        .addAllRobustness(evaluation.getRobustnessList())
                        .setTestExamples(evaluation.getTestExamples());
        // The real-scenario replay's figures, shown with the version's metrics.
        if (evaluation.hasScenario()) {
            metrics.setScenario(evaluation.getScenario());
        }
        v.metrics = protoJson(metrics);
        v.primaryMetric = emptyToNull(evaluation.getPrimaryMetric());
        v.gatePassed = gatePassed;
        v.gateReasons = write(evaluation.getGate().getReasonsList());
        v.artifacts = write(artifacts(evaluation, extra));
        v.reportUri = emptyToNull(evaluation.getReportHtml().getUri());
        v.stage = Stage.NONE.name();
        v.createdAt = now;
        em.persist(v);
        em.flush();
        model.updatedAt = now;

        String actor = "registry (job " + jobId + ")";
        for (String alias : new LinkedHashSet<>(spec.getAliasesList())) {
            // ModelRegistered lists the aliases a job set, so these changes need no event of
            // their own.
            transitions.moveAlias(
                    new java.util.ArrayList<>(), model, alias, v, actor, "requested by the job");
        }
        return registered(evaluation, model, v, true);
    }

    private Outcome.Registered registered(
            EvaluationCompleted evaluation,
            RegisteredModel model,
            ModelVersion v,
            boolean created) {
        TrainingCompleted t = evaluation.getTraining();
        ArtifactRef primary = t.getModelFilesCount() > 0 ? t.getModelFiles(0) : t.getModel();
        return new Outcome.Registered(
                model.name,
                v.version,
                v.stage,
                transitions.aliasesOf(v),
                primary,
                evaluation.getReportHtml(),
                v.gatePassed,
                created);
    }

    private RegisteredModel findOrCreate(
            EntityManager em, String name, String task, RegistrationSpec spec) {
        List<RegisteredModel> found =
                em.createQuery("from RegisteredModel m where m.name = :n", RegisteredModel.class)
                        .setParameter("n", name)
                        .setLockMode(LockModeType.PESSIMISTIC_WRITE)
                        .getResultList();
        if (!found.isEmpty()) {
            RegisteredModel model = found.get(0);
            if ((model.description == null || model.description.isBlank())
                    && !spec.getDescription().isBlank()) {
                model.description = spec.getDescription();
            }
            return model;
        }
        RegisteredModel model = new RegisteredModel();
        model.name = name;
        model.task = task;
        model.description = emptyToNull(spec.getDescription());
        model.tags = tagsJson(spec.getTagsMap());
        model.createdAt = Instant.now();
        model.updatedAt = model.createdAt;
        em.persist(model);
        em.flush();
        return model;
    }

    /**
     * The job's {@code registration.model_name}; else its display name or base model and task, made
     * URL-safe.
     */
    static String modelName(JobRequested job) {
        String requested = job.getRegistration().getModelName().trim();
        if (!requested.isEmpty()) {
            if (!MODEL_NAME.matcher(requested).matches()) {
                throw new RegistryException.BadRequest(
                        "registration.model_name '"
                                + requested
                                + "' must match "
                                + MODEL_NAME.pattern());
            }
            return requested;
        }
        String base = job.getBaseModel().getRef();
        base = base.substring(base.lastIndexOf('/') + 1);
        String task = EventSummaries.shortNameOf(job.getTask()).toLowerCase(Locale.ROOT);
        String source = job.getDisplayName().isBlank() ? base + "-" + task : job.getDisplayName();
        String slug =
                source.toLowerCase(Locale.ROOT)
                        .replaceAll("[^a-z0-9._-]+", "-")
                        .replaceAll("^[-._]+|[-._]+$", "");
        if (slug.isEmpty()) {
            slug = "model";
        }
        return slug.length() > 128 ? slug.substring(0, 128) : slug;
    }

    private List<Map<String, Object>> artifacts(
            EvaluationCompleted e, Map<String, ArtifactRef> extra) {
        TrainingCompleted t = e.getTraining();
        DatasetPrepared d = t.getDataset();
        List<Map<String, Object>> out = new ArrayList<>();
        Set<String> seen = new LinkedHashSet<>();
        // Named by their path inside the model directory, so an adapter export keeps its own
        // folder (model/adapter/adapter_config.json) beside the model's files.
        String directory = t.getModel().getUri();
        for (ArtifactRef f : t.getModelFilesList()) {
            String uri = f.getUri();
            String path =
                    !directory.isEmpty() && uri.startsWith(directory)
                            ? uri.substring(directory.length())
                            : uri.substring(uri.lastIndexOf('/') + 1);
            add(out, seen, "model/" + path, f);
        }
        add(out, seen, "metrics-log", t.getMetricsLog());
        add(out, seen, "report.html", e.getReportHtml());
        add(out, seen, "report.md", e.getReportMarkdown());
        add(out, seen, "report.json", e.getReportJson());
        add(out, seen, "dataset/raw", d.getRaw());
        add(out, seen, "dataset/manifest", d.getManifest());
        extra.forEach((name, ref) -> add(out, seen, name, ref));
        return out;
    }

    private static void add(
            List<Map<String, Object>> out, Set<String> seen, String name, ArtifactRef ref) {
        if (ref.getUri().isEmpty() || !seen.add(ref.getUri())) {
            return;
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("name", name);
        m.put("uri", ref.getUri());
        m.put("sha256", ref.getSha256());
        m.put("size_bytes", ref.getSizeBytes());
        m.put("content_type", ref.getContentType());
        out.add(m);
    }

    private String tagsJson(Map<String, String> tags) {
        return write(new TreeMap<>(tags));
    }

    private String write(Object value) {
        try {
            return json.writeValueAsString(value);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot write registry JSON", e);
        }
    }

    private static String protoJson(MessageOrBuilder m) {
        try {
            return PROTO_JSON.print(m);
        } catch (InvalidProtocolBufferException e) {
            throw new IllegalStateException("cannot print " + m.getClass().getSimpleName(), e);
        }
    }

    private static String emptyToNull(String s) {
        return s == null || s.isEmpty() ? null : s;
    }
}
