package io.tuneline.training.run;

import com.google.protobuf.util.Timestamps;
import io.quarkus.runtime.StartupEvent;
import io.tuneline.common.job.ComparedMethods;
import io.tuneline.common.messaging.EventPublisher;
import io.tuneline.common.observability.JobLogContext;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.proto.v1.CancelJob;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.JobStatus;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.proto.v1.Resources;
import io.tuneline.proto.v1.Stage;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.training.config.TrainingConfig;
import io.tuneline.training.progress.TrainingMetrics;
import jakarta.annotation.PreDestroy;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import org.eclipse.microprofile.reactive.messaging.Channel;
import org.eclipse.microprofile.reactive.messaging.Emitter;
import org.jboss.logging.Logger;

/**
 * Decides where and when each job's training runs and follows it to a terminal state: queued,
 * running, retried from its checkpoint after a crash (up to {@code max-attempts}), succeeded,
 * failed with a reason, or cancelled. Its state lives in the object store, so a restarted
 * controller carries on with the runs that were in flight.
 */
@ApplicationScoped
public class TrainingController {
    static final String ERROR_TRAINING_FAILED = "TRAINING_FAILED";
    static final String ERROR_NO_WORKER = "TRAINING_WORKER_MISSING";

    /** Why a comparison method's run was stopped: another method of the job failed. */
    static final String SIBLING_FAILED = "another method of the comparison failed";

    private static final Logger LOG = Logger.getLogger(TrainingController.class);

    private final RunLauncher launcher;
    private final RunStore runs;
    private final TrainingConfig config;
    private final EventPublisher publisher;
    private final Emitter<byte[]> status;
    private final Emitter<byte[]> completed;
    private final TrainingMetrics metrics;
    private AutoCloseable watch;

    /** Jobs whose run is not terminal, as this controller last knew: what reconcile looks at. */
    private final java.util.Set<String> active = java.util.concurrent.ConcurrentHashMap.newKeySet();

    /** Runs the executor said it did not know on the last reconcile pass. */
    private final java.util.Set<String> unknownOnce = new java.util.HashSet<>();

    private java.util.concurrent.ScheduledExecutorService reconciler;

    @Inject
    public TrainingController(
            RunLauncher launcher,
            ArtifactStore store,
            TrainingConfig config,
            EventPublisher publisher,
            @Channel("job-status") Emitter<byte[]> status,
            @Channel("training-completed") Emitter<byte[]> completed,
            TrainingMetrics metrics) {
        this.launcher = launcher;
        this.runs = new RunStore(store);
        this.config = config;
        this.publisher = publisher;
        this.status = status;
        this.completed = completed;
        this.metrics = metrics;
    }

    /** Follows the executor and picks up the runs a previous controller left in flight. */
    void onStart(@Observes StartupEvent event) {
        watch = launcher.watch(this::onRunState);
        try {
            recoverInFlight();
        } catch (RuntimeException e) {
            // The store is unreachable at start-up: the reconcile pass recovers once it is back.
            LOG.warnf("cannot recover the runs in flight yet: %s", e.getMessage());
            recoverPending = true;
        }
        long every = config.reconcileInterval().toMillis();
        reconciler =
                java.util.concurrent.Executors.newSingleThreadScheduledExecutor(
                        r -> {
                            Thread t = new Thread(r, "training-reconcile");
                            t.setDaemon(true);
                            return t;
                        });
        reconciler.scheduleWithFixedDelay(
                this::reconcileQuietly, every, every, java.util.concurrent.TimeUnit.MILLISECONDS);
    }

    private volatile boolean recoverPending;

    private void reconcileQuietly() {
        try {
            if (recoverPending) {
                recoverInFlight();
                recoverPending = false;
            }
            reconcile();
        } catch (RuntimeException e) {
            LOG.warnf(
                    "reconcile pass failed, next in %s: %s",
                    config.reconcileInterval(), e.getMessage());
        }
    }

