package io.tuneline.training.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.batch.v1.Job;
import io.fabric8.kubernetes.api.model.batch.v1.JobBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.tuneline.training.run.RunRequest;
import io.tuneline.training.run.RunState;
import io.tuneline.training.worker.TrainingWorker;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The Kubernetes launcher with Kueue on, against fabric8's mock API server in CRUD mode. Kueue
 * itself is not there: the tests do what Kueue does to a Job (un-suspend it on admission, suspend
 * it again to preempt it) and what the Job controller then does to its pods.
 */
@EnableKubernetesMockClient(crud = true)
class KueueJobsTest {
    private static final String NS = "ml";
    private static final KueueSettings KUEUE =
            new KueueSettings(
                    true,
                    "gpu-a100",
                    KueueSettings.parsePriorityClasses(
                            List.of("0=tuneline-normal", "10=tuneline-high")),
                    Optional.of("tuneline-low"));

    KubernetesClient client;
    private KubernetesRunLauncher launcher;

    @BeforeEach
    void setUp() {
        launcher =
                new KubernetesRunLauncher(
                        client,
                        new KubernetesExecutorSettings(
                                NS,
                                Path.of("src/test/resources/worker-pod-template.yaml"),
                                "nvidia.com/gpu",
                                3600,
                                0,
                                KUEUE));
    }

    private static RunRequest run(String jobId, int attempt, int priority) {
        return new RunRequest(
                jobId, attempt, 2, Optional.empty(), Optional.empty(), Map.of(), 7200, priority);
    }

    @Test
    void theJobIsCreatedSuspendedInTheQueueWithTheRunsPriorityClass() {
        Job job = launcher.launch(run("queued", 1, 12));
        Job stored = client.batch().v1().jobs().inNamespace(NS).withName("tl-queued-a1").get();
        for (Job j : List.of(job, stored)) {
            assertThat(j.getSpec().getSuspend()).isTrue();
            assertThat(j.getMetadata().getLabels())
                    .containsEntry("kueue.x-k8s.io/queue-name", "gpu-a100")
                    .containsEntry("kueue.x-k8s.io/priority-class", "tuneline-high")
                    .containsEntry("tuneline.io/job-id", "queued");
        }
        // Kueue manages the Job, not its pods: the pods carry no queue label.
        assertThat(stored.getSpec().getTemplate().getMetadata().getLabels())
                .doesNotContainKeys("kueue.x-k8s.io/queue-name", "kueue.x-k8s.io/priority-class");
        assertThat(launcher.state(run("queued", 1, 12)))
                .isEqualTo(new RunState.WaitingForAdmission("gpu-a100"));
        assertThat(new RunState.WaitingForAdmission("gpu-a100").detail())
                .isEqualTo("waiting for admission by Kueue (queue gpu-a100)");
    }

    @Test
    void theStatusSaysWhyKueueHasNotAdmittedTheJobWhenItsWorkloadSays() {
        Job job = launcher.launch(run("too-big", 1, 0));
        String uid = job.getMetadata().getUid();
        if (uid == null) {
            // Kueue matches its Workload to the Job by the Job's UID; give it one if the mock did
            // not.
            uid = "0b7c1a2e-too-big";
            job =
                    client.batch()
                            .v1()
                            .jobs()
                            .inNamespace(NS)
                            .resource(
                                    new JobBuilder(job)
                                            .editMetadata()
                                            .withUid(uid)
                                            .endMetadata()
                                            .build())
                            .update();
        }
        String why =
                "couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu in"
                        + " flavor a100, request > maximum capacity (8 > 4)";
        client.genericKubernetesResources(KubernetesRunLauncher.WORKLOADS)
                .inNamespace(NS)
                .resource(
                        new io.fabric8.kubernetes.api.model.GenericKubernetesResourceBuilder()
                                .withApiVersion("kueue.x-k8s.io/v1beta1")
                                .withKind("Workload")
                                .withNewMetadata()
                                .withName("job-tl-too-big-a1-1a2b3")
                                .withNamespace(NS)
                                .addToLabels(KubernetesRunLauncher.LABEL_JOB_UID, uid)
                                .endMetadata()
                                .addToAdditionalProperties(
                                        "status",
                                        Map.of(
                                                "conditions",
                                                List.of(
                                                        Map.of(
                                                                "type", "QuotaReserved",
                                                                "status", "False",
                                                                "reason", "Pending",
                                                                "message", why))))
                                .build())
                .create();

        RunState state = launcher.state(run("too-big", 1, 0));
        assertThat(state).isEqualTo(new RunState.WaitingForAdmission("gpu-a100", Optional.of(why)));
        assertThat(((RunState.WaitingForAdmission) state).detail())
                .isEqualTo("waiting for admission by Kueue (queue gpu-a100): " + why);
    }

