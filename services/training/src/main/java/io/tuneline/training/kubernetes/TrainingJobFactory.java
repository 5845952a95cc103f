package io.tuneline.training.kubernetes;

import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.PodTemplateSpec;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.ResourceRequirements;
import io.fabric8.kubernetes.api.model.batch.v1.Job;
import io.fabric8.kubernetes.api.model.batch.v1.JobBuilder;
import io.fabric8.kubernetes.client.utils.Serialization;
import io.tuneline.training.run.RunRequest;
import io.tuneline.training.worker.TrainingWorker;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Turns a {@link RunRequest} into a {@code batch/v1} Job: the worker pod template from the chart,
 * plus what belongs to this run (labels, identity in the environment, GPU count, CPU and memory,
 * node labels, deadline). With Kueue on, the Job is created suspended with the queue's label (and
 * the run's WorkloadPriorityClass): Kueue un-suspends it when the cluster's quota admits it.
 */
public final class TrainingJobFactory {
    public static final String LABEL_COMPONENT = "app.kubernetes.io/component";
    public static final String COMPONENT = "training-worker";
    public static final String LABEL_JOB_ID = "tuneline.io/job-id";
    public static final String LABEL_RUN_ID = "tuneline.io/run-id";
    public static final String LABEL_ATTEMPT = "tuneline.io/attempt";

    /** Kubernetes object names that end up in pod labels are limited to 63 characters. */
    private static final int MAX_NAME = 63;

    private final KubernetesExecutorSettings settings;
    private final PodTemplateSpec template;

    public TrainingJobFactory(KubernetesExecutorSettings settings) {
        this.settings = settings;
        this.template = load(settings);
    }

    private static PodTemplateSpec load(KubernetesExecutorSettings settings) {
        try (InputStream in = Files.newInputStream(settings.podTemplate())) {
            PodTemplateSpec spec = Serialization.unmarshal(in, PodTemplateSpec.class);
            if (spec == null
                    || spec.getSpec() == null
                    || spec.getSpec().getContainers() == null
                    || spec.getSpec().getContainers().isEmpty()) {
                throw new IllegalArgumentException(
                        "worker pod template "
                                + settings.podTemplate()
                                + " has no container; it must define spec.containers[0], the worker");
            }
            return spec;
        } catch (IOException e) {
            throw new UncheckedIOException(
                    "cannot read the worker pod template " + settings.podTemplate(), e);
        }
    }

    /** The name of the Job of a run: readable, unique per job and attempt, at most 63 chars. */
    public static String jobName(RunRequest run) {
        String suffix = "-a" + run.attempt();
        // A comparison method's run id has a "." ("<job>.<method>"), which a DNS label (the Job's
        // pods take their hostnames from its name) must not have.
        String name = "tl-" + run.jobId().replace('.', '-');
        if (name.length() + suffix.length() <= MAX_NAME) {
            return name + suffix;
        }
        String hash = shortHash(run.jobId());
        return name.substring(0, MAX_NAME - suffix.length() - hash.length() - 1)
                + "-"
                + hash
                + suffix;
    }

