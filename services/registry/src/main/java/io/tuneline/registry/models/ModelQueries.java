package io.tuneline.registry.models;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.NullNode;
import io.tuneline.registry.db.Page;
import io.tuneline.registry.db.RegistryDatabase;
import io.tuneline.registry.error.RegistryException;
import io.tuneline.registry.models.ModelViews.Artifact;
import io.tuneline.registry.models.ModelViews.Comparison;
import io.tuneline.registry.models.ModelViews.Dataset;
import io.tuneline.registry.models.ModelViews.Difference;
import io.tuneline.registry.models.ModelViews.Gate;
import io.tuneline.registry.models.ModelViews.Lineage;
import io.tuneline.registry.models.ModelViews.ModelView;
import io.tuneline.registry.models.ModelViews.TransitionView;
import io.tuneline.registry.models.ModelViews.VersionRef;
import io.tuneline.registry.models.ModelViews.VersionView;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.persistence.EntityManager;
import jakarta.transaction.Transactional;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeSet;

/** Read-only views of models, versions, their history and lineage. */
@ApplicationScoped
public class ModelQueries {
    private static final TypeReference<Map<String, String>> TAGS = new TypeReference<>() {};
    private static final TypeReference<List<Artifact>> ARTIFACTS = new TypeReference<>() {};
    private static final TypeReference<List<String>> STRINGS = new TypeReference<>() {};

    private final RegistryDatabase db;
    private final StageTransitions transitions;
    private final ObjectMapper json;

    @Inject
    public ModelQueries(RegistryDatabase db, StageTransitions transitions, ObjectMapper json) {
        this.db = db;
        this.transitions = transitions;
        this.json = json;
    }

    @Transactional
    public Page<ModelView> models(Optional<String> task, int page, int size) {
        String where = task.isPresent() ? " where m.task = :task" : "";
        var query =
                db.em()
                        .createQuery(
                                "from RegisteredModel m" + where + " order by m.name",
                                RegisteredModel.class);
        var count =
                db.em().createQuery("select count(m) from RegisteredModel m" + where, Long.class);
        task.ifPresent(
                t -> {
                    query.setParameter("task", t);
                    count.setParameter("task", t);
                });
        List<ModelView> items =
                query.setFirstResult(page * size).setMaxResults(size).getResultList().stream()
                        .map(this::view)
                        .toList();
        return new Page<>(items, page, size, count.getSingleResult());
    }

    @Transactional
    public ModelView model(String name) {
        return view(model(db.em(), name));
    }

    @Transactional
    public Page<VersionView> versions(String modelName, int page, int size) {
        RegisteredModel model = model(db.em(), modelName);
        List<VersionView> items =
                db
                        .em()
                        .createQuery(
                                "from ModelVersion v where v.modelId = :m order by v.version desc",
                                ModelVersion.class)
                        .setParameter("m", model.id)
                        .setFirstResult(page * size)
                        .setMaxResults(size)
                        .getResultList()
                        .stream()
                        .map(v -> view(model, v))
                        .toList();
        long total = count(model);
        return new Page<>(items, page, size, total);
    }

    /** A version by number or by alias ({@code champion}). */
    @Transactional
    public VersionView version(String modelName, String versionOrAlias) {
        RegisteredModel model = model(db.em(), modelName);
        return view(model, resolve(model, versionOrAlias));
    }

    @Transactional
    public List<TransitionView> history(String modelName) {
        RegisteredModel model = model(db.em(), modelName);
        return db
                .em()
                .createQuery(
                        "select t, v.version from VersionTransition t, ModelVersion v"
                                + " where t.versionId = v.id and t.modelId = :m order by t.at, t.id",
                        Object[].class)
                .setParameter("m", model.id)
                .getResultList()
                .stream()
                .map(
                        row -> {
                            VersionTransition t = (VersionTransition) row[0];
                            return new TransitionView(
                                    (Long) row[1],
                                    t.kind,
                                    t.alias,
                                    t.fromValue,
                                    t.toValue,
                                    t.actor,
                                    t.reason,
                                    t.at);
                        })
                .toList();
    }