    /**
     * Asks the executor again about every run in flight and acts on what it says. A run's end that
     * the controller could not record (the object store was down when the worker exited) is
     * otherwise lost, and the job would stay in training with nothing working on it; this pass
     * finds it once the store is back. A Kubernetes run the executor has not heard of on two passes
     * in a row (its Job is gone) is treated as a failed attempt that may be retried.
     */
    public synchronized void reconcile() {
        for (String jobId : List.copyOf(active)) {
            try (var ctx = JobLogContext.of(jobId)) {
                Optional<RunRecord> current = runs.record(jobId);
                if (current.isEmpty() || current.get().status().terminal()) {
                    forget(jobId);
                    continue;
                }
                RunRecord record = current.get();
                RunState state =
                        launcher.state(request(jobId, runs.input(jobId), record.attempt()));
                metrics.track(record);
                // Only a Kubernetes Job can vanish under the controller (deleted after its TTL,
                // or by hand); the local executor runs in this process and knows every run it
                // started, and runs from before a restart are recovered at start-up.
                if (state instanceof RunState.Unknown
                        && record.status() != RunStatus.CANCELLING
                        && config.executor() == TrainingConfig.Executor.KUBERNETES) {
                    if (unknownOnce.add(jobId)) {
                        continue;
                    }
                    unknownOnce.remove(jobId);
                    LOG.warnf(
                            "the executor has no run for attempt %d, recorded as %s; treating it"
                                    + " as failed",
                            record.attempt(), record.status());
                    failed(
                            record,
                            new RunState.Failed(
                                    "the executor lost attempt "
                                            + record.attempt()
                                            + " (no worker and no exit recorded)",
                                    true));
                    continue;
                }
                unknownOnce.remove(jobId);
                if (!(state instanceof RunState.Pending) && !(state instanceof RunState.Running)) {
                    onRunState(record.key(), state);
                }
            } catch (RuntimeException e) {
                LOG.warnf("cannot reconcile the run of %s yet: %s", jobId, e.getMessage());
            }
        }
    }

    private void forget(String jobId) {
        active.remove(jobId);
        unknownOnce.remove(jobId);
    }

    /** Carries on with every run that is not finished, as recorded in the object store. */
    public synchronized void recoverInFlight() {
        for (RunRecord record : runs.all()) {
            if (!record.status().terminal()) {
                active.add(record.jobId());
                metrics.priority(
                        record.jobId(),
                        runs.input(record.jobId()).getJob().getResources().getPriority());
                metrics.track(record);
                try (var ctx = JobLogContext.of(record.jobId())) {
                    recover(record);
                }
            }
        }
    }

    @PreDestroy
    void stop() throws Exception {
        if (reconciler != null) {
            reconciler.shutdownNow();
        }
        if (watch != null) {
            watch.close();
        }
    }

    /** A prepared dataset arrived: queue its training. Returns at once; the run goes on alone. */
    public synchronized void submit(DatasetPrepared prepared) {
        String jobId = prepared.getJobId();
        Optional<RunRecord> existing = runs.record(jobId);
        if (existing.isPresent()) {
            LOG.infof(
                    "training of %s is already %s (attempt %d); not starting another",
                    jobId, existing.get().status(), existing.get().attempt());
            return;
        }
        if (ComparedMethods.isComparison(prepared.getJob()) && workerConfigured()) {
            submitComparison(prepared);
            return;
        }
        runs.writeInput(prepared);
        RunRecord record = new RunRecord(jobId, 1, RunStatus.QUEUED, "queued", Instant.now());
        runs.save(record);
        active.add(jobId);
        metrics.priority(jobId, prepared.getJob().getResources().getPriority());
        metrics.track(record);
        if (!workerConfigured()) {
            fail(
                    record,
                    ERROR_NO_WORKER,
                    "no training worker is configured: set tuneline.training.local.worker-command"
                            + " to the command that runs the engine's worker");
            return;
        }
        statusChanged(jobId, JobStatus.JOB_STATUS_TRAINING, "queued for training");
        launcher.start(request(jobId, prepared, 1));
    }

