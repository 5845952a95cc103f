package io.tuneline.training.run;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.batch.v1.Job;
import io.fabric8.kubernetes.api.model.batch.v1.JobBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.messaging.EventPublisher;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.proto.v1.CancelJob;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.proto.v1.Resources;
import io.tuneline.testing.InMemoryS3Server;
import io.tuneline.training.config.TrainingConfig;
import io.tuneline.training.kubernetes.KubernetesExecutorSettings;
import io.tuneline.training.kubernetes.KubernetesRunLauncher;
import io.tuneline.training.kubernetes.KueueSettings;
import io.tuneline.training.progress.TrainingMetrics;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CopyOnWriteArrayList;
import org.eclipse.microprofile.reactive.messaging.Emitter;
import org.eclipse.microprofile.reactive.messaging.Message;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The controller with the Kubernetes executor and Kueue on, against fabric8's mock API server in
 * CRUD mode and an in-memory S3 server; events are read from a recording emitter. The tests play
 * Kueue's part (un-suspending the Job on admission, suspending it again to preempt it) and the Job
 * controller's (its pods). What a real Kueue and cluster do was not checked here.
 */
@EnableKubernetesMockClient(crud = true)
class KueueAdmissionTest {
    private static final String NS = "ml";
    private static final Duration WAIT = Duration.ofSeconds(10);
    private static InMemoryS3Server s3;

    KubernetesClient client;
    private ArtifactStore store;
    private RunStore runs;
    private TrainingController controller;
    private final List<String> statusMessages = new CopyOnWriteArrayList<>();

    @BeforeAll
    static void startS3() {
        s3 = InMemoryS3Server.start();
    }

    @AfterAll
    static void stopS3() {
        s3.close();
    }

    @BeforeEach
    void startController() {
        store = s3.newStore("kueue-" + System.nanoTime());
        runs = new RunStore(store);
        var launcher =
                new KubernetesRunLauncher(
                        client,
                        new KubernetesExecutorSettings(
                                NS,
                                Path.of("src/test/resources/worker-pod-template.yaml"),
                                "nvidia.com/gpu",
                                3600,
                                0,
                                new KueueSettings(
                                        true,
                                        "gpu-a100",
                                        KueueSettings.parsePriorityClasses(
                                                List.of("0=tuneline-normal", "10=tuneline-high")),
                                        Optional.empty())));
        var registry = new SimpleMeterRegistry();
        controller =
                new TrainingController(
                        launcher,
                        store,
                        new KubernetesExecutorConfig(),
                        new EventPublisher(new EventCodec("/test"), registry),
                        new RecordingEmitter(statusMessages),
                        new RecordingEmitter(new CopyOnWriteArrayList<>()),
                        new TrainingMetrics(registry));
        controller.onStart(null);
    }

    @AfterEach
    void stopController() throws Exception {
        controller.stop();
        store.close();
    }

    @Test
    void aRunWaitsForAdmissionUntilKueueStartsItsJob() {
        controller.submit(prepared("queued", 10));

        Job job = job("tl-queued-a1");
        assertThat(job.getSpec().getSuspend()).isTrue();
        assertThat(job.getMetadata().getLabels())
                .containsEntry("kueue.x-k8s.io/queue-name", "gpu-a100")
                .containsEntry("kueue.x-k8s.io/priority-class", "tuneline-high");
        await().atMost(WAIT)
                .until(
                        () ->
                                statusMessages.contains(
                                        "attempt 1 waiting for admission by Kueue (queue gpu-a100)"));
        RunRecord waiting = runs.record("queued").orElseThrow();
        assertThat(waiting.status()).isEqualTo(RunStatus.QUEUED);
        assertThat(waiting.reason()).isEqualTo("waiting for admission by Kueue (queue gpu-a100)");

        // A reconcile pass while it waits changes nothing and says nothing again.
        controller.reconcile();
        assertThat(statusMessages).filteredOn(m -> m.contains("waiting for admission")).hasSize(1);

        admitAndRun("tl-queued-a1");
        await().atMost(WAIT)
                .until(() -> runs.record("queued").orElseThrow().status() == RunStatus.RUNNING);
        assertThat(statusMessages).contains("training, attempt 1 on the kubernetes executor");
    }

