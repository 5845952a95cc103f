package io.tuneline.registry.models;

import io.tuneline.proto.v1.ModelChange;
import io.tuneline.registry.db.RegistryDatabase;
import io.tuneline.registry.error.RegistryException;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.persistence.EntityManager;
import jakarta.persistence.LockModeType;
import jakarta.transaction.Transactional;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * Stage and alias changes. Each locks the model's row first, so concurrent requests on one model
 * run one after another: at most one version is ever in {@code PRODUCTION} and an alias always
 * points at exactly one version. Every change is recorded with who made it and when, and returned
 * so that the caller can announce it ({@code ModelChanged}) once the transaction has committed.
 */
@ApplicationScoped
public class StageTransitions {
    public static final Pattern ALIAS = Pattern.compile("[a-z][a-z0-9_-]{0,63}");

    private final RegistryDatabase db;

    @Inject
    public StageTransitions(RegistryDatabase db) {
        this.db = db;
    }

    /**
     * What one request changed: the model, the job that produced the version it named, and each
     * stage or alias change in the order made (none when the request changed nothing).
     */
    public record Changed(String model, String jobId, List<ModelChange> changes) {}

    /**
     * Moves a version to {@code stage}. Promoting to {@code PRODUCTION} archives the version that
     * was there, in the same transaction.
     */
    @Transactional
    public Changed setStage(
            String modelName, long version, Stage stage, String actor, String reason) {
        RegisteredModel model = lockModel(modelName);
        ModelVersion target = version(model, version);
        Stage from = Stage.valueOf(target.stage);
        List<ModelChange> changes = new ArrayList<>();
        if (from == stage) {
            return new Changed(model.name, target.jobId, changes);
        }
        Instant now = Instant.now();
        if (stage == Stage.PRODUCTION) {
            for (ModelVersion current :
                    db.em()
                            .createQuery(
                                    "from ModelVersion v where v.modelId = :m and v.stage = :s",
                                    ModelVersion.class)
                            .setParameter("m", model.id)
                            .setParameter("s", Stage.PRODUCTION.name())
                            .getResultList()) {
                current.stage = Stage.ARCHIVED.name();
                record(
                        changes,
                        model,
                        current,
                        "STAGE",
                        null,
                        Stage.PRODUCTION.name(),
                        Stage.ARCHIVED.name(),
                        actor,
                        "replaced in production by version " + version,
                        now);
            }
        }
        target.stage = stage.name();
        record(
                changes,
                model,
                target,
                "STAGE",
                null,
                from.name(),
                stage.name(),
                actor,
                reason,
                now);
        model.updatedAt = now;
        return new Changed(model.name, target.jobId, changes);
    }

    /** Points {@code alias} at a version, moving it from wherever it pointed. */
    @Transactional
    public Changed setAlias(
            String modelName, String alias, long version, String actor, String reason) {
        RegisteredModel model = lockModel(modelName);
        ModelVersion target = version(model, version);
        List<ModelChange> changes = new ArrayList<>();
        moveAlias(changes, model, alias, target, actor, reason);
        return new Changed(model.name, target.jobId, changes);
    }

    /** Removes an alias; the one change names the version it pointed at. */
    @Transactional
    public Changed removeAlias(String modelName, String alias, String actor, String reason) {
        RegisteredModel model = lockModel(modelName);
        EntityManager em = db.em();
        ModelAlias existing = em.find(ModelAlias.class, new ModelAlias.Key(model.id, alias));
        if (existing == null) {
            throw new RegistryException.NotFound(
                    "model '" + modelName + "' has no alias '" + alias + "'");
        }
        ModelVersion old = em.find(ModelVersion.class, existing.versionId);
        em.remove(existing);
        List<ModelChange> changes = new ArrayList<>();
        record(
                changes,
                model,
                old,
                "ALIAS",
                alias,
                Long.toString(old.version),
                null,
                actor,
                reason,
                Instant.now());
        return new Changed(model.name, old.jobId, changes);
    }

    /**
     * Called with the model's row already locked by the caller's transaction; the change made (if
     * the alias did not already point at {@code target}) is added to {@code changes}.
     */
    void moveAlias(
            List<ModelChange> changes,
            RegisteredModel model,
            String alias,
            ModelVersion target,
            String actor,
            String reason) {
        if (!ALIAS.matcher(alias).matches()) {
            throw new RegistryException.BadRequest(
                    "alias '" + alias + "' must match " + ALIAS.pattern());
        }
        EntityManager em = db.em();
        Instant now = Instant.now();
        ModelAlias existing = em.find(ModelAlias.class, new ModelAlias.Key(model.id, alias));
        String from = null;
        if (existing == null) {
            existing = new ModelAlias();
            existing.key = new ModelAlias.Key(model.id, alias);
            existing.versionId = target.id;
            existing.updatedAt = now;
            em.persist(existing);
        } else {
            if (existing.versionId.equals(target.id)) {
                return;
            }
            from = Long.toString(em.find(ModelVersion.class, existing.versionId).version);
            existing.versionId = target.id;
            existing.updatedAt = now;
        }
        record(
                changes,
                model,
                target,
                "ALIAS",
                alias,
                from,
                Long.toString(target.version),
                actor,
                reason,
                now);
        model.updatedAt = now;
    }

    /** The aliases pointing at a version, sorted. */
    public List<String> aliasesOf(ModelVersion v) {
        return db.em()
                .createQuery(
                        "select a.key.alias from ModelAlias a where a.versionId = :v order by"
                                + " a.key.alias",
                        String.class)
                .setParameter("v", v.id)
                .getResultList();
    }

    private RegisteredModel lockModel(String name) {
        List<RegisteredModel> found =
                db.em()
                        .createQuery(
                                "from RegisteredModel m where m.name = :n", RegisteredModel.class)
                        .setParameter("n", name)
                        .setLockMode(LockModeType.PESSIMISTIC_WRITE)
                        .getResultList();
        if (found.isEmpty()) {
            throw new RegistryException.NotFound("no model named '" + name + "'");
        }
        return found.get(0);
    }

    private ModelVersion version(RegisteredModel model, long version) {
        List<ModelVersion> found =
                db.em()
                        .createQuery(
                                "from ModelVersion v where v.modelId = :m and v.version = :v",
                                ModelVersion.class)
                        .setParameter("m", model.id)
                        .setParameter("v", version)
                        .getResultList();
        if (found.isEmpty()) {
            throw new RegistryException.NotFound(
                    "model '" + model.name + "' has no version " + version);
        }
        return found.get(0);
    }

    private void record(
            List<ModelChange> changes,
            RegisteredModel model,
            ModelVersion v,
            String kind,
            String alias,
            String from,
            String to,
            String actor,
            String reason,
            Instant at) {
        VersionTransition t = new VersionTransition();
        t.modelId = model.id;
        t.versionId = v.id;
        t.kind = kind;
        t.alias = alias;
        t.fromValue = from;
        t.toValue = to;
        t.actor = actor;
        t.reason = reason;
        t.at = at;
        db.em().persist(t);
        ModelChange.Builder change = ModelChange.newBuilder().setKind(kind).setVersion(v.version);
        if (alias != null) {
            change.setAlias(alias);
        }
        if (from != null) {
            change.setFrom(from);
        }
        if (to != null) {
            change.setTo(to);
        }
        changes.add(change.build());
    }
}