    private boolean workerConfigured() {
        return config.executor() != TrainingConfig.Executor.LOCAL
                || config.local().workerCommand().isPresent();
    }

    /**
     * A method-comparison job: one run per method, each under its own run id with the job's data,
     * splits, seed and step budget and only {@code method} changed, all queued at once so that the
     * executor's slots decide how many train side by side. The list of methods is written last; a
     * redelivery after a crash queues only the methods not queued yet (recovery starts the others).
     */
    private void submitComparison(DatasetPrepared prepared) {
        String jobId = prepared.getJobId();
        if (runs.comparison(jobId).isPresent()) {
            LOG.infof(
                    "the methods of comparison %s are already queued; not starting others", jobId);
            return;
        }
        List<ComparedMethods.Member> members = ComparedMethods.of(prepared.getJob());
        List<RunRequest> starts = new ArrayList<>();
        for (ComparedMethods.Member member : members) {
            String runId = RunStore.comparisonRunId(jobId, member.name());
            if (runs.record(runId).isPresent()) {
                continue;
            }
            DatasetPrepared input =
                    prepared.toBuilder()
                            .setJob(ComparedMethods.memberJob(prepared.getJob(), member))
                            .build();
            runs.writeInput(runId, input);
            RunRecord record = new RunRecord(runId, 1, RunStatus.QUEUED, "queued", Instant.now());
            runs.save(record);
            active.add(runId);
            metrics.priority(runId, prepared.getJob().getResources().getPriority());
            metrics.track(record);
            starts.add(request(runId, input, 1));
        }
        List<String> names = members.stream().map(ComparedMethods.Member::name).toList();
        runs.writeComparison(jobId, names);
        statusChanged(
                jobId,
                JobStatus.JOB_STATUS_TRAINING,
                "queued for training: "
                        + names.size()
                        + " methods compared ("
                        + String.join(", ", names)
                        + ") on the same data, splits, seed and steps");
        starts.forEach(launcher::start);
    }

    /** The job a run belongs to: the run's own id, or the part before "." of a method's run. */
    static String jobOf(String runId) {
        int dot = runId.indexOf('.');
        return dot < 0 ? runId : runId.substring(0, dot);
    }

    /** "lora: " for the run of a comparison's LoRA method, so messages say which run; else "". */
    private static String about(String runId) {
        int dot = runId.indexOf('.');
        return dot < 0 ? "" : runId.substring(dot + 1) + ": ";
    }

    /**
     * A CancelJob arrived. A job not yet at training is remembered as cancelled and reported
     * CANCELLED at once: it will never be trained, so nothing later would say so.
     */
    public synchronized void cancel(CancelJob cancel) {
        String jobId = cancel.getJobId();
        Optional<RunRecord> existing = runs.record(jobId);
        String why =
                cancel.getReason().isBlank() ? "cancelled" : "cancelled: " + cancel.getReason();
        Optional<List<String>> compared = runs.comparison(jobId);
        if (existing.isEmpty() && compared.isPresent()) {
            for (String method : compared.get()) {
                String runId = RunStore.comparisonRunId(jobId, method);
                runs.record(runId).ifPresent(r -> cancelRun(r, why));
            }
            return;
        }
        if (existing.isEmpty()) {
            runs.save(new RunRecord(jobId, 0, RunStatus.CANCELLED, why, Instant.now()));
            LOG.infof("job cancelled before its training was queued; it will not be trained");
            statusChanged(jobId, JobStatus.JOB_STATUS_CANCELLED, why + " before training started");
            return;
        }
        cancelRun(existing.get(), why);
    }