    @Test
    void jobPrioritiesMapToWorkloadPriorityClassesByTheirLowestPriority() {
        assertThat(KUEUE.priorityClass(10)).contains("tuneline-high");
        assertThat(KUEUE.priorityClass(9)).contains("tuneline-normal");
        assertThat(KUEUE.priorityClass(0)).contains("tuneline-normal");
        assertThat(KUEUE.priorityClass(-3)).contains("tuneline-low");
        var noDefault = new KueueSettings(true, "q", new TreeMap<>(), Optional.empty());
        assertThat(noDefault.priorityClass(5)).isEmpty();

        launcher.launch(run("low", 1, -3));
        assertThat(labels("tl-low-a1"))
                .containsEntry("kueue.x-k8s.io/priority-class", "tuneline-low");
        new KubernetesRunLauncher(
                        client,
                        new KubernetesExecutorSettings(
                                NS,
                                Path.of("src/test/resources/worker-pod-template.yaml"),
                                "nvidia.com/gpu",
                                3600,
                                0,
                                noDefault))
                .launch(run("unclassed", 1, 5));
        // No label: Kueue takes the pod's priorityClassName.
        assertThat(labels("tl-unclassed-a1"))
                .containsEntry("kueue.x-k8s.io/queue-name", "q")
                .doesNotContainKey("kueue.x-k8s.io/priority-class");
    }

    @Test
    void badSettingsFailAtStartNamingTheKey() {
        assertThatThrownBy(() -> KueueSettings.parsePriorityClasses(List.of("high")))
                .hasMessageContaining(
                        "'high' is not <lowest job priority>=<WorkloadPriorityClass>");
        assertThatThrownBy(() -> KueueSettings.parsePriorityClasses(List.of("ten=high")))
                .hasMessageContaining("priority-classes entry 'ten=high'");
        assertThatThrownBy(() -> KueueSettings.parsePriorityClasses(List.of("1=a", "1=b")))
                .hasMessageContaining("names priority 1 twice");
        assertThatThrownBy(() -> new KueueSettings(true, " ", new TreeMap<>(), Optional.empty()))
                .hasMessageContaining("kueue.queue-name");
    }

    @Test
    void withoutKueueTheJobIsNotSuspendedAndCarriesNoQueueLabel() {
        new KubernetesRunLauncher(
                        client,
                        new KubernetesExecutorSettings(
                                NS,
                                Path.of("src/test/resources/worker-pod-template.yaml"),
                                "nvidia.com/gpu",
                                3600,
                                0))
                .launch(run("plain", 1, 12));
        Job job = client.batch().v1().jobs().inNamespace(NS).withName("tl-plain-a1").get();
        assertThat(job.getSpec().getSuspend()).isNotEqualTo(Boolean.TRUE);
        assertThat(job.getMetadata().getLabels()).doesNotContainKey("kueue.x-k8s.io/queue-name");
    }

    @Test
    void anAdmittedJobRunsAndASuspendedOneStopsItsPodBeforeWaitingAgain() {
        Job job = launcher.launch(run("admitted", 1, 0));
        // Kueue admits: suspend false; the Job controller starts the pod.
        admit(job);
        pod("tl-admitted-a1", "Running", null);
        assertThat(launcher.state(run("admitted", 1, 0))).isEqualTo(new RunState.Running());

        // Kueue preempts: suspend true; the pod is being deleted, still running its grace period.
        suspend("tl-admitted-a1");
        assertThat(launcher.state(run("admitted", 1, 0)))
                .isEqualTo(
                        new RunState.Pending(
                                "Kueue suspended the Job; waiting for its worker pod to stop"));

        // The pod is gone: the Job waits in the queue again.
        client.pods().inNamespace(NS).withName("tl-admitted-a1-pod").delete();
        assertThat(launcher.state(run("admitted", 1, 0)))
                .isEqualTo(new RunState.WaitingForAdmission("gpu-a100"));
    }

    @Test
    void aWorkerStoppedByKueuesSuspensionIsAPreemptionSayingSo() {
        Job job = launcher.launch(run("evicted", 1, 0));
        admit(job);
        suspend("tl-evicted-a1");
        pod("tl-evicted-a1", "Failed", TrainingWorker.EXIT_STOPPED);
        assertThat(launcher.state(run("evicted", 1, 0)))
                .isInstanceOfSatisfying(
                        RunState.Preempted.class,
                        p ->
                                assertThat(p.reason())
                                        .startsWith(
                                                "Kueue suspended the Job (its Workload was evicted")
                                        .contains("after storing a checkpoint"));
    }

