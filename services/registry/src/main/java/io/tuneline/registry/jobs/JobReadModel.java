package io.tuneline.registry.jobs;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.google.protobuf.Message;
import io.tuneline.common.event.IncomingEvent;
import io.tuneline.proto.v1.CancelJob;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.EvaluationCompleted;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.proto.v1.ModelRegistered;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.proto.v1.TrainingProgress;
import io.tuneline.registry.db.Page;
import io.tuneline.registry.db.RegistryDatabase;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.persistence.EntityManager;
import jakarta.transaction.Transactional;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Builds the job read-model from the pipeline's events. Each event is stored once (by its
 * CloudEvents id) and folded into the job's row with rules that do not depend on arrival order: the
 * furthest stage wins, a stage's time is the earliest event of it, the progress is the highest
 * step, the failure and the final state are the latest ones. Shuffled or redelivered events
 * therefore leave the same row.
 */
@ApplicationScoped
public class JobReadModel {
    private static final org.jboss.logging.Logger LOG =
            org.jboss.logging.Logger.getLogger(JobReadModel.class);
    private static final TypeReference<Map<String, Object>> MAP = new TypeReference<>() {};

    private final RegistryDatabase db;
    private final ObjectMapper json;

    @Inject
    public JobReadModel(RegistryDatabase db, ObjectMapper json) {
        this.db = db;
        this.json = json;
    }

    /**
     * Applies one event; returns its timeline entry, or empty when this event id was already
     * applied.
     */
    @Transactional
    public Optional<JobEventView> apply(IncomingEvent<? extends Message> event) {
        EntityManager em = db.em();
        if (em.find(JobEvent.class, event.id()) != null) {
            return Optional.empty();
        }
        Instant at = event.time() != null ? event.time() : Instant.now();
        Message payload = event.payload();
        Map<String, Object> summary = EventSummaries.of(payload);

        JobEvent stored = new JobEvent();
        stored.eventId = event.id();
        stored.jobId = event.jobId();
        stored.type = payload.getDescriptorForType().getName();
        stored.topic = event.topic();
        stored.occurredAt = at;
        stored.receivedAt = Instant.now();
        stored.summary = write(summary);
        em.persist(stored);

        JobRecord job = em.find(JobRecord.class, event.jobId());
        if (job == null) {
            job = new JobRecord();
            job.jobId = event.jobId();
            job.status = JobState.QUEUED.name();
            job.statusRank = 0;
            job.updatedAt = at;
            em.persist(job);
        }
        fold(job, payload, at);
        job.eventCount++;
        if (job.updatedAt == null || at.isAfter(job.updatedAt)) {
            job.updatedAt = at;
        }
        job.status = currentState(job).name();
        return Optional.of(view(stored, summary, job));
    }