    private void cancelRun(RunRecord record, String why) {
        String runId = record.jobId();
        if (record.status().terminal()) {
            LOG.infof("cancel ignored: %straining already %s", about(runId), record.status());
            return;
        }
        runs.save(record.with(RunStatus.CANCELLING, why));
        LOG.infof("cancelling %sattempt %d (%s)", about(runId), record.attempt(), why);
        if (!launcher.cancel(request(runId, runs.input(runId), record.attempt()))) {
            cancelled(runs.record(runId).orElseThrow());
        }
    }

    /** The executor reports a run's state; the controller moves the job along. */
    synchronized void onRunState(RunKey key, RunState state) {
        if (key == null) {
            return;
        }
        try (var ctx = JobLogContext.of(key.jobId())) {
            Optional<RunRecord> current = runs.record(key.jobId());
            if (current.isEmpty()
                    || current.get().status().terminal()
                    || current.get().attempt() != key.attempt()) {
                return;
            }
            RunRecord record = current.get();
            if (state instanceof RunState.Running) {
                if (record.status() == RunStatus.QUEUED) {
                    runs.save(record.with(RunStatus.RUNNING, "running"));
                    metrics.track(runs.record(key.jobId()).orElseThrow());
                    statusChanged(
                            jobOf(key.jobId()),
                            JobStatus.JOB_STATUS_TRAINING,
                            about(key.jobId())
                                    + "training, attempt "
                                    + key.attempt()
                                    + " on the "
                                    + config.executor().name().toLowerCase(Locale.ROOT)
                                    + " executor");
                }
            } else if (state instanceof RunState.WaitingForAdmission waiting) {
                waitingForAdmission(record, waiting);
            } else if (state instanceof RunState.Succeeded) {
                succeeded(record);
            } else if (state instanceof RunState.Failed failed) {
                failed(record, failed);
            } else if (state instanceof RunState.Preempted preempted) {
                preempted(record, preempted.reason());
            } else if (state instanceof RunState.Unknown
                    && record.status() == RunStatus.CANCELLING) {
                cancelled(record);
            }
        } catch (RuntimeException e) {
            LOG.errorf(e, "cannot handle %s of run %s", state, key);
        }
    }

    /**
     * The run's Job waits in Kueue's queue. Queued: the job's status says so (once per change).
     * Running: the queue took its admission back (Kueue preempts by suspending the Job, whose pods
     * are stopped with SIGTERM and store a checkpoint), so the run resumes as a preemption.
     */
    private void waitingForAdmission(RunRecord record, RunState.WaitingForAdmission waiting) {
        if (record.status() == RunStatus.QUEUED && !waiting.detail().equals(record.reason())) {
            runs.save(record.with(RunStatus.QUEUED, waiting.detail()));
            LOG.infof("attempt %d %s", record.attempt(), waiting.detail());
            statusChanged(
                    jobOf(record.jobId()),
                    JobStatus.JOB_STATUS_TRAINING,
                    about(record.jobId()) + "attempt " + record.attempt() + " " + waiting.detail());
        } else if (record.status() == RunStatus.RUNNING) {
            preempted(
                    record,
                    "Kueue suspended the Job again: its Workload was evicted (preempted by a"
                            + " higher-priority workload, or its quota reclaimed) and waits in"
                            + " queue "
                            + waiting.queue());
        }
    }

