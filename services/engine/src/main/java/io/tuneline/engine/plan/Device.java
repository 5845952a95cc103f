package io.tuneline.engine.plan;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * Where a run would execute, as the estimate needs it: how much memory a run may use, how fast it
 * multiplies (achieved, not peak, FLOP/s) and what the runtime itself takes before the model.
 *
 * @param name what the refusal and the events call it ("local CPU", "nvidia-a100-80gb")
 * @param gpu whether memory is a GPU's (then the JVM heap is host memory and does not count)
 * @param memoryBytes the memory a run may use
 * @param flopsPerSecond achieved dense-matmul throughput of a training step in fp32
 * @param runtimeBytes memory taken before any weight: the JVM and libtorch on CPU (calibrated,
 *     docs/planning.md), the CUDA context and libtorch's kernels on a GPU
 */
public record Device(
        String name, boolean gpu, long memoryBytes, double flopsPerSecond, long runtimeBytes) {

    public static final long MIB = 1L << 20;
    public static final long GIB = 1L << 30;

    /**
     * The JVM (metaspace, code cache, threads, and the heap pages a run's garbage touches) and
     * libtorch's CPU runtime loaded through JNI. The JVM with libtorch started measures 170 MiB;
     * the heap adds about as much again, varying by up to 190 MiB between runs of one workload.
     * Fitted to two idle calibration runs of three models under the worker's JVM options and
     * allocator settings, 28 rows each (docs/planning.md, 2026-12-06): the value whose worst error
     * over them is smallest. It was 450 MiB when fitted on 2026-12-04, before the loaders stopped
     * copying every tensor through Java arrays and the worker ran with C1 alone.
     */
    public static final long CPU_RUNTIME_BYTES = 270 * MIB;

    /**
     * The achieved fp32 FLOP/s of a training step per CPU core: the estimator's FLOPs over the
     * median step times of the same calibration runs, 2 cores of an Intel Xeon with AVX-512 (98-220
     * GFLOP/s across the 28 rows; 175 the figure with the smallest worst error, together with
     * {@code Estimator.CPU_SECONDS_PER_MICRO_BATCH}). Taken as linear in the cores a run has, which
     * was measured on 2 cores only: small matmuls scale less, so on many cores the pre-flight time
     * is an optimistic bound until the run's own measurement replaces it at step 10. The AMD EPYC
     * machine of earlier sessions multiplies at 0.55x this one's peak; configure {@code
     * tuneline.registry.planning.cpu-flops} for such a machine.
     */
    public static final double CPU_FLOPS_PER_CORE = 87.5e9;

    public Device {
        if (memoryBytes <= 0 || !(flopsPerSecond > 0) || runtimeBytes < 0) {
            throw new IllegalArgumentException(
                    "a device needs positive memory and FLOP/s, was "
                            + memoryBytes
                            + " bytes and "
                            + flopsPerSecond
                            + " FLOP/s");
        }
    }

    /**
     * A CUDA context with libtorch's kernels loaded: about 0.5-1 GiB depending on the GPU and CUDA
     * version (PyTorch's "CUDA semantics" notes); the larger figure, since no GPU was measured
     * here.
     */
    public static final long CUDA_CONTEXT_BYTES = 1 * GIB;

    /**
     * GPU types by the name a chart's values give ({@code training.planning.gpuType}): memory as
     * sold, fp32 FLOP/s at half the data sheet's dense fp32 peak (the engine trains in fp32 without
     * TF32; half of peak is a usual achieved fraction for transformer training, not measured here:
     * no GPU on the development machine).
     */
    public static final Map<String, Device> GPUS =
            Map.of(
                    "nvidia-t4", gpu("nvidia-t4", 16, 8.1e12),
                    "nvidia-l4", gpu("nvidia-l4", 24, 30.3e12),
                    "nvidia-a10g", gpu("nvidia-a10g", 24, 31.2e12),
                    "nvidia-a100-40gb", gpu("nvidia-a100-40gb", 40, 19.5e12),
                    "nvidia-a100-80gb", gpu("nvidia-a100-80gb", 80, 19.5e12),
                    "nvidia-h100-80gb", gpu("nvidia-h100-80gb", 80, 67e12),
                    "nvidia-h200", gpu("nvidia-h200", 141, 67e12));

    private static Device gpu(String name, long gib, double peakFlops) {
        return new Device(name, true, gib * GIB, peakFlops / 2, CUDA_CONTEXT_BYTES);
    }

    /**
     * GPU types below CUDA compute capability 8.0 (the T4 is Turing, 7.5), on which a job's {@code
     * precision: auto} stays fp32 ({@code method.Precision.MIN_BF16_COMPUTE_CAPABILITY}).
     */
    static final java.util.Set<String> WITHOUT_BF16 = java.util.Set.of("nvidia-t4");

    /** Whether {@code precision: auto} means bf16 here, as the worker decides on its device. */
    public boolean bf16() {
        return gpu && !WITHOUT_BF16.contains(name);
    }

    /** A GPU type of {@link #GPUS}, by name (case-insensitive). */
    public static Optional<Device> gpu(String type) {
        return Optional.ofNullable(GPUS.get(type.toLowerCase(Locale.ROOT)));
    }

    /** The GPU types known, sorted, for messages. */
    public static List<String> gpuTypes() {
        return GPUS.keySet().stream().sorted().toList();
    }

    /** This device under another name, for the refusal and the events. */
    public Device named(String other) {
        return new Device(other, gpu, memoryBytes, flopsPerSecond, runtimeBytes);
    }

    /** This machine's CPU, every core the JVM may use, with {@code memoryBytes} to use. */
    public static Device cpu(long memoryBytes) {
        return cpu(memoryBytes, Runtime.getRuntime().availableProcessors());
    }

    /** A CPU with {@code cores} (a fraction for a Kubernetes request such as 500m) to train on. */
    public static Device cpu(long memoryBytes, double cores) {
        if (!(cores > 0)) {
            throw new IllegalArgumentException(
                    "a CPU needs a positive number of cores, was " + cores);
        }
        return new Device(
                "local CPU", false, memoryBytes, CPU_FLOPS_PER_CORE * cores, CPU_RUNTIME_BYTES);
    }

    /**
     * The memory this machine has available now ({@code MemAvailable} in {@code /proc/meminfo}:
     * free memory plus what the kernel can reclaim), or the JVM's view where there is no such file.
     */
    public static long availableMemory() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (line.startsWith("MemAvailable:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (IOException | NumberFormatException e) {
            // Not Linux: fall through to the JVM's own figure.
        }
        return Runtime.getRuntime().maxMemory();
    }
}
