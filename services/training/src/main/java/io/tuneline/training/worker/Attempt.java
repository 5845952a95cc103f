package io.tuneline.training.worker;

import com.google.protobuf.util.Timestamps;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.method.Precision;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.Checkpointing;
import io.tuneline.engine.train.TrainingCheckpoint;
import io.tuneline.engine.train.TrainingListener;
import io.tuneline.engine.train.TrainingOutcome;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.Hyperparameters;
import io.tuneline.proto.v1.MethodSpec;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.proto.v1.TrainingProgress;
import io.tuneline.training.run.RunStore;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.BooleanSupplier;

/**
 * What every training attempt does around its trainer, whatever the task: resume from the newest
 * stored checkpoint, keep the metrics log, publish checkpoints and rate-limited progress, upload
 * the tuned model's directory and write {@code result.json}. {@link ClassificationRun} and {@link
 * CausalLmRun} build the model and pick the trainer.
 */
final class Attempt implements TrainingListener {
    /** At most one progress event per interval, plus the last step. */
    static final long PROGRESS_INTERVAL_MS = 2000;

    /** Default checkpoint interval: often enough to lose little, rarely enough to cost little. */
    static final long DEFAULT_CHECKPOINT_EVERY = 50;

    private final ArtifactStore store;
    private final ProgressSink progress;
    private final String jobId;
    private final String eventJobId;
    private final int attempt;
    private final String runId;
    private final EngineRuntime runtime;
    private final long started;
    private final MetricsLog metricsLog;
    private Precision precision = Precision.FP32;
    private StepReport last;
    private long lastSent;

    /**
     * @param jobId the run's own id under {@code runs/}: the job's, or for one method of a
     *     comparison {@code <job>.<method>}
     * @param eventJobId the job the run belongs to, the key of its progress events
     * @param started when the attempt began (System.currentTimeMillis), for its duration
     */
    Attempt(
            ArtifactStore store,
            ProgressSink progress,
            String jobId,
            String eventJobId,
            int attempt,
            EngineRuntime runtime,
            long started) {
        this.store = store;
        this.progress = progress;
        this.jobId = jobId;
        this.eventJobId = eventJobId;
        this.attempt = attempt;
        this.runId = jobId + "-a" + attempt;
        this.runtime = runtime;
        this.started = started;
        this.metricsLog = new MetricsLog(store, jobId);
    }

    /**
     * Checkpoints under {@code scratch/checkpoints}, published to the store as they are written,
     * resuming from the newest stored one (the metrics log resumes with it).
     */
    Checkpointing checkpointing(Path scratch, Hyperparameters h, BooleanSupplier stopRequested)
            throws IOException {
        RunCheckpoints checkpoints = new RunCheckpoints(store, jobId);
        Optional<Path> resumeFrom = checkpoints.fetchLatest(scratch.resolve("resume"));
        if (resumeFrom.isPresent()) {
            System.out.printf(
                    "attempt %d of %s resumes from checkpoint %s%n",
                    attempt, jobId, resumeFrom.get().getFileName());
            metricsLog.resumeAt(TrainingCheckpoint.state(resumeFrom.get()).step());
        }
        return new Checkpointing(
                scratch.resolve("checkpoints"),
                checkpointEvery(h),
                resumeFrom,
                (dir, state) -> {
                    // The log first: once latest.json names this checkpoint, the curve up to its
                    // step must already be stored.
                    metricsLog.store();
                    checkpoints.publish(dir, state);
                },
                stopRequested);
    }

    @Override
    public void onStep(StepReport r) {
        StartupMarks.firstStep(jobId);
        last = r;
        metricsLog.add(r);
        long now = System.currentTimeMillis();
        // Validation points are rare and each one matters.
        if (now - lastSent >= PROGRESS_INTERVAL_MS
                || r.step() == r.totalSteps()
                || r.validationLoss().isPresent()) {
            lastSent = now;
            progress.publish(progress(eventJobId, runId, r, runtime));
        }
    }

    /**
     * Uploads the tuned model under {@code runs/{jobId}/model/}: {@code weights} first (its sha256
     * is the model's), then the PEFT adapter's files under {@code adapter/} when there is one, then
     * {@code others}; all from {@code directory}.
     */
    /**
     * Uploads a tuned model's directory {@code out} (its {@code weights} and the {@code others}
     * already written there). A method that cannot be merged into the weights (virtual tokens,
     * prefixes, bottleneck adapters change the forward pass) has its state written beside them
     * ({@link MethodState}): the tuned model is the base weights plus that state. The adapter
     * Python tools load (PEFT's, or the {@code adapters} library's) is written to {@code
     * adapterDir} and uploaded under {@code adapter/} when the method has one.
     */
    List<ArtifactRef> uploadTuned(
            TunableModel model,
            FineTuningMethod method,
            MethodSpec spec,
            String baseRef,
            List<String> labels,
            Path out,
            String weights,
            List<String> others,
            Path adapterDir)
            throws java.io.IOException {
        List<String> files = new ArrayList<>(others);
        if (!method.mergeable()) {
            MethodState.write(model, method, out);
            files.addAll(List.of(MethodState.CONFIG, MethodState.WEIGHTS));
        }
        boolean withAdapter =
                JobSettings.writeAdapter(
                        model,
                        method,
                        spec,
                        ModelCatalog.huggingFaceName(baseRef),
                        labels,
                        adapterDir);
        return uploadModel(
                out, weights, files, withAdapter ? Optional.of(adapterDir) : Optional.empty());
    }