    @Transactional
    public Lineage lineage(String modelName, String versionOrAlias) {
        RegisteredModel model = model(db.em(), modelName);
        ModelVersion v = resolve(model, versionOrAlias);
        VersionView view = view(model, v);
        List<VersionRef> sameDataset =
                v.datasetRawSha256 == null
                        ? List.of()
                        : versionsUsing(Optional.of(v.datasetRawSha256), Optional.empty());
        List<VersionRef> sameBase = versionsUsing(Optional.empty(), Optional.of(v.baseModel));
        return new Lineage(
                ref(model, v),
                v.jobId,
                v.baseModel,
                view.dataset(),
                v.reportUri,
                sameDataset,
                sameBase);
    }

    /** Versions made from a dataset (by its raw sha256) or a base model. */
    @Transactional
    public List<VersionRef> versionsUsing(
            Optional<String> datasetSha256, Optional<String> baseModel) {
        if (datasetSha256.isEmpty() && baseModel.isEmpty()) {
            throw new RegistryException.BadRequest(
                    "name a dataset_sha256 or a base_model to look versions up by");
        }
        StringBuilder where = new StringBuilder(" where v.modelId = m.id");
        datasetSha256.ifPresent(d -> where.append(" and v.datasetRawSha256 = :d"));
        baseModel.ifPresent(b -> where.append(" and v.baseModel = :b"));
        var query =
                db.em()
                        .createQuery(
                                "select m, v from RegisteredModel m, ModelVersion v"
                                        + where
                                        + " order by m.name, v.version",
                                Object[].class);
        datasetSha256.ifPresent(d -> query.setParameter("d", d));
        baseModel.ifPresent(b -> query.setParameter("b", b));
        return query.getResultList().stream()
                .map(row -> ref((RegisteredModel) row[0], (ModelVersion) row[1]))
                .toList();
    }

    @Transactional
    public Comparison compare(String modelName, String a, String b) {
        VersionView va = version(modelName, a);
        VersionView vb = version(modelName, b);
        Map<String, Double> deltas = new LinkedHashMap<>();
        JsonNode ta = va.metrics().path("tuned_metrics");
        JsonNode tb = vb.metrics().path("tuned_metrics");
        TreeSet<String> names = new TreeSet<>();
        ta.fieldNames().forEachRemaining(names::add);
        tb.fieldNames().forEachRemaining(names::add);
        for (String n : names) {
            if (ta.has(n) && tb.has(n)) {
                deltas.put(
                        n,
                        tb.path(n).path("value").asDouble() - ta.path(n).path("value").asDouble());
            }
        }
        List<Difference> diffs = new ArrayList<>();
        if (!va.baseModel().equals(vb.baseModel())) {
            diffs.add(
                    new Difference(
                            "base_model",
                            json.valueToTree(va.baseModel()),
                            json.valueToTree(vb.baseModel())));
        }
        diff("method", va.methodParams(), vb.methodParams(), diffs);
        diff("hyperparameters", va.hyperparameters(), vb.hyperparameters(), diffs);
        diff("dataset", json.valueToTree(va.dataset()), json.valueToTree(vb.dataset()), diffs);
        return new Comparison(va, vb, deltas, diffs);
    }

    private static void diff(String path, JsonNode a, JsonNode b, List<Difference> out) {
        if (a.isObject() && b.isObject()) {
            TreeSet<String> names = new TreeSet<>();
            a.fieldNames().forEachRemaining(names::add);
            b.fieldNames().forEachRemaining(names::add);
            for (String n : names) {
                diff(path + "." + n, orNull(a.get(n)), orNull(b.get(n)), out);
            }
        } else if (!a.equals(b)) {
            out.add(new Difference(path, a, b));
        }
    }

    private static JsonNode orNull(JsonNode n) {
        return n == null ? NullNode.getInstance() : n;
    }

    /** The stages a version reference may name when no alias of that name exists. */
    private static final java.util.Set<String> STAGE_REFS =
            java.util.Set.of("production", "staging");