    private void fold(JobRecord job, Message payload, Instant at) {
        if (payload instanceof JobRequested e && job.requestedAt != null) {
            // A job id is used once: a second request under it never rewrites the first job.
            LOG.warnf(
                    "a second JobRequested for job %s was ignored: job ids are used once",
                    job.jobId);
        } else if (payload instanceof JobRequested e) {
            job.displayName = e.getDisplayName();
            job.task = EventSummaries.shortName(e.getTask().name(), "TASK_");
            job.baseModel = e.getBaseModel().getRef();
            job.method = EventSummaries.methodName(e);
            job.modelName = e.getRegistration().getModelName();
            job.requestedBy = e.getRequestedBy();
            job.requestedAt =
                    e.hasRequestedAt()
                            ? Instant.ofEpochSecond(
                                    e.getRequestedAt().getSeconds(), e.getRequestedAt().getNanos())
                            : at;
            reach(job, JobState.QUEUED, at, null);
        } else if (payload instanceof JobStatusChanged e) {
            reach(job, JobState.of(e.getStatus()), at, e.getMessage());
        } else if (payload instanceof JobFailed e) {
            if (job.failureAt == null || !at.isBefore(job.failureAt)) {
                job.failureAt = at;
                job.failureStage = EventSummaries.shortName(e.getStage().name(), "STAGE_");
                job.failureCode = e.getErrorCode();
                job.failureReason = e.getMessage();
            }
            reach(job, JobState.FAILED, at, e.getMessage());
        } else if (payload instanceof CancelJob) {
            job.cancelRequestedAt = earliest(job.cancelRequestedAt, at);
        } else if (payload instanceof DatasetIngested e) {
            job.datasetRawSha256 = e.getRaw().getSha256();
            reach(job, JobState.INGESTING, at, null);
        } else if (payload instanceof DatasetPrepared) {
            reach(job, JobState.PREPROCESSING, at, null);
        } else if (payload instanceof TrainingProgress e) {
            boolean newer =
                    job.progressStep == null
                            || e.getStep() > job.progressStep
                            || (e.getStep() == job.progressStep && at.isAfter(job.progressAt));
            if (newer) {
                job.progressStep = e.getStep();
                job.progressTotal = e.getTotalSteps();
                job.progressEpoch = e.getEpoch();
                job.progressLoss = e.getLoss();
                job.progressEtaSeconds = e.getEtaSeconds();
                job.progressAt = at;
            }
            reach(job, JobState.TRAINING, at, null);
        } else if (payload instanceof TrainingCompleted) {
            reach(job, JobState.TRAINING, at, null);
        } else if (payload instanceof EvaluationCompleted) {
            reach(job, JobState.EVALUATING, at, null);
        } else if (payload instanceof ModelRegistered e) {
            job.registeredModel = e.getModelName();
            job.registeredVersion = e.getVersion();
            reach(job, JobState.REGISTERING, at, null);
        }
    }

    /** Records that the job reached {@code state} at {@code at}. */
    private static void reach(JobRecord job, JobState state, Instant at, String message) {
        switch (state) {
            case QUEUED -> job.queuedAt = earliest(job.queuedAt, at);
            case INGESTING -> job.ingestingAt = earliest(job.ingestingAt, at);
            case PREPROCESSING -> job.preprocessingAt = earliest(job.preprocessingAt, at);
            case TRAINING -> job.trainingAt = earliest(job.trainingAt, at);
            case EVALUATING -> job.evaluatingAt = earliest(job.evaluatingAt, at);
            case REGISTERING -> job.registeringAt = earliest(job.registeringAt, at);
            case SUCCEEDED, FAILED, CANCELLED -> {
                // The latest final word stands (ties broken by rank), so a job cancelled after
                // a failed attempt reads CANCELLED whatever order the two arrived in.
                JobState current =
                        job.terminalStatus == null ? null : JobState.valueOf(job.terminalStatus);
                boolean later =
                        current == null
                                || at.isAfter(job.finishedAt)
                                || (at.equals(job.finishedAt) && state.rank() > current.rank());
                if (later) {
                    job.terminalStatus = state.name();
                    job.finishedAt = at;
                }
            }
        }
        if (!state.terminal()) {
            job.statusRank = Math.max(job.statusRank, state.rank());
        }
        if (message != null && !message.isBlank()) {
            boolean later =
                    job.statusMessageAt == null
                            || at.isAfter(job.statusMessageAt)
                            || (at.equals(job.statusMessageAt)
                                    && message.compareTo(job.statusMessage) > 0);
            if (later) {
                job.statusMessage = message;
                job.statusMessageAt = at;
            }
        }
    }

    static JobState currentState(JobRecord job) {
        if (job.terminalStatus != null) {
            return JobState.valueOf(job.terminalStatus);
        }
        return job.statusRank == 0 ? JobState.QUEUED : JobState.ofRank(job.statusRank);
    }

    private static Instant earliest(Instant current, Instant candidate) {
        return current == null || candidate.isBefore(current) ? candidate : current;
    }

    /** A job with its full timeline, oldest first. */
    @Transactional
    public Optional<JobView> find(String jobId) {
        EntityManager em = db.em();
        JobRecord job = em.find(JobRecord.class, jobId);
        if (job == null) {
            return Optional.empty();
        }
        return Optional.of(toView(job, timeline(jobId)));
    }

