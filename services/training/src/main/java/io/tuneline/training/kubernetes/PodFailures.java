package io.tuneline.training.kubernetes;

import io.fabric8.kubernetes.api.model.ContainerStatus;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodCondition;
import io.tuneline.training.run.RunState;
import io.tuneline.training.worker.TrainingWorker;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * Explains why a worker pod cannot run or stopped, in words a user can act on. Kubernetes reports
 * these in different places: container waiting reasons (image pulls), terminated reasons (OOM), pod
 * status reasons (eviction) and the PodScheduled condition (no node fits).
 */
final class PodFailures {
    private static final Set<String> IMAGE_PULL =
            Set.of("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull");

    private PodFailures() {}

    static Optional<RunState> explain(Pod pod) {
        var status = pod.getStatus();
        if (status == null) {
            return Optional.empty();
        }
        if ("Evicted".equals(status.getReason())) {
            return Optional.of(
                    new RunState.Failed(
                            "the worker pod was evicted from its node: " + status.getMessage(),
                            true));
        }
        Optional<String> disruption = disruption(pod);
        for (ContainerStatus c : containers(pod)) {
            var waiting = c.getState() == null ? null : c.getState().getWaiting();
            if (waiting != null && IMAGE_PULL.contains(waiting.getReason())) {
                return Optional.of(
                        new RunState.Failed(
                                "the worker image "
                                        + c.getImage()
                                        + " cannot be pulled ("
                                        + waiting.getReason()
                                        + "): "
                                        + waiting.getMessage()
                                        + "; check training.worker.image and image pull secrets",
                                false));
            }
            var terminated = c.getState() == null ? null : c.getState().getTerminated();
            if (terminated != null && "OOMKilled".equals(terminated.getReason())) {
                String limit =
                        pod.getSpec().getContainers().stream()
                                .filter(spec -> spec.getName().equals(c.getName()))
                                .findFirst()
                                .map(spec -> spec.getResources().getLimits())
                                .map(l -> l.get("memory"))
                                .map(Object::toString)
                                .orElse("none");
                return Optional.of(
                        new RunState.Failed(
                                "the worker ran out of memory (limit "
                                        + limit
                                        + ") and was killed; give the job more memory"
                                        + " (resources.memory), a smaller batch_size or"
                                        + " max_seq_length",
                                false));
            }
            if (terminated != null
                    && terminated.getExitCode() != null
                    && terminated.getExitCode() == TrainingWorker.EXIT_JOB_CANNOT_SUCCEED) {
                String verdict =
                        "the job cannot be trained as given (another attempt would fail the same"
                                + " way)";
                // The worker writes its cause to the termination message file: it comes first.
                return Optional.of(
                        new RunState.Failed(
                                terminated.getMessage() == null || terminated.getMessage().isBlank()
                                        ? verdict + "; see the worker pod's log"
                                        : terminated.getMessage().strip() + " (" + verdict + ")",
                                false));
            }
            if (terminated != null
                    && terminated.getExitCode() != null
                    && terminated.getExitCode() == TrainingWorker.EXIT_STOPPED) {
                // SIGTERM within the grace period: the worker stored its checkpoint and stopped.
                return Optional.of(
                        new RunState.Preempted(
                                "the worker pod was stopped"
                                        + disruption.map(d -> " (" + d + ")").orElse("")
                                        + " after storing a checkpoint"));
            }
            if (terminated != null
                    && terminated.getExitCode() != null
                    && terminated.getExitCode() != 0) {
                String exit = "the worker exited with code " + terminated.getExitCode();
                return Optional.of(
                        new RunState.Failed(
                                terminated.getMessage() == null || terminated.getMessage().isBlank()
                                        ? exit
                                        : terminated.getMessage().strip() + " (" + exit + ")",
                                true));
            }
        }
        if (status.getConditions() != null) {
            for (PodCondition condition : status.getConditions()) {
                if ("PodScheduled".equals(condition.getType())
                        && "False".equals(condition.getStatus())
                        && "Unschedulable".equals(condition.getReason())) {
                    // Not terminal by itself: the cluster autoscaler may still add a node.
                    return Optional.empty();
                }
            }
        }
        return Optional.empty();
    }

    /**
     * Kubernetes' reason for stopping the pod from outside, when it gives one: the {@code
     * DisruptionTarget} condition (preemption by the scheduler, eviction through the API, node
     * drain or shutdown).
     */
    private static Optional<String> disruption(Pod pod) {
        if (pod.getStatus().getConditions() == null) {
            return Optional.empty();
        }
        return pod.getStatus().getConditions().stream()
                .filter(c -> "DisruptionTarget".equals(c.getType()))
                .filter(c -> "True".equals(c.getStatus()))
                .map(c -> c.getReason() + (c.getMessage() == null ? "" : ": " + c.getMessage()))
                .findFirst();
    }

    /** Why a pod is still pending, for progress messages ("waiting for a GPU node: ..."). */
    static Optional<String> pendingDetail(Pod pod) {
        if (pod.getStatus() == null || pod.getStatus().getConditions() == null) {
            return Optional.empty();
        }
        return pod.getStatus().getConditions().stream()
                .filter(c -> "PodScheduled".equals(c.getType()) && "False".equals(c.getStatus()))
                .findFirst()
                .map(c -> "no node can run the worker yet: " + c.getMessage());
    }

    private static List<ContainerStatus> containers(Pod pod) {
        return pod.getStatus().getContainerStatuses() == null
                ? List.of()
                : pod.getStatus().getContainerStatuses();
    }
}
