package io.tuneline.training.kubernetes;

import io.fabric8.kubernetes.api.model.DeletionPropagation;
import io.fabric8.kubernetes.api.model.GenericKubernetesResource;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.batch.v1.Job;
import io.fabric8.kubernetes.api.model.batch.v1.JobCondition;
import io.fabric8.kubernetes.api.model.batch.v1.JobList;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.fabric8.kubernetes.client.Watch;
import io.fabric8.kubernetes.client.Watcher;
import io.fabric8.kubernetes.client.WatcherException;
import io.fabric8.kubernetes.client.dsl.NonNamespaceOperation;
import io.fabric8.kubernetes.client.dsl.ScalableResource;
import io.fabric8.kubernetes.client.dsl.base.ResourceDefinitionContext;
import io.tuneline.training.run.RunKey;
import io.tuneline.training.run.RunLauncher;
import io.tuneline.training.run.RunRequest;
import io.tuneline.training.run.RunState;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.BiConsumer;
import org.jboss.logging.Logger;

/**
 * Runs training attempts as Kubernetes Jobs: creates one per run, reads its state (with the pod's
 * failure explained), deletes it on cancellation, and watches all of them. Finished Jobs are
 * deleted by Kubernetes after {@code ttlSecondsAfterFinished}.
 *
 * <p>With Kueue ({@link KueueSettings}) a Job is created suspended and waits for admission ({@link
 * RunState.WaitingForAdmission}); Kueue un-suspends it when the quota admits it, and preempts it by
 * suspending it again (its pods are deleted: SIGTERM, checkpoint, exit 143). The controller then
 * resumes the run as the next attempt; this launcher deletes the earlier attempt's suspended Job
 * when it creates the next one, so Kueue cannot admit both.
 */
public final class KubernetesRunLauncher implements RunLauncher {
    private static final Logger LOG = Logger.getLogger(KubernetesRunLauncher.class);

    /** Kueue's Workloads, read only to say why a Job waits (kueue.x-k8s.io/v1beta1). */
    static final ResourceDefinitionContext WORKLOADS =
            new ResourceDefinitionContext.Builder()
                    .withGroup("kueue.x-k8s.io")
                    .withVersion("v1beta1")
                    .withKind("Workload")
                    .withPlural("workloads")
                    .withNamespaced(true)
                    .build();

    /** The label Kueue puts on a Workload with the UID of the Job it stands for. */
    static final String LABEL_JOB_UID = "kueue.x-k8s.io/job-uid";

    private final KubernetesClient client;
    private final KubernetesExecutorSettings settings;
    private final TrainingJobFactory factory;

    public KubernetesRunLauncher(KubernetesClient client, KubernetesExecutorSettings settings) {
        this.client = client;
        this.settings = settings;
        this.factory = new TrainingJobFactory(settings);
    }

    /**
     * Creates the Job of {@code run}, unless it exists already (a redelivered request or a
     * restarted controller must not start a second worker for the same attempt).
     */
    @Override
    public void start(RunRequest run) {
        launch(run);
    }

    /** {@link #start} that returns the Job, existing or created. */
    public Job launch(RunRequest run) {
        String name = TrainingJobFactory.jobName(run);
        Job existing = jobs().withName(name).get();
        if (existing != null) {
            LOG.infof("run %s already has Job %s; not creating another", run.runId(), name);
            return existing;
        }
        deleteSuspendedEarlierAttempts(run);
        Job created = jobs().resource(factory.build(run)).create();
        if (settings.kueue().enabled()) {
            LOG.infof(
                    "run %s queued as suspended Job %s/%s (%d GPU) in Kueue queue %s",
                    run.runId(),
                    settings.namespace(),
                    name,
                    run.gpus(),
                    settings.kueue().queueName());
        } else {
            LOG.infof(
                    "run %s scheduled as Job %s/%s (%d GPU)",
                    run.runId(), settings.namespace(), name, run.gpus());
        }
        return created;
    }

