package io.tuneline.registry.planning;

import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.MeterRegistry;
import io.tuneline.common.job.ComparedMethods;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.UnknownModelException;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.plan.Device;
import io.tuneline.engine.plan.Estimate;
import io.tuneline.engine.plan.Estimator;
import io.tuneline.engine.plan.JobPlans;
import io.tuneline.engine.plan.ModelShape;
import io.tuneline.engine.plan.ParameterLayout;
import io.tuneline.engine.plan.TrainingPlan;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.registry.error.RegistryException;
import jakarta.enterprise.context.ApplicationScoped;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.stream.Stream;
import org.jboss.logging.Logger;

/**
 * The pre-flight estimate of a submitted job and admission control (docs/planning.md): the base
 * model's {@code config.json} (never its weights) and the job's settings give the run's peak memory
 * and time on the device it would run on; a job that does not fit is refused with the numbers and
 * the ways out, or with {@code resources.auto_fit} gets a smaller micro-batch and more
 * accumulation, recorded in its labels.
 */
@ApplicationScoped
public class JobPlanner {
    private static final Logger LOG = Logger.getLogger(JobPlanner.class);

    /** Labels the registry adds to an admitted job: the estimate, and what auto-fit chose. */
    public static final String ESTIMATE_LABEL = "tuneline.estimate";

    public static final String PEAK_LABEL = "tuneline.estimated_peak_bytes";
    public static final String AUTO_FIT_LABEL = "tuneline.auto_fit";

    private final PlanningConfig config;
    private final ArtifactStore store;
    private final MeterRegistry meters;

    public JobPlanner(PlanningConfig config, ArtifactStore store, MeterRegistry meters) {
        this.config = config;
        this.store = store;
        this.meters = meters;
    }

    /** A job as admitted: possibly auto-fitted, with its estimate. */
    public record Admission(JobRequested job, Estimate estimate, Optional<String> autoFit) {}

    public boolean enabled() {
        return config.enabled();
    }

    /** The estimate of {@code job} as submitted, on its device. */
    public Estimate estimate(JobRequested job) {
        return Estimator.estimate(plan(job), device(job));
    }

    /**
     * Admits {@code job}: the job as it will be published (the estimate in its labels; with
     * auto-fit, its new micro-batch and accumulation too) and the estimate.
     *
     * @param dryRun a dry run: the same answer, not counted in the admission metrics
     * @throws JobDoesNotFitException when it does not fit and auto-fit is off or cannot help
     */
    public Admission admit(JobRequested job, boolean dryRun) {
        TrainingPlan plan = plan(job);
        Device device = device(job);
        Estimate estimate = Estimator.estimate(plan, device);
        Optional<String> fitted = Optional.empty();
        JobRequested admitted = job;
        if (!estimate.fits()) {
            Optional<TrainingPlan> auto =
                    job.getResources().getAutoFit()
                            ? Estimator.autoFit(plan, device)
                            : Optional.empty();
            if (auto.isEmpty()) {
                if (!dryRun) {
                    count("refused");
                }
                throw refusal(job, plan, device, estimate);
            }
            TrainingPlan chosen = auto.get();
            Estimate before = estimate;
            estimate = Estimator.estimate(chosen, device);
            String note =
                    String.format(
                            Locale.ROOT,
                            "batch_size %d -> %d, gradient_accumulation_steps %d -> %d (%d examples"
                                    + " per optimizer step kept): estimated peak %s -> %s of %s on"
                                    + " %s",
                            plan.microBatch(),
                            chosen.microBatch(),
                            plan.accumulation(),
                            chosen.accumulation(),
                            plan.effectiveBatch(),
                            Estimate.gib(before.peakBytes()),
                            Estimate.gib(estimate.peakBytes()),
                            Estimate.gib(device.memoryBytes()),
                            device.name());
            admitted =
                    JobPlans.withBatch(job, chosen).toBuilder()
                            .putLabels(AUTO_FIT_LABEL, note)
                            .build();
            fitted = Optional.of(note);
            LOG.infof("job %s auto-fitted: %s", job.getJobId(), note);
        }
        admitted =
                admitted.toBuilder()
                        .putLabels(ESTIMATE_LABEL, estimate.summary())
                        .putLabels(PEAK_LABEL, Long.toString(estimate.peakBytes()))
                        .build();
        if (dryRun) {
            return new Admission(admitted, estimate, fitted);
        }
        count(fitted.isPresent() ? "auto_fitted" : "admitted");
        DistributionSummary.builder("tuneline.job.estimated.peak.memory")
                .baseUnit("bytes")
                .description("Pre-flight estimate of an admitted job's peak memory")
                .tag("method", methodName(job))
                .register(meters)
                .record(estimate.peakBytes());
        return new Admission(admitted, estimate, fitted);
    }

    private void count(String outcome) {
        meters.counter("tuneline.job.admissions", "status", outcome).increment();
    }

