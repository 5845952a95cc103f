package io.tuneline.training.progress;

import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.MultiGauge;
import io.micrometer.core.instrument.Tags;
import io.tuneline.common.observability.MetricNames;
import io.tuneline.proto.v1.TrainingProgress;
import io.tuneline.training.run.RunRecord;
import io.tuneline.training.run.RunStatus;
import jakarta.inject.Inject;
import jakarta.inject.Singleton;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.ToDoubleFunction;
import java.util.stream.Collectors;

/**
 * Training as Prometheus sees it: runs by state and priority, and each live run's progress tagged
 * with its job id. A run's series are removed when it ends, so {@code job_id} does not pile up
 * series over the service's life.
 */
@Singleton
public class TrainingMetrics {
    public static final String RUNS = "tuneline.training.runs";
    public static final String PREFIX = "tuneline.training.";
    public static final String PREEMPTIONS = "tuneline.training.preemptions";

    private static final Map<String, ToDoubleFunction<TrainingProgress>> PROGRESS =
            Map.of(
                    "step", p -> p.getStep(),
                    "total.steps", p -> p.getTotalSteps(),
                    "epoch", TrainingProgress::getEpoch,
                    "loss", TrainingProgress::getLoss,
                    "validation.loss",
                            p -> p.hasValidationLoss() ? p.getValidationLoss() : Double.NaN,
                    "learning.rate", TrainingProgress::getLearningRate,
                    "tokens.per.second", TrainingProgress::getTokensPerSecond,
                    "eta.seconds", p -> p.getEtaSeconds(),
                    "device.memory.bytes", p -> p.getDeviceMemoryBytes(),
                    "last.progress.timestamp.seconds",
                            p ->
                                    p.getReportedAt().getSeconds()
                                            + p.getReportedAt().getNanos() / 1e9);

    private final MeterRegistry registry;
    private final MultiGauge runs;
    private final io.micrometer.core.instrument.Counter preemptions;
    private final Map<String, RunStatus> statuses = new ConcurrentHashMap<>();
    private final Map<String, Integer> priorities = new ConcurrentHashMap<>();
    private final Map<String, Live> live = new ConcurrentHashMap<>();

    private record Live(AtomicReference<TrainingProgress> latest, List<Meter> meters) {}

    @Inject
    public TrainingMetrics(MeterRegistry registry) {
        this.registry = registry;
        this.runs =
                MultiGauge.builder(RUNS)
                        .description("Training runs by state (queued, running) and priority")
                        .register(registry);
        this.preemptions =
                io.micrometer.core.instrument.Counter.builder(PREEMPTIONS)
                        .description(
                                "Runs stopped from outside with a checkpoint and resumed (spot"
                                        + " nodes, preemption, eviction, controller restarts)")
                        .register(registry);
        refresh();
    }

    /** Full names of the per-job progress gauges. */
    public static List<String> progressNames() {
        return PROGRESS.keySet().stream().map(k -> PREFIX + k).sorted().toList();
    }

    public void priority(String jobId, int priority) {
        priorities.put(jobId, priority);
    }

    /** A run was preempted and resumes ({@code tuneline_training_preemptions_total}). */
    public void preempted(String jobId) {
        preemptions.increment();
    }

    public void track(RunRecord record) {
        statuses.put(record.jobId(), record.status());
        refresh();
    }

    /** The run ended: forget its state and remove its per-job series. */
    public void finished(String jobId) {
        statuses.remove(jobId);
        priorities.remove(jobId);
        Live gone = live.remove(jobId);
        if (gone != null) {
            gone.meters().forEach(registry::remove);
        }
        refresh();
    }

    public void progress(TrainingProgress progress) {
        // Runs are tracked by their own id, which the run id starts with: the job's, or a
        // comparison method's "<job>.<method>" (whose events carry the job's id).
        String jobId =
                progress.getRunId().isEmpty()
                        ? progress.getJobId()
                        : progress.getRunId().replaceFirst("-a[0-9]+$", "");
        if (!statuses.containsKey(jobId)) {
            return; // not a live run of this controller (ended, or another replica's)
        }
        Live entry =
                live.computeIfAbsent(
                        jobId,
                        id -> {
                            AtomicReference<TrainingProgress> latest =
                                    new AtomicReference<>(progress);
                            List<Meter> meters = new ArrayList<>();
                            PROGRESS.forEach(
                                    (name, value) ->
                                            meters.add(
                                                    Gauge.builder(
                                                                    PREFIX + name,
                                                                    latest,
                                                                    ref ->
                                                                            value.applyAsDouble(
                                                                                    ref.get()))
                                                            .tag(MetricNames.TAG_JOB_ID, id)
                                                            .register(registry)));
                            return new Live(latest, meters);
                        });
        entry.latest().set(progress);
    }

    private void refresh() {
        Map<List<String>, Long> counts =
                statuses.entrySet().stream()
                        .filter(
                                e ->
                                        e.getValue() == RunStatus.QUEUED
                                                || e.getValue() == RunStatus.RUNNING)
                        .collect(
                                Collectors.groupingBy(
                                        e ->
                                                List.of(
                                                        e.getValue()
                                                                .name()
                                                                .toLowerCase(java.util.Locale.ROOT),
                                                        Integer.toString(
                                                                priorities.getOrDefault(
                                                                        e.getKey(), 0))),
                                        Collectors.counting()));
        // Zero rows keep the series alive at 0 rather than vanishing when the queue empties.
        Map<Tags, Long> values = new java.util.LinkedHashMap<>();
        values.put(Tags.of("state", "queued", "priority", "0"), 0L);
        values.put(Tags.of("state", "running", "priority", "0"), 0L);
        counts.forEach(
                (key, count) ->
                        values.put(Tags.of("state", key.get(0), "priority", key.get(1)), count));
        List<MultiGauge.Row<?>> rows = new ArrayList<>();
        values.forEach((tags, count) -> rows.add(MultiGauge.Row.of(tags, count)));
        runs.register(rows, true);
    }
}
