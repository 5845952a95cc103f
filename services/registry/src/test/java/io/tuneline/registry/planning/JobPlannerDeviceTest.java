package io.tuneline.registry.planning;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tuneline.engine.plan.Device;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.Resources;
import io.tuneline.registry.error.RegistryException;
import java.util.Optional;
import java.util.OptionalDouble;
import org.junit.jupiter.api.Test;

/** The device a CPU job is planned for: its cores and memory, from the job or this machine. */
class JobPlannerDeviceTest {
    private static JobPlanner planner(String executor, OptionalDouble cpuFlops) {
        return planner(executor, cpuFlops, Optional.empty(), Optional.empty());
    }

    private static JobPlanner planner(
            String executor,
            OptionalDouble cpuFlops,
            Optional<String> podCpu,
            Optional<String> podMemory) {
        PlanningConfig config =
                new PlanningConfig() {
                    @Override
                    public boolean enabled() {
                        return true;
                    }

                    @Override
                    public String executor() {
                        return executor;
                    }

                    @Override
                    public Optional<String> deviceMemory() {
                        return Optional.of("16G");
                    }

                    @Override
                    public Optional<String> podCpu() {
                        return podCpu;
                    }

                    @Override
                    public Optional<String> podMemory() {
                        return podMemory;
                    }

                    @Override
                    public String gpuType() {
                        return "nvidia-a100-80gb";
                    }

                    @Override
                    public OptionalDouble cpuFlops() {
                        return cpuFlops;
                    }
                };
        return new JobPlanner(config, null, null);
    }

    private static JobRequested job(String cpu, String memory) {
        return JobRequested.newBuilder()
                .setJobId("j")
                .setResources(Resources.newBuilder().setCpu(cpu).setMemory(memory))
                .build();
    }

    @Test
    void aPodIsPlannedWithTheCoresAndMemoryTheJobAsksFor() {
        JobPlanner k8s = planner("kubernetes", OptionalDouble.empty());
        Device four = k8s.device(job("4", "8Gi"));
        Device half = k8s.device(job("500m", "8Gi"));
        assertThat(half.name()).isEqualTo("a CPU pod with 0.5 cores");
        assertThat(four.memoryBytes()).isEqualTo(8L << 30);
        // A step's matmuls take 8x as long on half a core as on four.
        assertThat(four.flopsPerSecond() / half.flopsPerSecond()).isCloseTo(8.0, within());
        assertThat(k8s.device(job("1.5", "8Gi")).flopsPerSecond() / half.flopsPerSecond())
                .isCloseTo(3.0, within());
    }

    @Test
    void aJobWithoutResourcesIsPlannedForTheChartsRunPod() {
        JobPlanner k8s =
                planner(
                        "kubernetes",
                        OptionalDouble.empty(),
                        Optional.of("4"),
                        Optional.of("24Gi"));
        Device pod = k8s.device(job("", ""));
        assertThat(pod.name()).isEqualTo("a CPU pod with 4 cores");
        assertThat(pod.memoryBytes()).isEqualTo(24L << 30);
        assertThat(pod.flopsPerSecond()).isEqualTo(Device.cpu(1, 4).flopsPerSecond());
        // The job's own requests win over the chart's.
        Device asked = k8s.device(job("1", "2Gi"));
        assertThat(asked.memoryBytes()).isEqualTo(2L << 30);
        assertThat(asked.flopsPerSecond()).isEqualTo(Device.cpu(1, 1).flopsPerSecond());
        // Without the chart's figures: device-memory (16G here) and this registry's cores.
        Device bare = planner("kubernetes", OptionalDouble.empty()).device(job("", ""));
        assertThat(bare.memoryBytes()).isEqualTo(16L << 30);
        assertThat(bare.flopsPerSecond())
                .isEqualTo(
                        Device.cpu(1, Runtime.getRuntime().availableProcessors()).flopsPerSecond());
    }

    @Test
    void theLocalExecutorPlansWithThisMachinesCoresWhateverTheJobAsks() {
        JobPlanner local = planner("local", OptionalDouble.empty());
        Device device = local.device(job("64", "1Ti"));
        assertThat(device.memoryBytes()).isEqualTo(16L << 30);
        assertThat(device.flopsPerSecond())
                .isEqualTo(
                        Device.cpu(16L << 30, Runtime.getRuntime().availableProcessors())
                                .flopsPerSecond());
    }

    @Test
    void configuredFlopsReplaceThePerCoreFigure() {
        Device device = planner("kubernetes", OptionalDouble.of(1e12)).device(job("2", "8Gi"));
        assertThat(device.flopsPerSecond()).isEqualTo(1e12);
    }

    @Test
    void aCpuQuantityThatIsNoneIsABadRequestNamingIt() {
        JobPlanner k8s = planner("kubernetes", OptionalDouble.empty());
        for (String bad : new String[] {"two", "0", "-1", "m", "2 cores"}) {
            assertThatThrownBy(() -> k8s.device(job(bad, "8Gi")))
                    .isInstanceOf(RegistryException.BadRequest.class)
                    .hasMessageContaining("resources: cpu '" + bad + "'");
        }
        assertThatThrownBy(() -> k8s.device(job("2", "lots")))
                .isInstanceOf(RegistryException.BadRequest.class)
                .hasMessageContaining("'lots' is not a memory size");
    }

    @Test
    void aBadPodFigureInTheConfigurationNamesItsKeyNotTheJob() {
        JobPlanner cpu =
                planner(
                        "kubernetes",
                        OptionalDouble.empty(),
                        Optional.of("four"),
                        Optional.of("24Gi"));
        assertThatThrownBy(() -> cpu.device(job("", "")))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("tuneline.registry.planning.pod-cpu: cpu 'four'");
        // The job's own figure does not need the configured one.
        assertThat(cpu.device(job("2", "")).name()).isEqualTo("a CPU pod with 2 cores");
        JobPlanner memory =
                planner("kubernetes", OptionalDouble.empty(), Optional.of("4"), Optional.of("big"));
        assertThatThrownBy(() -> memory.device(job("", "")))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("tuneline.registry.planning.pod-memory: 'big'");
    }

    private static org.assertj.core.data.Offset<Double> within() {
        return org.assertj.core.data.Offset.offset(1e-9);
    }
}
