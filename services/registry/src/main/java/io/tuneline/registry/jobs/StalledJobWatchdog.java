package io.tuneline.registry.jobs;

import com.google.protobuf.util.Timestamps;
import io.quarkus.scheduler.Scheduled;
import io.tuneline.common.messaging.EventPublisher;
import io.tuneline.common.observability.JobLogContext;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.Stage;
import io.tuneline.registry.api.RegistryConfig;
import io.tuneline.registry.db.RegistryDatabase;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.transaction.Transactional;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.eclipse.microprofile.reactive.messaging.Channel;
import org.eclipse.microprofile.reactive.messaging.Emitter;
import org.jboss.logging.Logger;

/**
 * Finds jobs that have gone quiet: no event for longer than their state's limit ({@code
 * tuneline.registry.watchdog.*}). Every stage reports progress while it works (and the training
 * controller asks its executor again every 30 s), so such a job has nothing working on it any more:
 * a service lost it. The watchdog fails it with the reason, as a {@code JobFailed} on {@code
 * finetune.jobs.status} that the registry folds like any other event, so no job waits forever.
 */
@ApplicationScoped
public class StalledJobWatchdog {
    public static final String ERROR_STAGE_STALLED = "STAGE_STALLED";
    private static final Logger LOG = Logger.getLogger(StalledJobWatchdog.class);

    private final RegistryDatabase db;
    private final EventPublisher publisher;
    private final Emitter<byte[]> status;
    private final RegistryConfig.Watchdog limits;

    /** Jobs already failed by this instance: their JobFailed may not have come back yet. */
    private final Set<String> reported = ConcurrentHashMap.newKeySet();

    @Inject
    public StalledJobWatchdog(
            RegistryDatabase db,
            EventPublisher publisher,
            @Channel("job-status") Emitter<byte[]> status,
            RegistryConfig config) {
        this.db = db;
        this.publisher = publisher;
        this.status = status;
        this.limits = config.watchdog();
    }

    @Scheduled(
            every = "${tuneline.registry.watchdog.interval:1m}",
            delayed = "${tuneline.registry.watchdog.interval:1m}",
            concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    void scheduled() {
        check(Instant.now());
    }

    /** Fails every job that is stalled at {@code now}; returns their ids. */
    public List<String> check(Instant now) {
        List<String> failed = new ArrayList<>();
        for (Stalled s : stalled(now)) {
            if (!reported.add(s.jobId())) {
                continue;
            }
            try (var ctx = JobLogContext.of(s.jobId())) {
                LOG.warnf("%s", s.reason());
                publisher.sendAndWait(
                        status,
                        JobFailed.newBuilder()
                                .setJobId(s.jobId())
                                .setStage(s.stage())
                                .setErrorCode(ERROR_STAGE_STALLED)
                                .setMessage(s.reason())
                                .setRetriable(true)
                                .setFailedAt(Timestamps.now())
                                .build());
                failed.add(s.jobId());
            } catch (RuntimeException e) {
                reported.remove(s.jobId());
                LOG.warnf("cannot fail stalled job %s yet: %s", s.jobId(), e.getMessage());
            }
        }
        return failed;
    }

    private record Stalled(String jobId, Stage stage, String reason) {}

    @Transactional
    List<Stalled> stalled(Instant now) {
        List<Stalled> stalled = new ArrayList<>();
        for (JobRecord job :
                db.em()
                        .createQuery(
                                "from JobRecord j where j.terminalStatus is null", JobRecord.class)
                        .getResultList()) {
            JobState state = JobReadModel.currentState(job);
            Duration limit = limit(state);
            if (limit.isZero()
                    || job.updatedAt == null
                    || !job.updatedAt.plus(limit).isBefore(now)) {
                continue;
            }
            Stage stage = stageOf(state);
            stalled.add(
                    new Stalled(
                            job.jobId,
                            stage,
                            String.format(
                                    Locale.ROOT,
                                    "no progress for %s while %s (limit %s, last event at %s%s):"
                                            + " nothing is working on the job any more; the %s"
                                            + " service's log for job %s says where it stopped",
                                    human(Duration.between(job.updatedAt, now)),
                                    state.name().toLowerCase(Locale.ROOT),
                                    human(limit),
                                    job.updatedAt,
                                    job.statusMessage == null || job.statusMessage.isBlank()
                                            ? ""
                                            : ", '" + job.statusMessage + "'",
                                    stage.name()
                                            .substring("STAGE_".length())
                                            .toLowerCase(Locale.ROOT),
                                    job.jobId)));
        }
        return stalled;
    }

    private Duration limit(JobState state) {
        return switch (state) {
            case QUEUED -> limits.queued();
            case INGESTING -> limits.ingesting();
            case PREPROCESSING -> limits.preprocessing();
            case TRAINING -> limits.training();
            case EVALUATING -> limits.evaluating();
            case REGISTERING -> limits.registering();
            case SUCCEEDED, FAILED, CANCELLED -> Duration.ZERO;
        };
    }

    /** The service expected to act next on a job in {@code state}. */
    private static Stage stageOf(JobState state) {
        return switch (state) {
            case QUEUED, INGESTING -> Stage.STAGE_INGESTION;
            case PREPROCESSING -> Stage.STAGE_PREPROCESSING;
            case TRAINING -> Stage.STAGE_TRAINING;
            case EVALUATING -> Stage.STAGE_EVALUATION;
            default -> Stage.STAGE_REGISTRY;
        };
    }

    private static String human(Duration d) {
        long s = d.toSeconds();
        return s >= 3600
                ? String.format(Locale.ROOT, "%dh%02dm", s / 3600, s % 3600 / 60)
                : s >= 60 ? String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60) : s + "s";
    }
}