    private void succeeded(RunRecord record) {
        Optional<TrainingCompleted> result = runs.result(record.jobId());
        if (result.isEmpty()) {
            fail(
                    record,
                    ERROR_TRAINING_FAILED,
                    "the worker exited successfully but wrote no result (runs/"
                            + record.jobId()
                            + "/result.json); its log says why");
            return;
        }
        DatasetPrepared input = runs.input(record.jobId());
        TrainingCompleted.Builder completedRun =
                result.get().toBuilder()
                        .setJobId(input.getJobId())
                        .setJob(input.getJob())
                        .setDataset(input)
                        .setRunId(record.key().runId());
        if (!input.getJobId().equals(record.jobId())) {
            completedRun
                    .setComparedMethod(record.jobId().substring(input.getJobId().length() + 1))
                    .addAllComparedMethods(
                            runs.comparison(input.getJobId())
                                    .orElseThrow(
                                            () ->
                                                    new IllegalStateException(
                                                            "runs/"
                                                                    + input.getJobId()
                                                                    + "/comparison.json is"
                                                                    + " missing")));
        }
        TrainingCompleted event = completedRun.build();
        publisher.sendAndWait(completed, event);
        runs.save(record.with(RunStatus.SUCCEEDED, "succeeded"));
        forget(record.jobId());
        metrics.finished(record.jobId());
        LOG.infof(
                "%straining finished: %d steps, final loss %.4f, model %s",
                about(record.jobId()),
                event.getSteps(),
                event.getFinalLoss(),
                event.getModel().getUri());
    }

    private void failed(RunRecord record, RunState.Failed failure) {
        if (record.status() == RunStatus.CANCELLING) {
            cancelled(record);
            return;
        }
        if (failure.retriable() && record.failedAttempts() < config.maxAttempts()) {
            RunRecord next =
                    record.nextAttempt(
                            "attempt " + record.attempt() + " failed: " + failure.reason());
            runs.save(next);
            metrics.track(next);
            statusChanged(
                    jobOf(record.jobId()),
                    JobStatus.JOB_STATUS_TRAINING,
                    about(record.jobId())
                            + "attempt "
                            + record.attempt()
                            + " failed ("
                            + firstLine(failure.reason())
                            + "); restarting from the last checkpoint as attempt "
                            + next.attempt()
                            + (record.preemptions() == 0
                                    ? " of " + config.maxAttempts()
                                    : " (failed attempts "
                                            + next.failedAttempts()
                                            + " of "
                                            + config.maxAttempts()
                                            + "; "
                                            + record.preemptions()
                                            + " preemption(s) not counted)"));
            launcher.start(request(record.jobId(), runs.input(record.jobId()), next.attempt()));
            return;
        }
        String message =
                failure.retriable()
                        ? "training failed "
                                + record.failedAttempts()
                                + " times; the last attempt: "
                                + failure.reason()
                        : "training failed: " + failure.reason();
        fail(record, ERROR_TRAINING_FAILED, message);
    }

    /**
     * A worker stopped from outside with its checkpoint stored: start the next attempt from it at
     * once, without counting a failure (up to {@code max-preemptions}).
     */
    private void preempted(RunRecord record, String reason) {
        if (record.status() == RunStatus.CANCELLING) {
            cancelled(record);
            return;
        }
        if (record.preemptions() >= config.maxPreemptions()) {
            fail(
                    record,
                    ERROR_TRAINING_FAILED,
                    "training was preempted "
                            + (record.preemptions() + 1)
                            + " times, more than max-preemptions "
                            + config.maxPreemptions()
                            + " allows; the last time: "
                            + reason);
            return;
        }
        RunRecord next =
                record.resumedAfterPreemption(
                        "attempt " + record.attempt() + " preempted: " + reason);
        runs.save(next);
        metrics.preempted(record.jobId());
        metrics.track(next);
        LOG.infof("attempt %d preempted (%s); resuming", record.attempt(), firstLine(reason));
        statusChanged(
                jobOf(record.jobId()),
                JobStatus.JOB_STATUS_TRAINING,
                about(record.jobId())
                        + "attempt "
                        + record.attempt()
                        + " preempted ("
                        + firstLine(reason)
                        + "); resuming from its checkpoint as attempt "
                        + next.attempt()
                        + " (preemption "
                        + next.preemptions()
                        + "; not counted as a failure)");
        launcher.start(request(record.jobId(), runs.input(record.jobId()), next.attempt()));
    }

