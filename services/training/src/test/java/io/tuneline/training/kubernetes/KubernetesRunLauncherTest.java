package io.tuneline.training.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.Toleration;
import io.fabric8.kubernetes.api.model.batch.v1.Job;
import io.fabric8.kubernetes.api.model.batch.v1.JobBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.Watch;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.tuneline.training.run.RunRequest;
import io.tuneline.training.run.RunState;
import io.tuneline.training.worker.TrainingWorker;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.awaitility.Awaitility;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Against fabric8's mock API server in CRUD mode: what a cluster would store and return. */
@EnableKubernetesMockClient(crud = true)
class KubernetesRunLauncherTest {
    private static final String NS = "ml";

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
                                0));
    }

    private static RunRequest run(String jobId, int attempt, int gpus) {
        return new RunRequest(
                jobId,
                attempt,
                gpus,
                Optional.of("12"),
                Optional.of("80Gi"),
                Map.of("pool", "training"),
                7200,
                0);
    }

    @Test
    void createdJobCarriesTheTemplateAndTheRunsOwnResourcesAndScheduling() {
        launcher.launch(run("sentiment-1", 1, 2));

        Job job = client.batch().v1().jobs().inNamespace(NS).withName("tl-sentiment-1-a1").get();
        assertThat(job.getMetadata().getLabels())
                .containsEntry("app.kubernetes.io/component", "training-worker")
                .containsEntry("tuneline.io/job-id", "sentiment-1")
                .containsEntry("tuneline.io/run-id", "tl-sentiment-1-a1")
                .containsEntry("tuneline.io/attempt", "1");
        assertThat(job.getSpec().getBackoffLimit()).isZero();
        assertThat(job.getSpec().getTtlSecondsAfterFinished()).isEqualTo(3600);
        assertThat(job.getSpec().getActiveDeadlineSeconds()).isEqualTo(7200L);

        var pod = job.getSpec().getTemplate();
        assertThat(pod.getMetadata().getLabels())
                .containsEntry("app.kubernetes.io/name", "tuneline")
                .containsEntry("tuneline.io/job-id", "sentiment-1");
        var spec = pod.getSpec();
        assertThat(spec.getRestartPolicy()).isEqualTo("Never");
        assertThat(spec.getServiceAccountName()).isEqualTo("tl-tuneline-training");
        assertThat(spec.getRuntimeClassName()).isEqualTo("nvidia");
        assertThat(spec.getPriorityClassName()).isEqualTo("ml-training-high");
        assertThat(spec.getNodeSelector())
                .containsEntry("nvidia.com/gpu.product", "NVIDIA-A100-SXM4-80GB")
                .containsEntry("pool", "training");
        assertThat(spec.getTolerations())
                .extracting(Toleration::getKey)
                .containsExactly("nvidia.com/gpu");
        assertThat(spec.getAffinity().getNodeAffinity()).isNotNull();
        assertThat(spec.getSecurityContext().getRunAsNonRoot()).isTrue();
        assertThat(spec.getVolumes()).extracting(v -> v.getName()).containsExactly("scratch");

        Container worker = spec.getContainers().get(0);
        assertThat(worker.getImage())
                .isEqualTo("registry.example.com/tuneline/training-worker-cuda:0.1.0");
        assertThat(worker.getResources().getLimits())
                .containsEntry("nvidia.com/gpu", new Quantity("2"))
                .containsEntry("memory", new Quantity("80Gi"));
        assertThat(worker.getResources().getRequests())
                .containsEntry("cpu", new Quantity("12"))
                .containsEntry("memory", new Quantity("80Gi"))
                .doesNotContainKey("nvidia.com/gpu");
        assertThat(worker.getEnv())
                .extracting(EnvVar::getName, EnvVar::getValue)
                .contains(
                        org.assertj.core.groups.Tuple.tuple("TUNELINE_JOB_ID", "sentiment-1"),
                        org.assertj.core.groups.Tuple.tuple("TUNELINE_RUN_ID", "tl-sentiment-1-a1"),
                        org.assertj.core.groups.Tuple.tuple("TUNELINE_ATTEMPT", "1"));
        assertThat(worker.getEnvFrom()).hasSize(1);
    }

    @Test
    void aCpuRunAsksForNoGpuAndKeepsTheTemplatesResources() {
        launcher.launch(
                new RunRequest(
                        "cpu-job", 1, 0, Optional.empty(), Optional.empty(), Map.of(), 0, 0));
        Job job = client.batch().v1().jobs().inNamespace(NS).withName("tl-cpu-job-a1").get();
        var resources = job.getSpec().getTemplate().getSpec().getContainers().get(0).getResources();
        assertThat(resources.getLimits())
                .doesNotContainKey("nvidia.com/gpu")
                .containsEntry("memory", new Quantity("96Gi"));
        assertThat(resources.getRequests()).containsEntry("cpu", new Quantity("8"));
        assertThat(job.getSpec().getActiveDeadlineSeconds()).isNull();
    }

    @Test
    void launchingTheSameAttemptTwiceCreatesOneJobAndANewAttemptAnother() {
        launcher.launch(run("dup", 1, 1));
        launcher.launch(run("dup", 1, 1));
        launcher.launch(run("dup", 2, 1));
        assertThat(
                        client.batch()
                                .v1()
                                .jobs()
                                .inNamespace(NS)
                                .withLabel("tuneline.io/job-id", "dup")
                                .list()
                                .getItems())
                .extracting(j -> j.getMetadata().getName())
                .containsExactlyInAnyOrder("tl-dup-a1", "tl-dup-a2");
    }

    @Test
    void longJobIdsGiveValidNamesThatStayUniquePerJob() {
        String a = "a".repeat(60) + "-x";
        String b = "a".repeat(60) + "-y";
        String nameA = TrainingJobFactory.jobName(run(a, 12, 1));
        String nameB = TrainingJobFactory.jobName(run(b, 12, 1));
        assertThat(nameA).hasSizeLessThanOrEqualTo(63).endsWith("-a12").matches("[a-z0-9-]+");
        assertThat(nameA).isNotEqualTo(nameB);
    }

    @Test
    void aComparisonMethodsRunGetsADnsLabelNameAndIsFollowedByIt() {
        RunRequest lora = run("cmp-1.lora", 1, 1);
        // Pods take their hostnames from the Job's name, which must not have the run id's ".".
        assertThat(TrainingJobFactory.jobName(lora)).isEqualTo("tl-cmp-1-lora-a1");
        launcher.launch(lora);
        pod("tl-cmp-1-lora-a1", "terminated", "OOMKilled", 137);
        assertThat(launcher.state(lora))
                .isInstanceOfSatisfying(
                        RunState.Failed.class,
                        f -> assertThat(f.reason()).contains("ran out of memory"));
    }

    @Test
    void podFailuresBecomeReasonsAUserCanActOn() {
        launcher.launch(run("oom", 1, 1));
        pod("tl-oom-a1", "terminated", "OOMKilled", 137);
        assertThat(launcher.state(run("oom", 1, 1)))
                .isEqualTo(
                        new RunState.Failed(
                                "the worker ran out of memory (limit 80Gi) and was killed; give the"
                                        + " job more memory (resources.memory), a smaller batch_size"
                                        + " or max_seq_length",
                                false));

        launcher.launch(run("pull", 1, 1));
        pod("tl-pull-a1", "waiting", "ImagePullBackOff", 0);
        assertThat(launcher.state(run("pull", 1, 1)))
                .isInstanceOfSatisfying(
                        RunState.Failed.class,
                        f -> {
                            assertThat(f.reason())
                                    .contains("cannot be pulled (ImagePullBackOff)")
                                    .contains("training-worker-cuda:0.1.0");
                            assertThat(f.retriable()).isFalse();
                        });

        launcher.launch(run("diverged", 1, 1));
        pod("tl-diverged-a1", "terminated", "Error", TrainingWorker.EXIT_JOB_CANNOT_SUCCEED);
        assertThat(launcher.state(run("diverged", 1, 1)))
                .isInstanceOfSatisfying(
                        RunState.Failed.class,
                        f -> {
                            assertThat(f.reason()).startsWith("the job cannot be trained as given");
                            assertThat(f.retriable()).isFalse();
                        });

        // The worker wrote its cause to the termination message file: the reason starts with it.
        launcher.launch(run("said", 1, 1));
        pod(
                "tl-said-a1",
                "terminated",
                "Error",
                TrainingWorker.EXIT_JOB_CANNOT_SUCCEED,
                "training diverged at step 7: the loss is NaN");
        assertThat(launcher.state(run("said", 1, 1)))
                .isInstanceOfSatisfying(
                        RunState.Failed.class,
                        f -> {
                            assertThat(f.reason())
                                    .startsWith("training diverged at step 7: the loss is NaN (")
                                    .contains("cannot be trained as given");
                            assertThat(f.retriable()).isFalse();
                        });

        launcher.launch(run("evicted", 1, 1));
        client.pods()
                .inNamespace(NS)
                .resource(
                        new PodBuilder()
                                .withNewMetadata()
                                .withName("tl-evicted-a1-pod")
                                .addToLabels("job-name", "tl-evicted-a1")
                                .endMetadata()
                                .withNewStatus()
                                .withPhase("Failed")
                                .withReason("Evicted")
                                .withMessage("The node was low on resource: ephemeral-storage.")
                                .endStatus()
                                .build())
                .create();
        assertThat(launcher.state(run("evicted", 1, 1)))
                .isEqualTo(
                        new RunState.Failed(
                                "the worker pod was evicted from its node: The node was low on"
                                        + " resource: ephemeral-storage.",
                                true));
    }

    @Test
    void aRunPastItsDeadlineFailsWithTheLimitNamed() {
        Job job = launcher.launch(run("slow", 1, 1));
        setStatus(job, "Failed", "DeadlineExceeded");
        assertThat(launcher.state(run("slow", 1, 1)))
                .isEqualTo(
                        new RunState.Failed(
                                "the run exceeded its time limit of 7200 s"
                                        + " (resources.max_runtime_seconds) and was stopped",
                                false));
    }

    @Test
    void cancellationDeletesTheJob() {
        launcher.launch(run("cancel-me", 1, 1));
        assertThat(launcher.cancel(run("cancel-me", 1, 1))).isTrue();
        assertThat(client.batch().v1().jobs().inNamespace(NS).withName("tl-cancel-me-a1").get())
                .isNull();
        assertThat(launcher.state(run("cancel-me", 1, 1))).isEqualTo(new RunState.Unknown());
        assertThat(launcher.cancel(run("cancel-me", 1, 1))).isFalse();
    }

    @Test
    void watchReportsWhenARunCompletes() {
        var seen = new CopyOnWriteArrayList<Map.Entry<String, RunState>>();
        try (Watch ignored =
                launcher.watch((run, state) -> seen.add(Map.entry(run.runId(), state)))) {
            Job job = launcher.launch(run("watched", 1, 1));
            setStatus(job, "Complete", null);
            Awaitility.await()
                    .atMost(10, TimeUnit.SECONDS)
                    .until(() -> seen.contains(Map.entry("watched-a1", new RunState.Succeeded())));
        }
    }

    @Test
    void aTemplateWithoutContainerIsRejectedAtStartup() throws Exception {
        Path empty = Files.createTempFile("template", ".yaml");
        Files.writeString(empty, "spec:\n  restartPolicy: Never\n");
        assertThatThrownBy(
                        () ->
                                new KubernetesRunLauncher(
                                        client,
                                        new KubernetesExecutorSettings(
                                                NS, empty, "nvidia.com/gpu", 60, 0)))
                .hasMessageContaining("has no container");
    }

    private void pod(String jobName, String state, String reason, int exitCode) {
        pod(jobName, state, reason, exitCode, null);
    }

    private void pod(String jobName, String state, String reason, int exitCode, String message) {
        var builder =
                new PodBuilder()
                        .withNewMetadata()
                        .withName(jobName + "-pod")
                        .addToLabels("job-name", jobName)
                        .endMetadata()
                        .withNewSpec()
                        .addNewContainer()
                        .withName("worker")
                        .withNewResources()
                        .addToLimits("memory", new Quantity("80Gi"))
                        .endResources()
                        .endContainer()
                        .endSpec();
        var status =
                new io.fabric8.kubernetes.api.model.ContainerStatusBuilder()
                        .withName("worker")
                        .withImage("registry.example.com/tuneline/training-worker-cuda:0.1.0");
        if (state.equals("terminated")) {
            status.withNewState()
                    .withNewTerminated()
                    .withReason(reason)
                    .withExitCode(exitCode)
                    .withMessage(message)
                    .endTerminated()
                    .endState();
        } else {
            status.withNewState()
                    .withNewWaiting()
                    .withReason(reason)
                    .withMessage("Back-off pulling image")
                    .endWaiting()
                    .endState();
        }
        Pod pod =
                builder.withNewStatus()
                        .withPhase("Pending")
                        .addToContainerStatuses(status.build())
                        .endStatus()
                        .build();
        client.pods().inNamespace(NS).resource(pod).create();
    }

    private void setStatus(Job job, String type, String reason) {
        Job updated =
                new JobBuilder(job)
                        .withNewStatus()
                        .addNewCondition()
                        .withType(type)
                        .withStatus("True")
                        .withReason(reason)
                        .endCondition()
                        .endStatus()
                        .build();
        client.batch().v1().jobs().inNamespace(NS).resource(updated).update();
    }
}