    @Test
    void aSuspendedJobTheJobControllerFailedForItsStoppedPodIsAPreemptionNotAFailure() {
        // The Job controller counts the pod it deleted for the suspension as failed; with
        // backoffLimit 0 it marks the Job Failed (BackoffLimitExceeded), though Kueue stopped it.
        Job job = launcher.launch(run("counted", 1, 0));
        admit(job);
        suspend("tl-counted-a1");
        Job suspended = client.batch().v1().jobs().inNamespace(NS).withName("tl-counted-a1").get();
        client.batch()
                .v1()
                .jobs()
                .inNamespace(NS)
                .resource(
                        new JobBuilder(suspended)
                                .editStatus()
                                .withFailed(1)
                                .addNewCondition()
                                .withType("Failed")
                                .withStatus("True")
                                .withReason("BackoffLimitExceeded")
                                .withMessage("Job has reached the specified backoff limit")
                                .endCondition()
                                .endStatus()
                                .build())
                .update();
        assertThat(launcher.state(run("counted", 1, 0)))
                .isEqualTo(
                        new RunState.Preempted(
                                "Kueue suspended the Job (its Workload was evicted: preempted by a"
                                        + " higher-priority workload or its quota reclaimed); its"
                                        + " worker pod was stopped (the Job controller then marked"
                                        + " the Job BackoffLimitExceeded)"));

        // Its stopped pod, still listed, says more; a real failure of the pod stays a failure.
        pod("tl-counted-a1", "Failed", TrainingWorker.EXIT_STOPPED);
        assertThat(launcher.state(run("counted", 1, 0)))
                .isInstanceOfSatisfying(
                        RunState.Preempted.class,
                        p -> assertThat(p.reason()).contains("after storing a checkpoint"));
        client.pods().inNamespace(NS).withName("tl-counted-a1-pod").delete();
        pod("tl-counted-a1", "Failed", TrainingWorker.EXIT_JOB_CANNOT_SUCCEED);
        assertThat(launcher.state(run("counted", 1, 0)))
                .isInstanceOfSatisfying(
                        RunState.Failed.class, f -> assertThat(f.retriable()).isFalse());
    }

    @Test
    void theNextAttemptDeletesTheEarlierAttemptsSuspendedJobButKeepsFinishedOnes() {
        Job first = launcher.launch(run("resumed", 1, 0));
        admit(first);
        suspend("tl-resumed-a1");
        Job finished = launcher.launch(run("finished", 1, 0));
        client.batch()
                .v1()
                .jobs()
                .inNamespace(NS)
                .resource(
                        new JobBuilder(finished)
                                .editSpec()
                                .withSuspend(false)
                                .endSpec()
                                .withNewStatus()
                                .addNewCondition()
                                .withType("Failed")
                                .withStatus("True")
                                .endCondition()
                                .endStatus()
                                .build())
                .update();

        launcher.launch(run("resumed", 2, 0));
        launcher.launch(run("finished", 2, 0));

        assertThat(client.batch().v1().jobs().inNamespace(NS).list().getItems())
                .extracting(j -> j.getMetadata().getName())
                .containsExactlyInAnyOrder("tl-resumed-a2", "tl-finished-a1", "tl-finished-a2");
        assertThat(launcher.state(run("resumed", 1, 0))).isEqualTo(new RunState.Unknown());
    }

    @Test
    void cancellingARunWaitingForAdmissionDeletesItsSuspendedJob() {
        launcher.launch(run("never-admitted", 1, 0));
        assertThat(launcher.cancel(run("never-admitted", 1, 0))).isTrue();
        assertThat(
                        client.batch()
                                .v1()
                                .jobs()
                                .inNamespace(NS)
                                .withName("tl-never-admitted-a1")
                                .get())
                .isNull();
        assertThat(launcher.state(run("never-admitted", 1, 0))).isEqualTo(new RunState.Unknown());
    }

    private Map<String, String> labels(String jobName) {
        return client.batch()
                .v1()
                .jobs()
                .inNamespace(NS)
                .withName(jobName)
                .get()
                .getMetadata()
                .getLabels();
    }

    private void admit(Job job) {
        client.batch()
                .v1()
                .jobs()
                .inNamespace(NS)
                .resource(
                        new JobBuilder(job)
                                .editSpec()
                                .withSuspend(false)
                                .endSpec()
                                .withNewStatus()
                                .withActive(1)
                                .endStatus()
                                .build())
                .update();
    }

    private void suspend(String jobName) {
        Job job = client.batch().v1().jobs().inNamespace(NS).withName(jobName).get();
        client.batch()
                .v1()
                .jobs()
                .inNamespace(NS)
                .resource(
                        new JobBuilder(job)
                                .editSpec()
                                .withSuspend(true)
                                .endSpec()
                                .withNewStatus()
                                .withActive(0)
                                .addNewCondition()
                                .withType("Suspended")
                                .withStatus("True")
                                .withReason("JobSuspended")
                                .endCondition()
                                .endStatus()
                                .build())
                .update();
    }

    private void pod(String jobName, String phase, Integer exitCode) {
        var status = new PodBuilder().withNewStatus().withPhase(phase);
        if (exitCode != null) {
            status.addNewContainerStatus()
                    .withName("worker")
                    .withNewState()
                    .withNewTerminated()
                    .withExitCode(exitCode)
                    .endTerminated()
                    .endState()
                    .endContainerStatus();
        }
        client.pods()
                .inNamespace(NS)
                .resource(
                        status.endStatus()
                                .withNewMetadata()
                                .withName(jobName + "-pod")
                                .addToLabels("job-name", jobName)
                                .endMetadata()
                                .build())
                .create();
    }
}