    private void cancelled(RunRecord record) {
        runs.save(record.with(RunStatus.CANCELLED, record.reason()));
        forget(record.jobId());
        metrics.finished(record.jobId());
        if (SIBLING_FAILED.equals(record.reason())) {
            return; // the job failed already; a CANCELLED now would overwrite that
        }
        statusChanged(
                jobOf(record.jobId()),
                JobStatus.JOB_STATUS_CANCELLED,
                about(record.jobId())
                        + record.reason()
                        + "; the run's files are kept in runs/"
                        + record.jobId()
                        + "/");
    }

    /**
     * One method of a comparison failed, so the job has: the other methods' runs are stopped
     * instead of training on for a comparison that cannot be completed.
     */
    private void stopOtherMethods(String failedRun) {
        String jobId = jobOf(failedRun);
        if (jobId.equals(failedRun)) {
            return;
        }
        for (String method : runs.comparison(jobId).orElse(List.of())) {
            String runId = RunStore.comparisonRunId(jobId, method);
            if (!runId.equals(failedRun)) {
                runs.record(runId).ifPresent(r -> cancelRun(r, SIBLING_FAILED));
            }
        }
    }

    private void fail(RunRecord record, String code, String message) {
        runs.save(record.with(RunStatus.FAILED, message));
        forget(record.jobId());
        metrics.finished(record.jobId());
        LOG.warnf("%straining failed: %s", about(record.jobId()), message);
        publisher.sendAndWait(
                status,
                JobFailed.newBuilder()
                        .setJobId(jobOf(record.jobId()))
                        .setStage(Stage.STAGE_TRAINING)
                        .setErrorCode(code)
                        .setMessage(about(record.jobId()) + message)
                        .setRetriable(!ERROR_NO_WORKER.equals(code))
                        .setFailedAt(Timestamps.now())
                        .build());
        stopOtherMethods(record.jobId());
    }

    private void recover(RunRecord record) {
        RunRequest request = request(record.jobId(), runs.input(record.jobId()), record.attempt());
        if (record.status() == RunStatus.CANCELLING) {
            launcher.cancel(request);
            cancelled(record);
            return;
        }
        RunState state = launcher.state(request);
        LOG.infof("recovering attempt %d, executor says %s", record.attempt(), state);
        if (state instanceof RunState.Unknown && record.status() == RunStatus.QUEUED) {
            // Queued and never started: the same attempt waits in the new queue (a restart must
            // not use up the job's attempts).
            launcher.start(request);
            return;
        }
        if (state instanceof RunState.Unknown) {
            // The local executor's workers stop with the controller that started them
            // (TrainingWorker.CONTROLLER_PID); start again from the last checkpoint.
            // A preemption of the run, not a failure of it.
            RunRecord next = record.resumedAfterPreemption("the training controller restarted");
            runs.save(next);
            launcher.start(request(record.jobId(), runs.input(record.jobId()), next.attempt()));
            return;
        }
        onRunState(record.key(), state);
    }

    /**
     * @param runId the job's id, or for one method of a comparison {@code <job>.<method>}
     */
    static RunRequest request(String runId, DatasetPrepared prepared, int attempt) {
        Resources r = prepared.getJob().getResources();
        return new RunRequest(
                runId,
                attempt,
                r.getGpus(),
                r.getCpu().isBlank() ? Optional.empty() : Optional.of(r.getCpu()),
                r.getMemory().isBlank() ? Optional.empty() : Optional.of(r.getMemory()),
                r.getNodeSelectorMap(),
                r.getMaxRuntimeSeconds(),
                r.getPriority());
    }

    private void statusChanged(String jobId, JobStatus newStatus, String message) {
        publisher.sendAndWait(
                status,
                JobStatusChanged.newBuilder()
                        .setJobId(jobId)
                        .setStatus(newStatus)
                        .setStage(Stage.STAGE_TRAINING)
                        .setMessage(message)
                        .setChangedAt(Timestamps.now())
                        .build());
    }

    private static String firstLine(String text) {
        int nl = text.indexOf('\n');
        return nl < 0 ? text : text.substring(0, nl);
    }
}
