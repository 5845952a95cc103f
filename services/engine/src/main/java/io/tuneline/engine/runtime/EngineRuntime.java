package io.tuneline.engine.runtime;

import ai.djl.Device;
import ai.djl.engine.Engine;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The PyTorch engine as Tuneline uses it: offline (libtorch comes from the {@code pytorch-native-*}
 * jar on the class path, never from the network), on a GPU when the machine has one, otherwise on
 * the CPU with a chosen number of threads.
 */
public final class EngineRuntime {
    private static final Logger LOG = LoggerFactory.getLogger(EngineRuntime.class);
    public static final String ENGINE = "PyTorch";

    /**
     * Why the first start failed, for every later one: a process that cannot load libtorch says the
     * first reason each time instead of trying the native load again (the training worker starts
     * the engine early on another thread, and its run again).
     */
    private static EngineUnavailableException failed;

    private final Engine engine;
    private final Device device;

    private EngineRuntime(Engine engine, Device device) {
        this.engine = engine;
        this.device = device;
    }

    /**
     * Starts the engine. DJL reads its settings once, at the first engine use, so they are set here
     * before that: offline mode always, and the CPU thread counts when given.
     *
     * @param cpuThreads intra-op threads on CPU; 0 leaves PyTorch's default (one per core)
     */
    public static synchronized EngineRuntime start(int cpuThreads) {
        if (failed != null) {
            throw new EngineUnavailableException(failed.getMessage(), failed.getCause());
        }
        System.setProperty("ai.djl.offline", "true");
        if (cpuThreads > 0 && System.getProperty("ai.djl.pytorch.num_threads") == null) {
            System.setProperty("ai.djl.pytorch.num_threads", Integer.toString(cpuThreads));
            System.setProperty("ai.djl.pytorch.num_interop_threads", "1");
        }
        Engine engine;
        try {
            engine = Engine.getEngine(ENGINE);
        } catch (RuntimeException e) {
            throw failed =
                    new EngineUnavailableException(
                            "the PyTorch engine could not start: "
                                    + e.getMessage()
                                    + ". The native library comes from the pytorch-native-cpu jar"
                                    + " (classifier linux-x86_64) or, for GPUs, pytorch-native-cu124 (Maven"
                                    + " profile cuda); check it is on the class path and that"
                                    + " ENGINE_CACHE_DIR is writable",
                            e);
        }
        Device device = chooseDevice(engine.getGpuCount());
        LOG.info(
                "PyTorch {} on {} ({} GPU(s) visible)",
                engine.getVersion(),
                device,
                engine.getGpuCount());
        return new EngineRuntime(engine, device);
    }

    /** The first GPU when there is one: a training run gets its GPUs by scheduling, not here. */
    static Device chooseDevice(int gpuCount) {
        return gpuCount > 0 ? Device.gpu(0) : Device.cpu();
    }

    /**
     * The devices a run given {@code gpus} GPUs trains on, the first being {@link #device()}: that
     * many of the visible GPUs (all of them when fewer are visible), or the CPU alone when there is
     * none: data parallelism switches off on a CPU.
     */
    public List<Device> devices(int gpus) {
        return chooseDevices(engine.getGpuCount(), gpus);
    }

    static List<Device> chooseDevices(int visible, int wanted) {
        if (visible == 0) {
            return List.of(Device.cpu());
        }
        List<Device> out = new ArrayList<>();
        for (int i = 0; i < Math.max(1, Math.min(visible, wanted)); i++) {
            out.add(Device.gpu(i));
        }
        return out;
    }

    public Engine engine() {
        return engine;
    }

    public Device device() {
        return device;
    }

    /** {@code cpu} or {@code gpu(N)}, as events and metrics name the device. */
    public String deviceName() {
        return device.isGpu() ? "gpu(" + device.getDeviceId() + ")" : "cpu";
    }

    public String version() {
        return engine.getVersion();
    }
}