    List<ArtifactRef> uploadModel(
            Path directory, String weights, List<String> others, Optional<Path> adapter) {
        String prefix = modelPrefix();
        List<ArtifactRef> files = new ArrayList<>();
        files.add(upload(directory.resolve(weights), prefix + weights));
        if (adapter.isPresent()) {
            // PEFT's two files, or the adapters library's (its config, weights and head files).
            try (var listing = java.nio.file.Files.list(adapter.get())) {
                for (Path file :
                        listing.filter(java.nio.file.Files::isRegularFile).sorted().toList()) {
                    String name = file.getFileName().toString();
                    files.add(upload(file, prefix + "adapter/" + name));
                }
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(
                        "cannot list the adapter files in " + adapter.get(), e);
            }
        }
        for (String name : others) {
            files.add(upload(directory.resolve(name), prefix + name));
        }
        return files;
    }

    private ArtifactRef upload(Path file, String key) {
        String type = key.endsWith(".json") ? "application/json" : "application/octet-stream";
        return store.put(store.uri(key), file, type);
    }

    /** The attempt's {@code TrainingCompleted}, written to the store as {@code result.json}. */
    /**
     * Resolves the job's precision on this run's device and applies it to {@code model}, whose
     * method is attached; prints the choice, the result and the bytes held in bf16 or fp16. The
     * completed event carries it.
     */
    Precision applyPrecision(Hyperparameters h, TunableModel model) {
        precision = Precision.of(h.getPrecision(), runtime.device());
        Precision.Held held = precision.apply(model);
        System.out.printf(
                "training of %s: precision %s resolved to %s on %s; %d frozen linear weights held"
                        + " in %s (%d -> %d bytes)%s%n",
                jobId,
                h.getPrecision().isEmpty() ? "auto" : h.getPrecision(),
                precision.label(),
                runtime.deviceName(),
                held.layers(),
                precision == Precision.FP16 ? "fp16" : "bf16",
                held.float32Bytes(),
                held.heldBytes(),
                precision.needsLossScaling() ? "; dynamic loss scaling from 2^16" : "");
        return precision;
    }

    TrainingCompleted complete(
            TrainingOutcome outcome, ParameterCounts counts, List<ArtifactRef> files) {
        long size = files.stream().mapToLong(ArtifactRef::getSizeBytes).sum();
        TrainingCompleted.Builder completed =
                TrainingCompleted.newBuilder().setMetricsLog(metricsLog.store());
        outcome.validationLoss().ifPresent(completed::setFinalValidationLoss);
        TrainingCompleted result =
                completed
                        .setJobId(eventJobId)
                        .setRunId(runId)
                        .setModel(
                                ArtifactRef.newBuilder()
                                        .setUri(store.uri(modelPrefix()).toString())
                                        .setSha256(files.get(0).getSha256())
                                        .setSizeBytes(size))
                        .addAllModelFiles(files)
                        .setFinalLoss(outcome.finalLoss())
                        .setSteps(outcome.steps())
                        .setSkippedSteps(outcome.skippedSteps())
                        .setEpochs(last == null ? 0 : last.epoch())
                        .setDurationSeconds((System.currentTimeMillis() - started) / 1000.0)
                        .setDevice(runtime.deviceName())
                        .setPrecision(precision.label())
                        .setTrainableParameters(counts.trainable())
                        .setTotalParameters(counts.total())
                        .setPeakMemoryBytes(peakResidentBytes())
                        .setTokensPerSecond(last == null ? 0 : last.tokensPerSecond())
                        .setCompletedAt(Timestamps.now())
                        .build();
        new RunStore(store).writeResult(jobId, result);
        return result;
    }

    /**
     * The worker process's peak resident memory ({@code VmHWM} of {@code /proc/self/status}: the
     * JVM heap, libtorch's allocations and the model together, what a memory limit counts); 0 where
     * there is no such file.
     */
    static long peakResidentBytes() {
        try {
            for (String line : java.nio.file.Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (java.io.IOException | NumberFormatException e) {
            // Not Linux, or an unreadable status: the figure is optional.
        }
        return 0;
    }

    private String modelPrefix() {
        return RunStore.runPrefix(jobId) + "model/";
    }

    static long checkpointEvery(Hyperparameters h) {
        return h.getCheckpointEverySteps() > 0
                ? h.getCheckpointEverySteps()
                : DEFAULT_CHECKPOINT_EVERY;
    }

    static TrainingProgress progress(
            String jobId, String runId, StepReport r, EngineRuntime runtime) {
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
}