    public Job build(RunRequest run) {
        PodTemplateSpec pod = Serialization.clone(template);
        Map<String, String> labels = new LinkedHashMap<>();
        labels.put(LABEL_COMPONENT, COMPONENT);
        labels.put(LABEL_JOB_ID, run.jobId());
        labels.put(LABEL_RUN_ID, jobName(run));
        labels.put(LABEL_ATTEMPT, Integer.toString(run.attempt()));
        Map<String, String> podLabels =
                new LinkedHashMap<>(
                        pod.getMetadata() == null || pod.getMetadata().getLabels() == null
                                ? Map.of()
                                : pod.getMetadata().getLabels());
        podLabels.putAll(labels);

        var spec = pod.getSpec();
        spec.setRestartPolicy("Never");
        if (!run.nodeSelector().isEmpty()) {
            Map<String, String> selector =
                    new HashMap<>(
                            spec.getNodeSelector() == null ? Map.of() : spec.getNodeSelector());
            selector.putAll(run.nodeSelector());
            spec.setNodeSelector(selector);
        }
        Container worker = spec.getContainers().get(0);
        worker.setResources(resources(worker.getResources(), run));
        worker.getEnv().add(new EnvVar("TUNELINE_JOB_ID", run.jobId(), null));
        worker.getEnv().add(new EnvVar("TUNELINE_RUN_ID", jobName(run), null));
        worker.getEnv().add(new EnvVar("TUNELINE_ATTEMPT", Integer.toString(run.attempt()), null));
        // Kubernetes' default terminationMessagePath: the pod status carries what the worker
        // writes there as the container's termination message (PodFailures reads it).
        worker.getEnv()
                .add(new EnvVar(TrainingWorker.TERMINATION_LOG, "/dev/termination-log", null));

        // Kueue's labels go on the Job only: Kueue manages the Job (its Workload), not the pods.
        Map<String, String> jobLabels = new LinkedHashMap<>(labels);
        KueueSettings kueue = settings.kueue();
        if (kueue.enabled()) {
            jobLabels.put(KueueSettings.LABEL_QUEUE_NAME, kueue.queueName());
            kueue.priorityClass(run.priority())
                    .ifPresent(c -> jobLabels.put(KueueSettings.LABEL_PRIORITY_CLASS, c));
        }

        return new JobBuilder()
                .withNewMetadata()
                .withName(jobName(run))
                .withNamespace(settings.namespace())
                .withLabels(jobLabels)
                .endMetadata()
                .withNewSpec()
                // Created suspended, Kueue starts it on admission (and suspends it again to
                // preempt it); without Kueue the field stays unset, as before.
                .withSuspend(kueue.enabled() ? Boolean.TRUE : null)
                .withBackoffLimit(settings.backoffLimit())
                .withTtlSecondsAfterFinished(settings.ttlSecondsAfterFinished())
                .withActiveDeadlineSeconds(
                        run.maxRuntimeSeconds() > 0 ? run.maxRuntimeSeconds() : null)
                .withNewTemplate()
                .withNewMetadata()
                .withLabels(podLabels)
                .withAnnotations(
                        pod.getMetadata() == null ? null : pod.getMetadata().getAnnotations())
                .endMetadata()
                .withSpec(spec)
                .endTemplate()
                .endSpec()
                .build();
    }

    /**
     * The template's resources with this run's GPUs as a limit (extended resources are limits only;
     * Kubernetes sets the request equal) and the job's CPU and memory where it gave them.
     */
    private ResourceRequirements resources(ResourceRequirements base, RunRequest run) {
        Map<String, Quantity> requests = new LinkedHashMap<>();
        Map<String, Quantity> limits = new LinkedHashMap<>();
        if (base != null) {
            if (base.getRequests() != null) {
                requests.putAll(base.getRequests());
            }
            if (base.getLimits() != null) {
                limits.putAll(base.getLimits());
            }
        }
        String gpu = settings.gpuResourceName();
        requests.remove(gpu);
        limits.remove(gpu);
        if (run.gpus() > 0) {
            limits.put(gpu, new Quantity(Integer.toString(run.gpus())));
        }
        run.cpu().ifPresent(cpu -> requests.put("cpu", new Quantity(cpu)));
        run.memory()
                .ifPresent(
                        memory -> {
                            requests.put("memory", new Quantity(memory));
                            limits.put("memory", new Quantity(memory));
                        });
        ResourceRequirements r = new ResourceRequirements();
        r.setRequests(requests);
        r.setLimits(limits);
        return r;
    }

    private static String shortHash(String value) {
        try {
            byte[] digest =
                    MessageDigest.getInstance("SHA-256")
                            .digest(value.getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(digest).substring(0, 6);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
