package io.tuneline.training.worker;

import ai.djl.Device;
import ai.djl.Model;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * The model again on every further device of a data-parallel run (the engine's {@code
 * DataParallel}: each replica takes a share of every batch, the first device's model steps and is
 * the result). Each replica is loaded and prepared as the first one was (the same base, method and
 * precision); the training loop copies the first one's weights into them before the first step.
 * Closes them when the run ends.
 */
final class Replicas implements AutoCloseable {
    /** Loads and prepares the model on one device. */
    @FunctionalInterface
    interface Loader {
        Model load(Device device) throws IOException;
    }

    private final List<Model> models = new ArrayList<>();

    private Replicas() {}

    /**
     * The replicas on {@code devices} after the first (the run's own model is there); none on one
     * device. A failure closes what was loaded.
     */
    static Replicas load(String jobId, List<Device> devices, int gpusAsked, Loader loader)
            throws IOException {
        Replicas r = new Replicas();
        if (devices.size() == 1) {
            if (gpusAsked > 1) {
                System.out.printf(
                        "training of %s: resources.gpus %d, but %s: data parallelism off, training"
                                + " on %s alone%n",
                        jobId,
                        gpusAsked,
                        devices.get(0).isGpu() ? "one GPU is visible" : "no GPU is visible",
                        devices.get(0));
            }
            return r;
        }
        try {
            for (Device d : devices.subList(1, devices.size())) {
                r.models.add(loader.load(d));
            }
        } catch (IOException | RuntimeException e) {
            r.close();
            throw e;
        }
        System.out.printf(
                "training of %s: data parallel over %s, every batch split %d ways%n",
                jobId, devices, devices.size());
        return r;
    }

    /** The replicas' blocks, as {@code type}. */
    <T> List<T> blocks(Class<T> type) {
        return models.stream().map(m -> type.cast(m.getBlock())).toList();
    }

    @Override
    public void close() {
        models.forEach(Model::close);
    }
}
