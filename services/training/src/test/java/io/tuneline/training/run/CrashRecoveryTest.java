package io.tuneline.training.run;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

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
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.Hyperparameters;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.LoraParams;
import io.tuneline.proto.v1.MethodSpec;
import io.tuneline.proto.v1.Task;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.proto.v1.TrainingProgress;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.KafkaTestClient;
import io.tuneline.testing.S3ProxyResource;
import io.tuneline.training.TrainingFixtures;
import io.tuneline.training.worker.TrainingWorker;
import jakarta.inject.Inject;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.Test;

/** A worker killed mid-run: the next attempt resumes from the last checkpoint in the store. */
@QuarkusTest
@TestProfile(CrashRecoveryTest.RealWorker.class)
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class CrashRecoveryTest {
    private static final Duration WAIT = Duration.ofMinutes(4);
    private static final EventCodec CODEC = new EventCodec("/test");
    private static final String JOB = "crash-resume-1";

    /** The real training worker (the engine on MiniLM) as a child process; two attempts. */
    public static class RealWorker implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of(
                    "tuneline.training.local.worker-command",
                    TrainingFixtures.workerCommand(
                            TrainingWorker.class,
                            "-Xmx2g",
                            "-Dai.djl.offline=true",
                            "-DENGINE_CACHE_DIR=" + System.getProperty("ENGINE_CACHE_DIR")),
                    "tuneline.training.max-attempts",
                    "2");
        }
    }

    @Inject ArtifactStore store;

    @Test
    void aKilledWorkersRunResumesFromItsLastCheckpointAndFinishes() throws Exception {
        try (KafkaTestClient kafka = KafkaTestClient.forApplication()) {
            var out = CODEC.encode(prepared());
            kafka.publish(Topics.DATASETS_PREPARED, out.key(), out.value(), out.headers());

            // Kill the worker (SIGKILL: no chance to clean up) once a checkpoint is stored.
            var pointer = store.uri("runs/" + JOB + "/checkpoints/latest.json");
            await().atMost(WAIT)
                    .pollInterval(Duration.ofMillis(200))
                    .until(() -> store.exists(pointer));
            long checkpointStep;
            try (InputStream in = store.get(pointer)) {
                checkpointStep =
                        new com.fasterxml.jackson.databind.ObjectMapper()
                                .readTree(in)
                                .path("step")
                                .asLong();
            }
            Optional<ProcessHandle> worker =
                    ProcessHandle.current()
                            .descendants()
                            .filter(CrashRecoveryTest::isThisJobsWorker)
                            .findFirst();
            assertThat(worker).as("the running worker process").isPresent();
            worker.get().destroyForcibly();

            List<ConsumerRecord<String, byte[]>> completed =
                    kafka.readUntil(
                            Topics.TRAINING_COMPLETED,
                            rs -> rs.stream().anyMatch(r -> JOB.equals(r.key())),
                            WAIT);
            TrainingCompleted result =
                    CODEC.decode(
                                    completed.stream()
                                            .filter(r -> JOB.equals(r.key()))
                                            .findFirst()
                                            .orElseThrow(),
                                    TrainingCompleted.getDefaultInstance())
                            .payload();
            assertThat(result.getRunId()).isEqualTo(JOB + "-a2");
            // Every planned step is done once: none is lost, skipped or done twice across the
            // restart.
            long applied = result.getSteps();
            assertThat(applied).isEqualTo(40);
            assertThat(result.getSkippedSteps()).isZero();

            // Until the second attempt's last step is in: a short poll may return only part.
            java.util.function.Function<
                            List<ConsumerRecord<String, byte[]>>, List<TrainingProgress>>
                    secondAttemptOf =
                            rs ->
                                    rs.stream()
                                            .filter(r -> JOB.equals(r.key()))
                                            .filter(
                                                    r ->
                                                            "tuneline.v1.TrainingProgress"
                                                                    .equals(
                                                                            KafkaTestClient.header(
                                                                                    r,
                                                                                    CloudEventHeaders
                                                                                            .TYPE)))
                                            .map(
                                                    r ->
                                                            CODEC.decode(
                                                                            r,
                                                                            TrainingProgress
                                                                                    .getDefaultInstance())
                                                                    .payload())
                                            .filter(p -> p.getRunId().endsWith("-a2"))
                                            .toList();
            List<TrainingProgress> secondAttempt =
                    secondAttemptOf.apply(
                            kafka.readUntil(
                                    Topics.TRAINING_PROGRESS,
                                    rs ->
                                            secondAttemptOf.apply(rs).stream()
                                                    .anyMatch(p -> p.getStep() == applied),
                                    Duration.ofSeconds(30)));
            assertThat(secondAttempt).isNotEmpty();
            // The loss curve continues where the checkpoint left it rather than from step 1.
            assertThat(secondAttempt.get(0).getStep()).isGreaterThan(checkpointStep);
            assertThat(secondAttempt.get(secondAttempt.size() - 1).getStep()).isEqualTo(applied);
            // One loss curve: the first attempt's steps up to the checkpoint, then the second's.
            assertThat(loggedSteps(result))
                    .isEqualTo(
                            java.util.stream.LongStream.rangeClosed(1, applied).boxed().toList());
            assertContinuesTheUninterruptedRun(kafka, result);
        }
    }

    /**
     * The resumed run's loss at every step equals that of the same job trained without
     * interruption: the checkpoint carried the weights, the optimizer's moments, the data order and
     * the dropout seeds, not only the step count.
     */
    private void assertContinuesTheUninterruptedRun(KafkaTestClient kafka, TrainingCompleted result)
            throws java.io.IOException {
        List<Double> straight = uninterruptedLosses(kafka);
        List<Double> resumed = loggedLosses(result);
        assertThat(resumed).hasSameSizeAs(straight);
        for (int i = 0; i < straight.size(); i++) {
            assertThat(resumed.get(i))
                    .as("loss at step %d, resumed vs uninterrupted", i + 1)
                    .isCloseTo(straight.get(i), org.assertj.core.api.Assertions.within(1e-5));
        }
    }

    private static List<Double> uninterrupted;

    /** The loss curve of the same job trained in one attempt (run once for both tests). */
    private synchronized List<Double> uninterruptedLosses(KafkaTestClient kafka)
            throws java.io.IOException {
        if (uninterrupted == null) {
            String job = "straight-1";
            var out = CODEC.encode(prepared(job, 1000));
            kafka.publish(Topics.DATASETS_PREPARED, out.key(), out.value(), out.headers());
            TrainingCompleted done =
                    CODEC.decode(
                                    kafka
                                            .readUntil(
                                                    Topics.TRAINING_COMPLETED,
                                                    rs ->
                                                            rs.stream()
                                                                    .anyMatch(
                                                                            r ->
                                                                                    job.equals(
                                                                                            r
                                                                                                    .key())),
                                                    WAIT)
                                            .stream()
                                            .filter(r -> job.equals(r.key()))
                                            .findFirst()
                                            .orElseThrow(),
                                    TrainingCompleted.getDefaultInstance())
                            .payload();
            assertThat(done.getRunId()).isEqualTo(job + "-a1");
            uninterrupted = loggedLosses(done);
        }
        return uninterrupted;
    }

    @Test
    void aCancelledWorkerStoresACheckpointBeforeItStops() throws Exception {
        String job = "cancel-checkpoint-1";
        // Long enough (1000 steps) that the cancellation, which goes through Kafka and the
        // controller, always lands mid-run: 40 steps of this tiny job can end before it does.
        DatasetPrepared prepared = prepared(job, 10_000, 250);
        try (KafkaTestClient kafka = KafkaTestClient.forApplication()) {
            var out = CODEC.encode(prepared);
            kafka.publish(Topics.DATASETS_PREPARED, out.key(), out.value(), out.headers());
            kafka.readUntil(
                    Topics.TRAINING_PROGRESS,
                    rs -> rs.stream().anyMatch(r -> job.equals(r.key())),
                    WAIT);

            var cancel =
                    CODEC.encode(
                            io.tuneline.proto.v1.CancelJob.newBuilder()
                                    .setJobId(job)
                                    .setReason("test")
                                    .build());
            kafka.publish(Topics.JOBS_CONTROL, cancel.key(), cancel.value(), cancel.headers());
            kafka.readUntil(
                    Topics.JOBS_STATUS,
                    rs ->
                            rs.stream()
                                    .anyMatch(
                                            r ->
                                                    job.equals(r.key())
                                                            && new String(
                                                                            r.value(),
                                                                            StandardCharsets.UTF_8)
                                                                    .contains(
                                                                            "JOB_STATUS_CANCELLED")),
                    WAIT);

            // No periodic checkpoint was due (every 10,000 steps): this one is the stop's own.
            var pointer = store.uri("runs/" + job + "/checkpoints/latest.json");
            assertThat(store.exists(pointer)).as("a checkpoint stored on SIGTERM").isTrue();
            try (InputStream in = store.get(pointer)) {
                long step =
                        new com.fasterxml.jackson.databind.ObjectMapper()
                                .readTree(in)
                                .path("step")
                                .asLong();
                assertThat(step).isBetween(1L, 999L);
            }
        }
    }

    /**
     * A preemption: SIGTERM from outside (a spot node reclaimed, a pod evicted), not a
     * cancellation. The worker stores a checkpoint after its step and exits 143; the controller
     * resumes the run from that checkpoint without counting a failed attempt, and every planned
     * step is done exactly once across the stop.
     */
    @Test
    void aWorkerStoppedBySigtermResumesFromItsOwnCheckpointAsAPreemption() throws Exception {
        String job = "preempt-real-1";
        try (KafkaTestClient kafka = KafkaTestClient.forApplication()) {
            var out = CODEC.encode(prepared(job, 1000));
            kafka.publish(Topics.DATASETS_PREPARED, out.key(), out.value(), out.headers());
            kafka.readUntil(
                    Topics.TRAINING_PROGRESS,
                    rs -> rs.stream().anyMatch(r -> job.equals(r.key())),
                    WAIT);
            ProcessHandle worker =
                    ProcessHandle.current()
                            .descendants()
                            .filter(p -> isWorkerOf(p, job))
                            .findFirst()
                            .orElseThrow();
            worker.destroy();

            List<ConsumerRecord<String, byte[]>> completed =
                    kafka.readUntil(
                            Topics.TRAINING_COMPLETED,
                            rs -> rs.stream().anyMatch(r -> job.equals(r.key())),
                            WAIT);
            TrainingCompleted result =
                    CODEC.decode(
                                    completed.stream()
                                            .filter(r -> job.equals(r.key()))
                                            .findFirst()
                                            .orElseThrow(),
                                    TrainingCompleted.getDefaultInstance())
                            .payload();
            assertThat(result.getRunId()).isEqualTo(job + "-a2");
            assertThat(result.getSteps()).isEqualTo(40);
            assertThat(result.getSkippedSteps()).isZero();
            // Read until the status is in: one short poll of a busy broker may return nothing.
            java.util.function.Predicate<String> preempted =
                    m ->
                            m.contains("attempt 1 preempted (the worker process was stopped")
                                    && m.contains("not counted as a failure");
            List<String> statuses =
                    kafka
                            .readUntil(
                                    Topics.JOBS_STATUS,
                                    rs ->
                                            rs.stream()
                                                    .filter(r -> job.equals(r.key()))
                                                    .anyMatch(
                                                            r ->
                                                                    preempted.test(
                                                                            new String(
                                                                                    r.value(),
                                                                                    StandardCharsets
                                                                                            .UTF_8))),
                                    Duration.ofSeconds(30))
                            .stream()
                            .filter(r -> job.equals(r.key()))
                            .map(r -> new String(r.value(), StandardCharsets.UTF_8))
                            .toList();
            assertThat(statuses).anyMatch(preempted);
            // No periodic checkpoint was due (every 1000 steps): attempt 2 resumed from the stop's
            // own, so the loss curve has every step once, the first attempt's then the second's.
            assertThat(loggedSteps(result))
                    .isEqualTo(java.util.stream.LongStream.rangeClosed(1, 40).boxed().toList());
            assertContinuesTheUninterruptedRun(kafka, result);
        }
    }

    /** The steps of the run's metrics log (one JSON line per step), in order. */
    private List<Long> loggedSteps(TrainingCompleted result) throws java.io.IOException {
        try (InputStream in = store.get(result.getMetricsLog())) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8)
                    .lines()
                    .map(l -> Long.parseLong(l.replaceAll("^\\{\"step\":(\\d+),.*", "$1")))
                    .toList();
        }
    }

    /** The losses of the run's metrics log, step by step. */
    private List<Double> loggedLosses(TrainingCompleted result) throws java.io.IOException {
        var json = new com.fasterxml.jackson.databind.ObjectMapper();
        try (InputStream in = store.get(result.getMetricsLog())) {
            List<Double> losses = new java.util.ArrayList<>();
            for (String line :
                    new String(in.readAllBytes(), StandardCharsets.UTF_8).lines().toList()) {
                losses.add(json.readTree(line).path("loss").asDouble());
            }
            return losses;
        }
    }

    /**
     * The worker is the child whose environment names this job (its command line is no help: the
     * JDK reads only its first page, and the class path fills it).
     */
    private static boolean isThisJobsWorker(ProcessHandle p) {
        return isWorkerOf(p, JOB);
    }

    private static boolean isWorkerOf(ProcessHandle p, String job) {
        return environment(p).contains("TUNELINE_JOB_ID=" + job);
    }

    private static List<String> environment(ProcessHandle p) {
        try {
            byte[] raw =
                    java.nio.file.Files.readAllBytes(
                            java.nio.file.Path.of("/proc/" + p.pid() + "/environ"));
            return List.of(new String(raw, StandardCharsets.UTF_8).split("\0"));
        } catch (java.io.IOException gone) {
            return List.of();
        }
    }

    private DatasetPrepared prepared() {
        return prepared(JOB, 5);
    }

    private DatasetPrepared prepared(String jobId, long checkpointEvery) {
        return prepared(jobId, checkpointEvery, 10);
    }

    private DatasetPrepared prepared(String jobId, long checkpointEvery, int epochs) {
        ArtifactRef train =
                store.put(
                        store.uri("datasets/" + jobId + "/prepared/train.jsonl"),
                        TrainingFixtures.tinySentimentJsonl(),
                        "application/jsonl");
        return DatasetPrepared.newBuilder()
                .setJobId(jobId)
                .setJob(
                        JobRequested.newBuilder()
                                .setJobId(jobId)
                                .setBaseModel(BaseModel.newBuilder().setRef("minilm-l6"))
                                .setTask(Task.TASK_SEQUENCE_CLASSIFICATION)
                                .setMethod(
                                        MethodSpec.newBuilder()
                                                .setLora(LoraParams.newBuilder().setRank(4)))
                                .setHyperparameters(
                                        Hyperparameters.newBuilder()
                                                .setEpochs(epochs)
                                                .setBatchSize(4)
                                                .setLearningRate(1e-3)
                                                .setMaxSeqLength(16)
                                                .setCheckpointEverySteps(checkpointEvery)))
                .setTrain(train)
                .addLabels("neg")
                .addLabels("pos")
                .build();
    }
}