    ModelVersion resolve(RegisteredModel model, String versionOrAlias) {
        EntityManager em = db.em();
        Long versionId;
        if (versionOrAlias.matches("\\d{1,18}")) {
            List<Long> ids =
                    em.createQuery(
                                    "select v.id from ModelVersion v where v.modelId = :m and"
                                            + " v.version = :v",
                                    Long.class)
                            .setParameter("m", model.id)
                            .setParameter("v", Long.parseLong(versionOrAlias))
                            .getResultList();
            versionId = ids.isEmpty() ? null : ids.get(0);
        } else {
            ModelAlias alias =
                    em.find(ModelAlias.class, new ModelAlias.Key(model.id, versionOrAlias));
            versionId = alias == null ? null : alias.versionId;
            if (versionId == null && STAGE_REFS.contains(versionOrAlias)) {
                // As MLflow's models:/name/Production: a stage names its newest version there,
                // so name:production follows promotions. An alias of that name wins.
                List<Long> inStage =
                        em.createQuery(
                                        "select v.id from ModelVersion v where v.modelId = :m and"
                                                + " v.stage = :s order by v.version desc",
                                        Long.class)
                                .setParameter("m", model.id)
                                .setParameter("s", Stage.parse(versionOrAlias).name())
                                .setMaxResults(1)
                                .getResultList();
                versionId = inStage.isEmpty() ? null : inStage.get(0);
            }
        }
        if (versionId == null) {
            throw new RegistryException.NotFound(
                    "model '"
                            + model.name
                            + "' has no version or alias '"
                            + versionOrAlias
                            + "'"
                            + (STAGE_REFS.contains(versionOrAlias)
                                    ? ", and no version in stage "
                                            + Stage.parse(versionOrAlias).name()
                                    : ""));
        }
        return em.find(ModelVersion.class, versionId);
    }

    /** The model's row, or a 404 naming it. */
    static RegisteredModel model(EntityManager em, String name) {
        List<RegisteredModel> found =
                em.createQuery("from RegisteredModel m where m.name = :n", RegisteredModel.class)
                        .setParameter("n", name)
                        .getResultList();
        if (found.isEmpty()) {
            throw new RegistryException.NotFound("no model named '" + name + "'");
        }
        return found.get(0);
    }

    private long count(RegisteredModel model) {
        return db.em()
                .createQuery("select count(v) from ModelVersion v where v.modelId = :m", Long.class)
                .setParameter("m", model.id)
                .getSingleResult();
    }

    private ModelView view(RegisteredModel m) {
        EntityManager em = db.em();
        Long latest =
                em.createQuery(
                                "select max(v.version) from ModelVersion v where v.modelId = :m",
                                Long.class)
                        .setParameter("m", m.id)
                        .getSingleResult();
        List<Long> production =
                em.createQuery(
                                "select v.version from ModelVersion v where v.modelId = :m and"
                                        + " v.stage = 'PRODUCTION'",
                                Long.class)
                        .setParameter("m", m.id)
                        .getResultList();
        Map<String, Long> aliases = new LinkedHashMap<>();
        em.createQuery(
                        "select a.key.alias, v.version from ModelAlias a, ModelVersion v where"
                                + " a.versionId = v.id and a.key.modelId = :m order by a.key.alias",
                        Object[].class)
                .setParameter("m", m.id)
                .getResultList()
                .forEach(row -> aliases.put((String) row[0], (Long) row[1]));
        return new ModelView(
                m.name,
                m.task,
                m.description,
                read(m.tags, TAGS),
                count(m),
                latest,
                production.isEmpty() ? null : production.get(0),
                aliases,
                m.createdAt,
                m.updatedAt);
    }

    VersionView view(RegisteredModel m, ModelVersion v) {
        return new VersionView(
                m.name,
                v.version,
                v.stage,
                transitions.aliasesOf(v),
                v.jobId,
                v.baseModel,
                v.method,
                tree(v.methodParams),
                tree(v.hyperparameters),
                new Dataset(v.datasetRawSha256, v.datasetManifestSha256, tree(v.datasetCounts)),
                v.primaryMetric,
                tree(v.metrics),
                new Gate(v.gatePassed, read(v.gateReasons, STRINGS)),
                read(v.artifacts, ARTIFACTS),
                v.reportUri,
                v.createdAt);
    }

    private static VersionRef ref(RegisteredModel m, ModelVersion v) {
        return new VersionRef(m.name, v.version, v.jobId, v.stage);
    }

    private JsonNode tree(String s) {
        try {
            return json.readTree(s);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("stored registry JSON is invalid: " + s, e);
        }
    }

    private <T> T read(String s, TypeReference<T> type) {
        try {
            return json.readValue(s, type);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("stored registry JSON is invalid: " + s, e);
        }
    }
}