    @Test
    void aJobKueueSuspendsAgainAfterAdmissionResumesAsAPreemption() {
        controller.submit(prepared("preempted", 0));
        admitAndRun("tl-preempted-a1");
        await().atMost(WAIT)
                .until(() -> runs.record("preempted").orElseThrow().status() == RunStatus.RUNNING);

        // Kueue evicts the Workload: it suspends the Job, and the Job controller deletes the pod
        // (the worker stores its checkpoint and goes).
        Job job = job("tl-preempted-a1");
        client.batch()
                .v1()
                .jobs()
                .inNamespace(NS)
                .resource(
                        new JobBuilder(job)
                                .editSpec()
                                .withSuspend(true)
                                .endSpec()
                                .editStatus()
                                .withActive(0)
                                .endStatus()
                                .build())
                .update();
        client.pods().inNamespace(NS).withName("tl-preempted-a1-pod").delete();
        // The watch saw the pod stopping; the reconcile pass sees the Job waiting again.
        await().atMost(WAIT)
                .until(
                        () -> {
                            controller.reconcile();
                            return runs.record("preempted").orElseThrow().attempt() == 2;
                        });

        RunRecord resumed = runs.record("preempted").orElseThrow();
        assertThat(resumed.preemptions()).isEqualTo(1);
        assertThat(resumed.failedAttempts()).isEqualTo(1);
        assertThat(statusMessages)
                .anySatisfy(
                        m ->
                                assertThat(m)
                                        .startsWith(
                                                "attempt 1 preempted (Kueue suspended the Job"
                                                        + " again")
                                        .endsWith(
                                                "resuming from its checkpoint as attempt 2"
                                                        + " (preemption 1; not counted as a"
                                                        + " failure)"));
        // Attempt 1's Job is gone (Kueue would admit it again); attempt 2 waits in the queue.
        await().atMost(WAIT).until(() -> jobOrNull("tl-preempted-a1") == null);
        assertThat(job("tl-preempted-a2").getSpec().getSuspend()).isTrue();
        await().atMost(WAIT)
                .until(
                        () ->
                                statusMessages.contains(
                                        "attempt 2 waiting for admission by Kueue (queue gpu-a100)"));
    }

    @Test
    void cancellingARunWaitingForAdmissionDeletesItsJob() {
        controller.submit(prepared("cancelled", 0));
        await().atMost(WAIT)
                .until(() -> runs.record("cancelled").orElseThrow().reason().contains("Kueue"));

        controller.cancel(CancelJob.newBuilder().setJobId("cancelled").setReason("test").build());

        assertThat(jobOrNull("tl-cancelled-a1")).isNull();
        await().atMost(WAIT)
                .until(
                        () -> {
                            controller.reconcile();
                            return runs.record("cancelled").orElseThrow().status()
                                    == RunStatus.CANCELLED;
                        });
    }

    private void admitAndRun(String jobName) {
        // The Job controller starts the pod once Kueue has un-suspended the Job.
        client.pods()
                .inNamespace(NS)
                .resource(
                        new PodBuilder()
                                .withNewMetadata()
                                .withName(jobName + "-pod")
                                .addToLabels("job-name", jobName)
                                .endMetadata()
                                .withNewStatus()
                                .withPhase("Running")
                                .endStatus()
                                .build())
                .create();
        client.batch()
                .v1()
                .jobs()
                .inNamespace(NS)
                .resource(
                        new JobBuilder(job(jobName))
                                .editSpec()
                                .withSuspend(false)
                                .endSpec()
                                .withNewStatus()
                                .withActive(1)
                                .endStatus()
                                .build())
                .update();
    }

    private Job job(String name) {
        Job job = jobOrNull(name);
        assertThat(job).as("Job %s", name).isNotNull();
        return job;
    }

    private Job jobOrNull(String name) {
        return client.batch().v1().jobs().inNamespace(NS).withName(name).get();
    }

    private static DatasetPrepared prepared(String jobId, int priority) {
        return DatasetPrepared.newBuilder()
                .setJobId(jobId)
                .setJob(
                        JobRequested.newBuilder()
                                .setJobId(jobId)
                                .setResources(
                                        Resources.newBuilder().setGpus(1).setPriority(priority)))
                .build();
    }

    /** The messages of the JobStatusChanged events sent through it; every send acknowledged. */
    private record RecordingEmitter(List<String> messages) implements Emitter<byte[]> {
        @Override
        public CompletionStage<Void> send(byte[] payload) {
            record(payload);
            return CompletableFuture.completedFuture(null);
        }

        @Override
        public <M extends Message<? extends byte[]>> void send(M message) {
            record(message.getPayload());
            message.ack();
        }

        private void record(byte[] payload) {
            var event = JobStatusChanged.newBuilder();
            try {
                JsonFormat.parser()
                        .ignoringUnknownFields()
                        .merge(new String(payload, StandardCharsets.UTF_8), event);
            } catch (InvalidProtocolBufferException e) {
                throw new IllegalStateException(e);
            }
            messages.add(event.getMessage());
        }

        @Override
        public void complete() {}

        @Override
        public void error(Exception e) {}

        @Override
        public boolean isCancelled() {
            return false;
        }

        @Override
        public boolean hasRequests() {
            return true;
        }
    }

    /** The Kubernetes executor; reconcile passes only when a test asks for one. */
    private static final class KubernetesExecutorConfig implements TrainingConfig {
        @Override
        public Executor executor() {
            return Executor.KUBERNETES;
        }

        @Override
        public int maxAttempts() {
            return 3;
        }

        @Override
        public int maxPreemptions() {
            return 20;
        }

        @Override
        public Duration reconcileInterval() {
            return Duration.ofHours(1);
        }

        @Override
        public Local local() {
            throw new UnsupportedOperationException("not the local executor");
        }

        @Override
        public Kubernetes kubernetes() {
            throw new UnsupportedOperationException("the launcher is built by the test");
        }
    }
}
