package io.tuneline.training.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.tuneline.training.run.RunState;
import org.junit.jupiter.api.Test;

/** How a stopped worker pod reads to the controller: preempted, or failed. */
class PodFailuresTest {

    private static Pod exited(int code, boolean disrupted) {
        PodBuilder pod =
                new PodBuilder()
                        .withNewMetadata()
                        .withName("sentiment-1-a1-x")
                        .endMetadata()
                        .withNewSpec()
                        .addNewContainer()
                        .withName("worker")
                        .endContainer()
                        .endSpec();
        var status =
                pod.withNewStatus()
                        .withPhase("Failed")
                        .addNewContainerStatus()
                        .withName("worker")
                        .withNewState()
                        .withNewTerminated()
                        .withExitCode(code)
                        .withReason("Error")
                        .endTerminated()
                        .endState()
                        .endContainerStatus();
        if (disrupted) {
            status.addNewCondition()
                    .withType("DisruptionTarget")
                    .withStatus("True")
                    .withReason("PreemptionByScheduler")
                    .withMessage("a higher-priority pod needed the node")
                    .endCondition();
        }
        return status.endStatus().build();
    }

    @Test
    void aWorkerThatStoppedOnSigtermWithItsCheckpointWasPreempted() {
        assertThat(PodFailures.explain(exited(143, true)))
                .contains(
                        new RunState.Preempted(
                                "the worker pod was stopped (PreemptionByScheduler: a"
                                        + " higher-priority pod needed the node) after storing a"
                                        + " checkpoint"));
        assertThat(PodFailures.explain(exited(143, false)))
                .contains(
                        new RunState.Preempted(
                                "the worker pod was stopped after storing a checkpoint"));
    }

    @Test
    void aWorkerKilledBeforeItsCheckpointFailedAndMayBeRetried() {
        // SIGKILL after the grace period (137): no checkpoint of the last steps, a failed attempt.
        assertThat(PodFailures.explain(exited(137, true)))
                .hasValueSatisfying(
                        s -> {
                            assertThat(s).isInstanceOf(RunState.Failed.class);
                            assertThat(((RunState.Failed) s).retriable()).isTrue();
                        });
    }
}