    private static String methodName(JobRequested job) {
        if (ComparedMethods.isComparison(job)) {
            return "comparison";
        }
        return switch (job.getMethod().getKindCase()) {
            case KIND_NOT_SET -> "full";
            default -> job.getMethod().getKindCase().name().toLowerCase(Locale.ROOT);
        };
    }

    /**
     * The run {@code job} asks for, from its base model's config.json; for a method comparison, the
     * run of the method estimated to need the most memory (each method is a run of its own, and the
     * largest decides whether every one fits).
     */
    TrainingPlan plan(JobRequested job) {
        if (ComparedMethods.isComparison(job)) {
            Device device = device(job);
            return ComparedMethods.of(job).stream()
                    .map(m -> plan(ComparedMethods.memberJob(job, m)))
                    .max(
                            java.util.Comparator.comparingLong(
                                    p -> Estimator.estimate(p, device).peakBytes()))
                    .orElseThrow();
        }
        Path scratch;
        try {
            scratch = Files.createTempDirectory("tuneline-plan-");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        try {
            ModelShape shape =
                    ModelCatalog.shape(
                            job.getBaseModel().getRef(),
                            store::download,
                            scratch,
                            JobPlans.labels(job),
                            JobPlans.pooler(job));
            return JobPlans.of(job, shape);
        } catch (UnknownModelException | IllegalArgumentException e) {
            throw new RegistryException.BadRequest("base_model/method: " + e.getMessage());
        } finally {
            deleteQuietly(scratch);
        }
    }

    /**
     * The device the job's run would use: a GPU of the configured type on the Kubernetes executor
     * for a job asking for GPUs; otherwise this machine's CPU (local executor) or a CPU pod with
     * the job's memory and CPU requests, or where it gives none the chart's for a run's pod.
     *
     * @throws RegistryException.BadRequest when the job's resources.memory or resources.cpu is no
     *     quantity
     */
    Device device(JobRequested job) {
        Optional<Long> memory = config.deviceMemory().map(JobPlanner::bytes);
        boolean kubernetes = config.executor().equalsIgnoreCase("kubernetes");
        if (kubernetes && job.getResources().getGpus() > 0) {
            Device gpu =
                    Device.gpu(config.gpuType())
                            .orElseThrow(
                                    () ->
                                            new IllegalStateException(
                                                    "tuneline.registry.planning.gpu-type '"
                                                            + config.gpuType()
                                                            + "' is none of "
                                                            + Device.gpuTypes()));
            return memory.map(
                            m ->
                                    new Device(
                                            gpu.name(),
                                            true,
                                            m,
                                            gpu.flopsPerSecond(),
                                            gpu.runtimeBytes()))
                    .orElse(gpu);
        }
        Device cpu;
        if (kubernetes) {
            // A pod gets what the job asks for, else the chart's resources for a run's pod.
            long bytes =
                    asked(job.getResources().getMemory(), JobPlanner::bytes)
                            .or(
                                    () ->
                                            configured(
                                                    "pod-memory",
                                                    config.podMemory(),
                                                    JobPlanner::bytes))
                            .or(() -> memory)
                            .orElseGet(Device::availableMemory);
            cpu =
                    asked(job.getResources().getCpu(), JobPlanner::cores)
                            .or(() -> configured("pod-cpu", config.podCpu(), JobPlanner::cores))
                            .map(cores -> pod(bytes, cores))
                            .orElseGet(() -> Device.cpu(bytes));
        } else {
            // The local executor's runs have this machine's cores and its available memory.
            cpu = Device.cpu(memory.orElseGet(Device::availableMemory));
        }
        return config.cpuFlops().isPresent()
                ? new Device(
                        cpu.name(),
                        false,
                        cpu.memoryBytes(),
                        config.cpuFlops().getAsDouble(),
                        cpu.runtimeBytes())
                : cpu;
    }

    private JobDoesNotFitException refusal(
            JobRequested job, TrainingPlan plan, Device device, Estimate estimate) {
        List<String> ways = new ArrayList<>();
        Optional<TrainingPlan> smaller = Estimator.autoFit(plan, device);
        smaller.ifPresent(
                p ->
                        ways.add(
                                String.format(
                                        Locale.ROOT,
                                        "hyperparameters.batch_size %d with"
                                                + " gradient_accumulation_steps %d (the same %d"
                                                + " examples per optimizer step): estimated peak"
                                                + " %s; or set resources.auto_fit: true and the"
                                                + " platform chooses it",
                                        p.microBatch(),
                                        p.accumulation(),
                                        plan.effectiveBatch(),
                                        Estimate.gib(Estimator.estimate(p, device).peakBytes()))));
        for (int seq = plan.sequenceLength() / 2; seq >= 16; seq /= 2) {
            TrainingPlan shorter = plan.withSequenceLength(seq);
            Estimate e = Estimator.estimate(shorter, device);
            if (e.fits()) {
                ways.add(
                        String.format(
                                Locale.ROOT,
                                "hyperparameters.max_seq_length %d (longer texts are cut):"
                                        + " estimated peak %s",
                                seq,
                                Estimate.gib(e.peakBytes())));
                break;
            }
        }
        if (!(plan.method() instanceof FineTuningMethod.Lora)
                && !(plan.method() instanceof FineTuningMethod.Qlora)) {
            List<String> targets = ParameterLayout.of(plan.shape()).defaultLoraTargets();
            FineTuningMethod.Lora lora = new FineTuningMethod.Lora(8, 16f, 0.05f, targets);
            alternative(ways, plan, device, lora, "method {\"lora\": {}} (r 8 on " + targets + ")");
            alternative(
                    ways,
                    plan,
                    device,
                    new FineTuningMethod.Qlora(lora),
                    "method {\"qlora\": {}} (LoRA on an NF4 base)");
        } else if (plan.method() instanceof FineTuningMethod.Lora l) {
            alternative(
                    ways,
                    plan,
                    device,
                    new FineTuningMethod.Qlora(l),
                    "method {\"qlora\": {...}} with the same LoRA settings");
        }
        String message =
                String.format(
                        Locale.ROOT,
                        "job '%s' does not fit: %s. %s",
                        job.getJobId(),
                        estimate.summary(),
                        ways.isEmpty()
                                ? "Neither a micro-batch of 1, shorter sequences nor LoRA/QLoRA"
                                        + " bring it under the device's memory: it needs a device"
                                        + " with at least "
                                        + Estimate.gib(
                                                Estimator.estimate(plan.withBatch(1, 1), device)
                                                        .peakBytes())
                                        + " (tuneline.registry.planning.device-memory or"
                                        + " gpu-type)"
                                : "Ways out: " + String.join("; ", ways));
        return new JobDoesNotFitException(message, estimate, ways);
    }

    private static void alternative(
            List<String> ways,
            TrainingPlan plan,
            Device device,
            FineTuningMethod method,
            String what) {
        TrainingPlan p = plan.withMethod(method);
        Estimate e = Estimator.estimate(p, device);
        if (e.fits()) {
            ways.add(what + ": estimated peak " + Estimate.gib(e.peakBytes()));
        }
    }

    /** A memory size: bytes, or with a suffix K, M, G, T (powers of 1024; "Gi" too). */
    static long bytes(String size) {
        String s = size.trim().toUpperCase(Locale.ROOT).replace("I", "").replace("B", "");
        long unit = 1;
        char last = s.isEmpty() ? ' ' : s.charAt(s.length() - 1);
        int power = "KMGT".indexOf(last);
        if (power >= 0) {
            unit = 1L << (10 * (power + 1));
            s = s.substring(0, s.length() - 1);
        }
        try {
            return (long) (Double.parseDouble(s) * unit);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(
                    "'" + size + "' is not a memory size (bytes, or a number with K, M, G or T)");
        }
    }

    /** A CPU pod with {@code cores}, named so in the refusal and the events. */
    private static Device pod(long bytes, double cores) {
        String count = java.math.BigDecimal.valueOf(cores).stripTrailingZeros().toPlainString();
        return Device.cpu(bytes, cores).named("a CPU pod with " + count + " cores");
    }

    /** The job's {@code resources.*} value parsed, if it gives one; a bad one is a 400. */
    private static <T> Optional<T> asked(
            String value, java.util.function.Function<String, T> parse) {
        if (value.isBlank()) {
            return Optional.empty();
        }
        try {
            return Optional.of(parse.apply(value));
        } catch (IllegalArgumentException e) {
            throw new RegistryException.BadRequest("resources: " + e.getMessage());
        }
    }

    /**
     * This service's {@code tuneline.registry.planning.*} value parsed: a bad one is the operator's
     * to fix (the chart's values), not the job's.
     */
    private static <T> Optional<T> configured(
            String key, Optional<String> value, java.util.function.Function<String, T> parse) {
        try {
            return value.map(parse);
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException(
                    "tuneline.registry.planning." + key + ": " + e.getMessage());
        }
    }

    /** CPU cores of a Kubernetes quantity: "2", "1.5" or "500m". */
    static double cores(String quantity) {
        String s = quantity.trim();
        double scale = s.endsWith("m") ? 1e-3 : 1;
        try {
            double cores =
                    Double.parseDouble(scale < 1 ? s.substring(0, s.length() - 1) : s) * scale;
            if (cores > 0) {
                return cores;
            }
        } catch (NumberFormatException e) {
            // the message below
        }
        throw new IllegalArgumentException(
                "cpu '" + quantity + "' is not a CPU quantity (\"2\", \"1.5\" or \"500m\")");
    }

    private static void deleteQuietly(Path dir) {
        try (Stream<Path> files = Files.walk(dir)) {
            files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            LOG.debugf("could not delete %s: %s", dir, e.getMessage());
        }
    }
}
