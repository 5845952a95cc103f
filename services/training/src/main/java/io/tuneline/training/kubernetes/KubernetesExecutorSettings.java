package io.tuneline.training.kubernetes;

import java.nio.file.Path;

/**
 * How training runs become Kubernetes Jobs; the Helm chart sets every value (see the training
 * ConfigMap and the worker pod template it mounts).
 *
 * @param podTemplate YAML of the worker's PodTemplateSpec (image, resources, scheduling)
 * @param gpuResourceName extended resource of a GPU, {@code nvidia.com/gpu}
 * @param ttlSecondsAfterFinished how long Kubernetes keeps a finished Job before deleting it
 * @param backoffLimit pod retries inside one Job; 0 lets the controller decide about retries
 * @param kueue whether Kueue admits the Jobs, and into which queue
 */
public record KubernetesExecutorSettings(
        String namespace,
        Path podTemplate,
        String gpuResourceName,
        int ttlSecondsAfterFinished,
        int backoffLimit,
        KueueSettings kueue) {

    public KubernetesExecutorSettings {
        if (kueue == null) {
            throw new IllegalArgumentException("kueue settings are required (KueueSettings.OFF)");
        }
    }

    /** Without Kueue: every run's Job starts at once. */
    public KubernetesExecutorSettings(
            String namespace,
            Path podTemplate,
            String gpuResourceName,
            int ttlSecondsAfterFinished,
            int backoffLimit) {
        this(
                namespace,
                podTemplate,
                gpuResourceName,
                ttlSecondsAfterFinished,
                backoffLimit,
                KueueSettings.OFF);
    }
}