    /**
     * A suspended Job of an earlier attempt of the same job (preempted by Kueue, which keeps it and
     * would admit it again) must go before the next attempt starts: two workers would train the
     * same job. Finished Jobs of earlier attempts stay until their TTL, for their logs.
     */
    private void deleteSuspendedEarlierAttempts(RunRequest run) {
        for (Job old :
                jobs().withLabel(TrainingJobFactory.LABEL_JOB_ID, run.jobId()).list().getItems()) {
            String attempt = old.getMetadata().getLabels().get(TrainingJobFactory.LABEL_ATTEMPT);
            if (attempt != null && Integer.parseInt(attempt) < run.attempt() && suspended(old)) {
                jobs().withName(old.getMetadata().getName())
                        .withPropagationPolicy(DeletionPropagation.BACKGROUND)
                        .delete();
                LOG.infof(
                        "deleted the suspended Job %s of attempt %s before starting attempt %d",
                        old.getMetadata().getName(), attempt, run.attempt());
            }
        }
    }

    private static boolean suspended(Job job) {
        return job.getSpec() != null && Boolean.TRUE.equals(job.getSpec().getSuspend());
    }

    @Override
    public RunState state(RunRequest run) {
        Job job = jobs().withName(TrainingJobFactory.jobName(run)).get();
        return job == null ? new RunState.Unknown() : state(job);
    }

    RunState state(Job job) {
        var status = job.getStatus();
        if (status != null && status.getConditions() != null) {
            for (JobCondition c : status.getConditions()) {
                if (!"True".equals(c.getStatus())) {
                    continue;
                }
                if ("Complete".equals(c.getType())) {
                    return new RunState.Succeeded();
                }
                if ("Failed".equals(c.getType())) {
                    if ("DeadlineExceeded".equals(c.getReason())) {
                        return new RunState.Failed(
                                "the run exceeded its time limit of "
                                        + job.getSpec().getActiveDeadlineSeconds()
                                        + " s (resources.max_runtime_seconds) and was stopped",
                                false);
                    }
                    Optional<RunState> pod = podFailure(job);
                    if (suspended(job)
                            && (pod.isEmpty() || pod.get() instanceof RunState.Preempted)) {
                        // Kueue suspended the admitted Job, and the Job controller counted the
                        // pod it stopped against backoffLimit 0: the preemption it is.
                        return kueuePreempted(
                                pod.map(p -> ((RunState.Preempted) p).reason())
                                        .orElse(
                                                "its worker pod was stopped (the Job controller"
                                                        + " then marked the Job "
                                                        + c.getReason()
                                                        + ")"));
                    }
                    return pod.orElse(
                            new RunState.Failed(
                                    "the training Job failed: "
                                            + c.getReason()
                                            + " "
                                            + c.getMessage(),
                                    true));
                }
            }
        }
        Optional<RunState> failure = podFailure(job);
        if (failure.isPresent()) {
            if (suspended(job) && failure.get() instanceof RunState.Preempted p) {
                return kueuePreempted(p.reason());
            }
            return failure.get();
        }
        if (suspended(job)) {
            List<Pod> pods = pods(job);
            boolean stopping =
                    pods.stream()
                            .anyMatch(
                                    p ->
                                            p.getStatus() == null
                                                    || !Set.of("Succeeded", "Failed")
                                                            .contains(p.getStatus().getPhase()));
            if (stopping) {
                // Kueue took the admission back; the Job controller is deleting the pods, and the
                // worker stores its checkpoint within its grace period.
                return new RunState.Pending(
                        "Kueue suspended the Job; waiting for its worker pod to stop");
            }
            String queue =
                    job.getMetadata().getLabels() == null
                            ? null
                            : job.getMetadata().getLabels().get(KueueSettings.LABEL_QUEUE_NAME);
            return new RunState.WaitingForAdmission(
                    queue == null ? settings.kueue().queueName() : queue, admissionDetail(job));
        }
        if (status != null && status.getActive() != null && status.getActive() > 0) {
            List<Pod> pods = pods(job);
            boolean running =
                    pods.stream()
                            .anyMatch(
                                    p ->
                                            p.getStatus() != null
                                                    && "Running".equals(p.getStatus().getPhase()));
            if (running) {
                return new RunState.Running();
            }
            return new RunState.Pending(
                    pods.stream()
                            .map(PodFailures::pendingDetail)
                            .flatMap(Optional::stream)
                            .findFirst()
                            .orElse("starting the worker pod"));
        }
        return new RunState.Pending("waiting for Kubernetes to start the Job");
    }

