package io.tuneline.registry.planning;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.util.Optional;
import java.util.OptionalDouble;

/**
 * {@code tuneline.registry.planning.*}: the device a submitted job's run is planned for, which
 * admission control compares the pre-flight estimate with (docs/planning.md).
 */
@ConfigMapping(prefix = "tuneline.registry.planning")
public interface PlanningConfig {
    /** Whether submissions are estimated and refused when they do not fit. */
    @WithDefault("true")
    boolean enabled();

    /**
     * The training service's executor: {@code local} (runs on this machine's CPU) or {@code
     * kubernetes} (a GPU node of {@link #gpuType()} for jobs asking for GPUs).
     */
    @WithDefault("local")
    String executor();

    /**
     * The memory a run may use, in bytes ("16G", "512M" or a number): on the local executor
     * defaults to the memory this machine has available when the job is submitted; on Kubernetes
     * overrides the GPU type's memory (a MIG slice, say).
     */
    Optional<String> deviceMemory();

    /**
     * CPU cores of a run's pod on Kubernetes when the job does not say ({@code resources.cpu}): the
     * chart's {@code training.worker.resources.requests.cpu}, a Kubernetes quantity; without it,
     * this registry's own cores.
     */
    Optional<String> podCpu();

    /**
     * Memory of a run's pod on Kubernetes when the job does not say ({@code resources.memory}): the
     * chart's {@code training.worker.resources} memory limit (its request where it sets no limit);
     * without it, {@link #deviceMemory()} or this machine's available memory.
     */
    Optional<String> podMemory();

    /** The GPU type of the training nodes ({@code nvidia-a100-80gb}, ...; docs/planning.md). */
    @WithDefault("nvidia-a100-80gb")
    String gpuType();

    /**
     * Achieved fp32 FLOP/s of a CPU run as a whole; by default {@code Device.CPU_FLOPS_PER_CORE}
     * (calibrated on the development machine) times the run's cores.
     */
    OptionalDouble cpuFlops();
}