    /** The stored timeline of a job, oldest first. */
    @Transactional
    public List<JobEventView> timeline(String jobId) {
        JobRecord job = db.em().find(JobRecord.class, jobId);
        String status = job == null ? null : job.status;
        boolean terminal = job != null && job.terminalStatus != null;
        return db
                .em()
                .createQuery(
                        "from JobEvent e where e.jobId = :job order by e.occurredAt, e.eventId",
                        JobEvent.class)
                .setParameter("job", jobId)
                .getResultList()
                .stream()
                .map(e -> view(e, read(e.summary), status, terminal))
                .toList();
    }

    /** One page of jobs, most recently updated first. */
    @Transactional
    public Page<JobView> list(
            Optional<JobState> status, Optional<String> model, int page, int size) {
        StringBuilder where = new StringBuilder(" where 1 = 1");
        status.ifPresent(s -> where.append(" and j.status = :status"));
        model.ifPresent(
                m -> where.append(" and (j.modelName = :model or j.registeredModel = :model)"));
        var query =
                db.em()
                        .createQuery(
                                "from JobRecord j" + where + " order by j.updatedAt desc, j.jobId",
                                JobRecord.class);
        var count = db.em().createQuery("select count(j) from JobRecord j" + where, Long.class);
        status.ifPresent(
                s -> {
                    query.setParameter("status", s.name());
                    count.setParameter("status", s.name());
                });
        model.ifPresent(
                m -> {
                    query.setParameter("model", m);
                    count.setParameter("model", m);
                });
        List<JobView> items =
                query.setFirstResult(page * size).setMaxResults(size).getResultList().stream()
                        .map(j -> toView(j, null))
                        .toList();
        return new Page<>(items, page, size, count.getSingleResult());
    }

    private JobEventView view(JobEvent e, Map<String, Object> summary, JobRecord job) {
        return view(e, summary, job.status, job.terminalStatus != null);
    }

    private static JobEventView view(
            JobEvent e, Map<String, Object> summary, String status, boolean terminal) {
        return new JobEventView(
                e.eventId, e.jobId, e.type, e.topic, e.occurredAt, summary, status, terminal);
    }

    static JobView toView(JobRecord j, List<JobEventView> timeline) {
        Map<String, Instant> stages = new LinkedHashMap<>();
        putIfSet(stages, "requested", j.requestedAt);
        putIfSet(stages, "queued", j.queuedAt);
        putIfSet(stages, "ingesting", j.ingestingAt);
        putIfSet(stages, "preprocessing", j.preprocessingAt);
        putIfSet(stages, "training", j.trainingAt);
        putIfSet(stages, "evaluating", j.evaluatingAt);
        putIfSet(stages, "registering", j.registeringAt);
        putIfSet(stages, "finished", j.finishedAt);
        JobView.Progress progress =
                j.progressStep == null
                        ? null
                        : new JobView.Progress(
                                j.progressStep,
                                j.progressTotal,
                                j.progressTotal == null || j.progressTotal == 0
                                        ? 0
                                        : 100.0 * j.progressStep / j.progressTotal,
                                j.progressEpoch,
                                j.progressLoss,
                                j.progressEtaSeconds,
                                j.progressAt);
        JobView.Failure failure =
                j.failureAt == null
                        ? null
                        : new JobView.Failure(
                                j.failureStage, j.failureCode, j.failureReason, j.failureAt);
        JobView.Registration registered =
                j.registeredModel == null
                        ? null
                        : new JobView.Registration(j.registeredModel, j.registeredVersion);
        return new JobView(
                j.jobId,
                j.displayName,
                j.task,
                j.baseModel,
                j.method,
                j.modelName,
                j.requestedBy,
                j.status,
                j.statusMessage,
                stages,
                progress,
                failure,
                j.cancelRequestedAt,
                j.datasetRawSha256,
                registered,
                j.eventCount,
                j.updatedAt,
                timeline);
    }

    private static void putIfSet(Map<String, Instant> m, String key, Instant value) {
        if (value != null) {
            m.put(key, value);
        }
    }

    private String write(Map<String, Object> summary) {
        try {
            return json.writeValueAsString(summary);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot write an event summary", e);
        }
    }

    private Map<String, Object> read(String summary) {
        try {
            return json.readValue(summary, MAP);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("stored event summary is not JSON: " + summary, e);
        }
    }
}