    /**
     * Why Kueue has not admitted the Job yet, from its Workload (found by Kueue's {@code
     * kueue.x-k8s.io/job-uid} label): the {@code QuotaReserved} condition while it is False
     * ("couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu ..."), or
     * the {@code Evicted} condition. Empty when there is no Workload yet, or it cannot be read (no
     * Kueue, or no RBAC for it: the chart grants get/list on workloads with Kueue on).
     */
    private Optional<String> admissionDetail(Job job) {
        String uid = job.getMetadata().getUid();
        if (!settings.kueue().enabled() || uid == null) {
            return Optional.empty();
        }
        try {
            return client
                    .genericKubernetesResources(WORKLOADS)
                    .inNamespace(settings.namespace())
                    .withLabel(LABEL_JOB_UID, uid)
                    .list()
                    .getItems()
                    .stream()
                    .map(KubernetesRunLauncher::notAdmittedBecause)
                    .flatMap(Optional::stream)
                    .findFirst();
        } catch (KubernetesClientException e) {
            LOG.debugf(
                    "cannot read the Kueue Workload of Job %s (%d): %s",
                    job.getMetadata().getName(), e.getCode(), e.getMessage());
            return Optional.empty();
        }
    }

    private static Optional<String> notAdmittedBecause(GenericKubernetesResource workload) {
        Object status = workload.getAdditionalProperties().get("status");
        if (!(status instanceof Map<?, ?> s)
                || !(s.get("conditions") instanceof List<?> conditions)) {
            return Optional.empty();
        }
        String quota = null;
        String evicted = null;
        for (Object o : conditions) {
            if (!(o instanceof Map<?, ?> c) || !(c.get("message") instanceof String message)) {
                continue;
            }
            if ("QuotaReserved".equals(c.get("type")) && "False".equals(c.get("status"))) {
                quota = message;
            } else if ("Evicted".equals(c.get("type")) && "True".equals(c.get("status"))) {
                evicted = message;
            }
        }
        return Optional.ofNullable(quota != null ? quota : evicted).filter(m -> !m.isBlank());
    }

    private static RunState.Preempted kueuePreempted(String how) {
        return new RunState.Preempted(
                "Kueue suspended the Job (its Workload was evicted: preempted by a higher-priority"
                        + " workload or its quota reclaimed); "
                        + how);
    }

    /** Stops a run: deletes its Job and, in the background, its pods. */
    @Override
    public boolean cancel(RunRequest run) {
        String name = TrainingJobFactory.jobName(run);
        var deleted =
                jobs().withName(name)
                        .withPropagationPolicy(DeletionPropagation.BACKGROUND)
                        .delete();
        boolean any = deleted != null && !deleted.isEmpty();
        LOG.infof("run %s cancelled: Job %s %s", run.runId(), name, any ? "deleted" : "was gone");
        return any;
    }

    /** Calls {@code onChange(runId, state)} whenever a training Job changes. */
    @Override
    public Watch watch(BiConsumer<RunKey, RunState> onChange) {
        return jobs().withLabel(TrainingJobFactory.LABEL_COMPONENT, TrainingJobFactory.COMPONENT)
                .watch(
                        new Watcher<>() {
                            @Override
                            public void eventReceived(Action action, Job job) {
                                var labels = job.getMetadata().getLabels();
                                RunKey key =
                                        new RunKey(
                                                labels.get(TrainingJobFactory.LABEL_JOB_ID),
                                                Integer.parseInt(
                                                        labels.get(
                                                                TrainingJobFactory.LABEL_ATTEMPT)));
                                RunState state =
                                        action == Action.DELETED
                                                ? new RunState.Unknown()
                                                : state(job);
                                onChange.accept(key, state);
                            }

                            @Override
                            public void onClose(WatcherException cause) {
                                LOG.warnf("watch of training Jobs closed: %s", cause.getMessage());
                            }
                        });
    }

    private Optional<RunState> podFailure(Job job) {
        return pods(job).stream().map(PodFailures::explain).flatMap(Optional::stream).findFirst();
    }

    private List<Pod> pods(Job job) {
        return client.pods()
                .inNamespace(settings.namespace())
                .withLabel("job-name", job.getMetadata().getName())
                .list()
                .getItems();
    }

    private NonNamespaceOperation<Job, JobList, ScalableResource<Job>> jobs() {
        return client.batch().v1().jobs().inNamespace(settings.namespace());
    }
}
