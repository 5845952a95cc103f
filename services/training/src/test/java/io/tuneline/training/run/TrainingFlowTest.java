package io.tuneline.training.run;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import com.google.protobuf.util.Timestamps;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.tuneline.common.event.CloudEventHeaders;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.topic.Topics;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.BaseModel;
import io.tuneline.proto.v1.CancelJob;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.JobStatus;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.proto.v1.Task;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.proto.v1.TrainingProgress;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.KafkaTestClient;
import io.tuneline.testing.S3ProxyResource;
import io.tuneline.training.TrainingFixtures;
import io.tuneline.training.local.FakeWorker;
import io.tuneline.training.progress.TrainingMetrics;
import jakarta.inject.Inject;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The controller end to end with the local executor: a prepared dataset in, a worker process per
 * attempt (a stand-in for the engine's worker), events out as a user reads them from Kafka.
 */
@QuarkusTest
@TestProfile(TrainingFlowTest.LocalWorker.class)
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class TrainingFlowTest {
    private static final Duration WAIT = Duration.ofSeconds(60);
    private static final EventCodec CODEC = new EventCodec("/test");

    /** Runs {@link FakeWorker} as the worker, allows two attempts. */
    public static class LocalWorker implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of(
                    "tuneline.training.local.worker-command",
                    TrainingFixtures.workerCommand(FakeWorker.class),
                    "tuneline.training.max-attempts",
                    "2",
                    "tuneline.training.max-preemptions",
                    "4",
                    "tuneline.training.local.max-concurrent-runs",
                    "2",
                    "tuneline.training.local.stop-grace",
                    "10s");
        }
    }

    @Inject MeterRegistry registry;
    @Inject ArtifactStore store;
    @Inject TrainingController controller;
    private KafkaTestClient kafka;

    @BeforeEach
    void connect() {
        kafka = KafkaTestClient.forApplication();
    }

    @AfterEach
    void disconnect() {
        kafka.close();
    }

    @Test
    void aPreparedDatasetIsTrainedAndTheModelAnnounced() {
        publishPrepared("ok-train-1");

        TrainingCompleted done =
                CODEC.decode(
                                awaitEvent(
                                        Topics.TRAINING_COMPLETED,
                                        "ok-train-1",
                                        "tuneline.v1.TrainingCompleted"),
                                TrainingCompleted.getDefaultInstance())
                        .payload();
        assertThat(done.getRunId()).isEqualTo("ok-train-1-a1");
        assertThat(done.getModel().getUri())
                .isEqualTo("s3://tuneline-test/runs/ok-train-1/model/model.safetensors");
        assertThat(done.getModel().getSha256()).hasSize(64);
        assertThat(done.getJob().getBaseModel().getRef()).isEqualTo("minilm-l6");
        assertThat(done.getDataset().getTrain().getUri())
                .isEqualTo("s3://tuneline-test/datasets/ok-train-1/prepared/train.jsonl");
        assertThat(statuses("ok-train-1"))
                .extracting(JobStatusChanged::getStatus)
                .containsOnly(JobStatus.JOB_STATUS_TRAINING);
    }

    @Test
    void theWorkersProgressBecomesMetricsTaggedByJobWhileTheRunIsLive() {
        publishPrepared("hang-progress-1");
        awaitTraining("hang-progress-1");

        publish(
                Topics.TRAINING_PROGRESS,
                TrainingProgress.newBuilder()
                        .setJobId("hang-progress-1")
                        .setRunId("hang-progress-1-a1")
                        .setStep(40)
                        .setTotalSteps(100)
                        .setLoss(0.42)
                        .setTokensPerSecond(1500)
                        .setReportedAt(Timestamps.fromMillis(1_800_000_000_000L))
                        .build());

        await().atMost(WAIT)
                .until(() -> gauge("tuneline.training.loss", "hang-progress-1") != null);
        assertThat(gauge("tuneline.training.loss", "hang-progress-1").value()).isEqualTo(0.42);
        assertThat(gauge("tuneline.training.tokens.per.second", "hang-progress-1").value())
                .isEqualTo(1500);
        assertThat(
                        gauge(
                                        "tuneline.training.last.progress.timestamp.seconds",
                                        "hang-progress-1")
                                .value())
                .isEqualTo(1_800_000_000.0);
        assertThat(registry.find("tuneline.training.runs").tag("state", "running").gauges())
                .anyMatch(g -> g.value() >= 1);

        publish(Topics.JOBS_CONTROL, CancelJob.newBuilder().setJobId("hang-progress-1").build());
        // The series end with the run, so job ids do not pile up.
        await().atMost(WAIT)
                .until(() -> gauge("tuneline.training.loss", "hang-progress-1") == null);
    }

    private io.micrometer.core.instrument.Gauge gauge(String name, String jobId) {
        return registry.find(name).tag("job_id", jobId).gauge();
    }

    private void awaitTraining(String jobId) {
        await().atMost(WAIT)
                .until(
                        () ->
                                statuses(jobId).stream()
                                        .anyMatch(
                                                s ->
                                                        s.getMessage()
                                                                .startsWith(
                                                                        "training, attempt 1")));
    }

    @Test
    void aWorkerThatDiesIsRestartedAsANewAttemptAndTheJobStillSucceeds() {
        publishPrepared("flaky-1");

        TrainingCompleted done =
                CODEC.decode(
                                awaitEvent(
                                        Topics.TRAINING_COMPLETED,
                                        "flaky-1",
                                        "tuneline.v1.TrainingCompleted"),
                                TrainingCompleted.getDefaultInstance())
                        .payload();
        assertThat(done.getRunId()).isEqualTo("flaky-1-a2");
        // Reading the status topic back may take longer than one short poll on a loaded machine.
        await().atMost(WAIT)
                .untilAsserted(
                        () ->
                                assertThat(statuses("flaky-1"))
                                        .extracting(JobStatusChanged::getMessage)
                                        .anyMatch(
                                                m ->
                                                        m.startsWith(
                                                                        "attempt 1 failed (the worker process exited with code 137 (killed: SIGKILL")
                                                                && m.endsWith(
                                                                        "restarting from the last checkpoint as attempt 2 of 2")));
    }

    @Test
    void aPreemptedRunResumesFromItsCheckpointWithoutUsingUpAnAttempt() {
        publishPrepared("preempt-1");

        // Three preemptions with two attempts allowed: none of them counts as a failure.
        TrainingCompleted done =
                CODEC.decode(
                                awaitEvent(
                                        Topics.TRAINING_COMPLETED,
                                        "preempt-1",
                                        "tuneline.v1.TrainingCompleted"),
                                TrainingCompleted.getDefaultInstance())
                        .payload();
        assertThat(done.getRunId()).isEqualTo("preempt-1-a4");
        await().atMost(WAIT)
                .until(
                        () ->
                                statuses("preempt-1").stream()
                                                .filter(m -> m.getMessage().contains("preempted"))
                                                .count()
                                        == 3);
        List<String> preempted =
                statuses("preempt-1").stream()
                        .map(JobStatusChanged::getMessage)
                        .filter(m -> m.contains("preempted"))
                        .toList();
        assertThat(preempted).hasSize(3);
        for (int i = 1; i <= 3; i++) {
            assertThat(preempted.get(i - 1))
                    .startsWith(
                            "attempt "
                                    + i
                                    + " preempted (the worker process was stopped (SIGTERM)"
                                    + " after storing a checkpoint; its log: ")
                    .endsWith(
                            "); resuming from its checkpoint as attempt "
                                    + (i + 1)
                                    + " (preemption "
                                    + i
                                    + "; not counted as a failure)");
        }
        assertThat(registry.counter(TrainingMetrics.PREEMPTIONS).count()).isGreaterThanOrEqualTo(3);
    }

    @Test
    void aRunPreemptedMoreThanMaxPreemptionsFailsSayingSo() {
        publishPrepared("preempt-forever-1");

        JobFailed failed =
                CODEC.decode(
                                awaitEvent(
                                        Topics.JOBS_STATUS,
                                        "preempt-forever-1",
                                        "tuneline.v1.JobFailed"),
                                JobFailed.getDefaultInstance())
                        .payload();
        assertThat(failed.getMessage())
                .startsWith("training was preempted 5 times, more than max-preemptions 4 allows");
    }

    @Test
    void aWorkerThatKeepsCrashingFailsTheJobWithItsLastWords() {
        publishPrepared("crash-job-1");

        JobFailed failed =
                CODEC.decode(
                                awaitEvent(
                                        Topics.JOBS_STATUS, "crash-job-1", "tuneline.v1.JobFailed"),
                                JobFailed.getDefaultInstance())
                        .payload();
        assertThat(failed.getErrorCode()).isEqualTo("TRAINING_FAILED");
        assertThat(failed.getMessage())
                .startsWith(
                        "training failed 2 times; the last attempt: the worker process exited with code 1")
                .contains("CUDA error: an illegal memory access");
    }

    @Test
    void aJobThatCannotSucceedFailsAfterOneAttempt() {
        publishPrepared("diverge-job-1");

        JobFailed failed =
                CODEC.decode(
                                awaitEvent(
                                        Topics.JOBS_STATUS,
                                        "diverge-job-1",
                                        "tuneline.v1.JobFailed"),
                                JobFailed.getDefaultInstance())
                        .payload();
        assertThat(failed.getMessage())
                .startsWith("training failed: training diverged at step 7 (")
                .contains("the job cannot be trained as given");
        assertThat(statuses("diverge-job-1"))
                .noneMatch(st -> st.getMessage().contains("restarting from the last checkpoint"));
    }

    @Test
    void aCancelledRunStopsAndReportsCancelled() {
        publishPrepared("hang-cancel-1");
        await().atMost(WAIT)
                .until(
                        () ->
                                statuses("hang-cancel-1").stream()
                                        .anyMatch(
                                                s ->
                                                        s.getMessage()
                                                                .startsWith(
                                                                        "training, attempt 1")));

        publish(
                Topics.JOBS_CONTROL,
                CancelJob.newBuilder()
                        .setJobId("hang-cancel-1")
                        .setReason("wrong dataset")
                        .build());

        ConsumerRecord<String, byte[]> record =
                awaitEvent(
                        Topics.JOBS_STATUS,
                        "hang-cancel-1",
                        "tuneline.v1.JobStatusChanged",
                        JobStatus.JOB_STATUS_CANCELLED);
        JobStatusChanged cancelled =
                CODEC.decode(record, JobStatusChanged.getDefaultInstance()).payload();
        assertThat(cancelled.getMessage())
                .isEqualTo(
                        "cancelled: wrong dataset; the run's files are kept in runs/hang-cancel-1/");
    }

    @Test
    void aJobCancelledBeforeTrainingIsReportedCancelledAndNeverTrained() {
        publish(
                Topics.JOBS_CONTROL,
                CancelJob.newBuilder()
                        .setJobId("early-cancel-1")
                        .setReason("changed my mind")
                        .build());
        ConsumerRecord<String, byte[]> record =
                awaitEvent(
                        Topics.JOBS_STATUS,
                        "early-cancel-1",
                        "tuneline.v1.JobStatusChanged",
                        JobStatus.JOB_STATUS_CANCELLED);
        assertThat(
                        CODEC.decode(record, JobStatusChanged.getDefaultInstance())
                                .payload()
                                .getMessage())
                .isEqualTo("cancelled: changed my mind before training started");

        publishPrepared("early-cancel-1");
        publishPrepared("ok-marker-early");
        await().atMost(WAIT)
                .until(
                        () ->
                                statuses("ok-marker-early").stream()
                                        .anyMatch(
                                                s ->
                                                        s.getMessage()
                                                                .startsWith(
                                                                        "training, attempt 1")));
        assertThat(statuses("early-cancel-1"))
                .extracting(JobStatusChanged::getStatus)
                .containsOnly(JobStatus.JOB_STATUS_CANCELLED);
    }

    @Test
    void aRestartedControllerCarriesOnWithARunThatWasInFlight() {
        // What a controller that died mid-run left behind: the run's input and its record.
        RunStore runs = new RunStore(store);
        runs.writeInput(prepared("ok-recover-1"));
        runs.save(new RunRecord("ok-recover-1", 1, RunStatus.RUNNING, "running", Instant.now()));

        controller.recoverInFlight();

        TrainingCompleted done =
                CODEC.decode(
                                awaitEvent(
                                        Topics.TRAINING_COMPLETED,
                                        "ok-recover-1",
                                        "tuneline.v1.TrainingCompleted"),
                                TrainingCompleted.getDefaultInstance())
                        .payload();
        assertThat(done.getRunId()).isEqualTo("ok-recover-1-a2");
        assertThat(runs.record("ok-recover-1").orElseThrow().status())
                .isEqualTo(RunStatus.SUCCEEDED);
    }

    @Test
    void aRunStillQueuedWhenTheControllerDiedStartsAsTheSameAttempt() {
        RunStore runs = new RunStore(store);
        runs.writeInput(prepared("ok-queued-1"));
        runs.save(new RunRecord("ok-queued-1", 1, RunStatus.QUEUED, "queued", Instant.now()));

        controller.recoverInFlight();

        TrainingCompleted done =
                CODEC.decode(
                                awaitEvent(
                                        Topics.TRAINING_COMPLETED,
                                        "ok-queued-1",
                                        "tuneline.v1.TrainingCompleted"),
                                TrainingCompleted.getDefaultInstance())
                        .payload();
        // Never started, so a restart uses up none of the job's attempts.
        assertThat(done.getRunId()).isEqualTo("ok-queued-1-a1");
    }

    @Test
    void aRedeliveredDatasetDoesNotStartASecondRun() {
        DatasetPrepared prepared = prepared("ok-once-1");
        publish(Topics.DATASETS_PREPARED, prepared);
        awaitEvent(Topics.TRAINING_COMPLETED, "ok-once-1", "tuneline.v1.TrainingCompleted");
        publish(Topics.DATASETS_PREPARED, prepared);
        publishPrepared("ok-after-1");
        awaitEvent(Topics.TRAINING_COMPLETED, "ok-after-1", "tuneline.v1.TrainingCompleted");

        List<ConsumerRecord<String, byte[]>> completed =
                kafka.readUntil(Topics.TRAINING_COMPLETED, rs -> true, Duration.ofSeconds(2));
        assertThat(completed.stream().filter(r -> "ok-once-1".equals(r.key()))).hasSize(1);
    }

    @Test
    void aComparisonTrainsOneRunPerMethodWithTheSameDataAndSeedAndNamesEach() {
        DatasetPrepared prepared = comparison("ok-compare-1");
        publish(Topics.DATASETS_PREPARED, prepared);

        List<TrainingCompleted> done =
                kafka
                        .readUntil(
                                Topics.TRAINING_COMPLETED,
                                rs -> completedOf(rs, "ok-compare-1").size() == 3,
                                WAIT)
                        .stream()
                        .filter(r -> "ok-compare-1".equals(r.key()))
                        .map(r -> CODEC.decode(r, TrainingCompleted.getDefaultInstance()).payload())
                        .toList();
        assertThat(done)
                .extracting(TrainingCompleted::getComparedMethod)
                .containsExactlyInAnyOrder("full", "lora", "prefix");
        for (TrainingCompleted run : done) {
            String method = run.getComparedMethod();
            assertThat(run.getJobId()).isEqualTo("ok-compare-1");
            assertThat(run.getRunId()).isEqualTo("ok-compare-1." + method + "-a1");
            assertThat(run.getComparedMethodsList()).containsExactly("full", "lora", "prefix");
            assertThat(run.getModel().getUri())
                    .isEqualTo(
                            "s3://tuneline-test/runs/ok-compare-1."
                                    + method
                                    + "/model/model.safetensors");
            // The job each run trained: its own method, everything else as submitted.
            assertThat(run.getJob().getCompareMethodsCount()).isZero();
            assertThat(io.tuneline.common.job.ComparedMethods.kindName(run.getJob().getMethod()))
                    .isEqualTo(method);
            assertThat(run.getJob().getHyperparameters())
                    .isEqualTo(prepared.getJob().getHyperparameters());
            assertThat(run.getDataset().getTrain()).isEqualTo(prepared.getTrain());
        }
        assertThat(statuses("ok-compare-1"))
                .extracting(JobStatusChanged::getMessage)
                .contains(
                        "queued for training: 3 methods compared (full, lora, prefix) on the same"
                                + " data, splits, seed and steps");

        // Redelivered: no method is trained a second time.
        publish(Topics.DATASETS_PREPARED, prepared);
        publishPrepared("ok-after-compare-1");
        awaitEvent(
                Topics.TRAINING_COMPLETED, "ok-after-compare-1", "tuneline.v1.TrainingCompleted");
        assertThat(
                        completedOf(
                                kafka.readUntil(
                                        Topics.TRAINING_COMPLETED,
                                        rs -> true,
                                        Duration.ofSeconds(2)),
                                "ok-compare-1"))
                .hasSize(3);
    }

    @Test
    void aMethodThatFailsFailsTheComparisonNamingItAndStopsTheOtherMethods() {
        publish(Topics.DATASETS_PREPARED, comparison("cmpfail-1"));

        JobFailed failed =
                CODEC.decode(
                                awaitEvent(
                                        Topics.JOBS_STATUS, "cmpfail-1", "tuneline.v1.JobFailed"),
                                JobFailed.getDefaultInstance())
                        .payload();
        assertThat(failed.getMessage()).startsWith("lora: training failed: ");
        RunStore runs = new RunStore(store);
        await().atMost(WAIT)
                .untilAsserted(
                        () -> {
                            assertThat(runs.record("cmpfail-1.full").orElseThrow().status())
                                    .isEqualTo(RunStatus.CANCELLED);
                            assertThat(runs.record("cmpfail-1.prefix").orElseThrow().status())
                                    .isEqualTo(RunStatus.CANCELLED);
                        });
        // The job reads FAILED: stopping the others says nothing that would overwrite it.
        assertThat(statuses("cmpfail-1"))
                .extracting(JobStatusChanged::getStatus)
                .doesNotContain(JobStatus.JOB_STATUS_CANCELLED);
    }

    @Test
    void cancellingAComparisonStopsEveryMethodRunningOrQueued() {
        publish(Topics.DATASETS_PREPARED, comparison("hang-compare-1"));
        // Two slots: full and lora run, prefix waits for one.
        await().atMost(WAIT)
                .until(
                        () ->
                                statuses("hang-compare-1").stream()
                                                .filter(
                                                        s ->
                                                                s.getMessage()
                                                                        .matches(
                                                                                "(full|lora):"
                                                                                        + " training,"
                                                                                        + " attempt 1.*"))
                                                .count()
                                        == 2);

        publish(
                Topics.JOBS_CONTROL,
                CancelJob.newBuilder().setJobId("hang-compare-1").setReason("enough").build());

        RunStore runs = new RunStore(store);
        await().atMost(WAIT)
                .untilAsserted(
                        () -> {
                            for (String method : List.of("full", "lora", "prefix")) {
                                assertThat(
                                                runs.record("hang-compare-1." + method)
                                                        .orElseThrow()
                                                        .status())
                                        .as(method)
                                        .isEqualTo(RunStatus.CANCELLED);
                            }
                        });
        assertThat(statuses("hang-compare-1"))
                .filteredOn(s -> s.getStatus() == JobStatus.JOB_STATUS_CANCELLED)
                .extracting(JobStatusChanged::getMessage)
                .contains(
                        "lora: cancelled: enough; the run's files are kept in"
                                + " runs/hang-compare-1.lora/");
    }

    private static List<ConsumerRecord<String, byte[]>> completedOf(
            List<ConsumerRecord<String, byte[]>> records, String jobId) {
        return records.stream().filter(r -> jobId.equals(r.key())).toList();
    }

    private static DatasetPrepared comparison(String jobId) {
        DatasetPrepared plain = prepared(jobId);
        return plain.toBuilder()
                .setJob(
                        plain.getJob().toBuilder()
                                .setHyperparameters(
                                        io.tuneline.proto.v1.Hyperparameters.newBuilder()
                                                .setSeed(7)
                                                .setMaxSteps(3))
                                .addCompareMethods(
                                        io.tuneline.proto.v1.MethodSpec.newBuilder()
                                                .setFull(
                                                        io.tuneline.proto.v1.FullFineTuning
                                                                .getDefaultInstance()))
                                .addCompareMethods(
                                        io.tuneline.proto.v1.MethodSpec.newBuilder()
                                                .setLora(
                                                        io.tuneline.proto.v1.LoraParams
                                                                .newBuilder()))
                                .addCompareMethods(
                                        io.tuneline.proto.v1.MethodSpec.newBuilder()
                                                .setPrefix(
                                                        io.tuneline.proto.v1.PrefixTuningParams
                                                                .newBuilder())))
                .build();
    }

    private void publishPrepared(String jobId) {
        publish(Topics.DATASETS_PREPARED, prepared(jobId));
    }

    private static DatasetPrepared prepared(String jobId) {
        return DatasetPrepared.newBuilder()
                .setJobId(jobId)
                .setJob(
                        JobRequested.newBuilder()
                                .setJobId(jobId)
                                .setBaseModel(BaseModel.newBuilder().setRef("minilm-l6"))
                                .setTask(Task.TASK_SEQUENCE_CLASSIFICATION))
                .setTrain(
                        ArtifactRef.newBuilder()
                                .setUri(
                                        "s3://tuneline-test/datasets/"
                                                + jobId
                                                + "/prepared/train.jsonl"))
                .build();
    }

    private void publish(String topic, com.google.protobuf.Message event) {
        var out = CODEC.encode(event);
        kafka.publish(topic, out.key(), out.value(), out.headers());
    }

    private List<JobStatusChanged> statuses(String jobId) {
        // Until the job's first record is in: one short poll of a loaded broker can return nothing.
        return kafka
                .readUntil(
                        Topics.JOBS_STATUS,
                        rs -> rs.stream().anyMatch(r -> jobId.equals(r.key())),
                        Duration.ofSeconds(15))
                .stream()
                .filter(r -> jobId.equals(r.key()))
                .filter(
                        r ->
                                "tuneline.v1.JobStatusChanged"
                                        .equals(KafkaTestClient.header(r, CloudEventHeaders.TYPE)))
                .map(r -> CODEC.decode(r, JobStatusChanged.getDefaultInstance()).payload())
                .toList();
    }

    private ConsumerRecord<String, byte[]> awaitEvent(String topic, String jobId, String type) {
        return awaitEvent(topic, jobId, type, null);
    }

    private ConsumerRecord<String, byte[]> awaitEvent(
            String topic, String jobId, String type, JobStatus status) {
        java.util.function.Predicate<ConsumerRecord<String, byte[]>> match =
                r ->
                        jobId.equals(r.key())
                                && type.equals(KafkaTestClient.header(r, CloudEventHeaders.TYPE))
                                && (status == null
                                        || new String(r.value(), StandardCharsets.UTF_8)
                                                .contains(status.name()));
        return kafka.readUntil(topic, rs -> rs.stream().anyMatch(match), WAIT).stream()
                .filter(match)
                .findFirst()
                .orElseThrow();
    }
}
