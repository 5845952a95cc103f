package io.tuneline.registry;

import com.google.protobuf.Message;
import com.google.protobuf.util.Timestamps;
import io.tuneline.common.event.ContentType;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.event.IncomingEvent;
import io.tuneline.common.event.OutgoingEvent;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.BaseModel;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.EvaluationCompleted;
import io.tuneline.proto.v1.GateResult;
import io.tuneline.proto.v1.Hyperparameters;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.LoraParams;
import io.tuneline.proto.v1.MethodSpec;
import io.tuneline.proto.v1.MetricValue;
import io.tuneline.proto.v1.RegistrationSpec;
import io.tuneline.proto.v1.SplitCounts;
import io.tuneline.proto.v1.Task;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.testing.KafkaTestClient;
import java.time.Instant;
import java.util.List;
import java.util.UUID;

/** Realistic pipeline events for registry tests. */
public final class Fixtures {
    public static final EventCodec CODEC = new EventCodec("/test");
    public static final String TOKEN = "tuneline-local-token";

    private Fixtures() {}

    public static JobRequested job(
            String jobId, String model, double learningRate, String... aliases) {
        return JobRequested.newBuilder()
                .setJobId(jobId)
                .setDisplayName("sentiment " + jobId)
                .setBaseModel(BaseModel.newBuilder().setRef("minilm-l6"))
                .setTask(Task.TASK_SEQUENCE_CLASSIFICATION)
                .setMethod(
                        MethodSpec.newBuilder()
                                .setLora(LoraParams.newBuilder().setRank(8).setAlpha(16)))
                .setHyperparameters(
                        Hyperparameters.newBuilder()
                                .setEpochs(3)
                                .setBatchSize(8)
                                .setLearningRate(learningRate))
                .setDataset(
                        DatasetSpec.newBuilder()
                                .setUri("s3://tuneline-test/uploads/sentiment.jsonl")
                                .addLabels("neg")
                                .addLabels("pos"))
                .setRegistration(
                        RegistrationSpec.newBuilder()
                                .setModelName(model)
                                .setDescription("sentiment classifier")
                                .addAllAliases(List.of(aliases)))
                .setRequestedBy("tester")
                .build();
    }

    /** An evaluation of {@code job} with macro F1 {@code f1}, its files under {@code files}. */
    public static EvaluationCompleted evaluation(
            JobRequested job, double f1, boolean gatePassed, List<ArtifactRef> files) {
        String jobId = job.getJobId();
        DatasetPrepared dataset =
                DatasetPrepared.newBuilder()
                        .setJobId(jobId)
                        .setRaw(
                                ref(
                                        "s3://tuneline-test/datasets/" + jobId + "/raw.jsonl",
                                        "a".repeat(64)))
                        .setManifest(
                                ref(
                                        "s3://tuneline-test/datasets/" + jobId + "/manifest.json",
                                        "b".repeat(64)))
                        .setCounts(
                                SplitCounts.newBuilder().setTrain(48).setValidation(8).setTest(16))
                        .build();
        TrainingCompleted training =
                TrainingCompleted.newBuilder()
                        .setJobId(jobId)
                        .setJob(job)
                        .setDataset(dataset)
                        .setModel(ref("s3://tuneline-test/models/" + jobId + "/", "c".repeat(64)))
                        .addAllModelFiles(files)
                        .setSteps(36)
                        .build();
        return EvaluationCompleted.newBuilder()
                .setJobId(jobId)
                .setTraining(training)
                .putTunedMetrics("macro_f1", metric(f1))
                .putTunedMetrics("accuracy", metric(f1))
                .putBaseMetrics("macro_f1", metric(0.5))
                .setPrimaryMetric("macro_f1")
                .setGate(
                        GateResult.newBuilder()
                                .setPassed(gatePassed)
                                .addAllReasons(
                                        gatePassed
                                                ? List.of()
                                                : List.of("macro_f1 0.40 < min 0.80")))
                .setReportHtml(
                        ref(
                                "s3://tuneline-test/reports/" + jobId + "/evaluation.html",
                                "d".repeat(64)))
                .setTestExamples(16)
                .setEvaluatedAt(Timestamps.now())
                .build();
    }

    public static List<ArtifactRef> defaultFiles(String jobId) {
        return List.of(
                ref("s3://tuneline-test/models/" + jobId + "/model.safetensors", "e".repeat(64)));
    }

    public static ArtifactRef ref(String uri, String sha256) {
        return ArtifactRef.newBuilder().setUri(uri).setSha256(sha256).setSizeBytes(1234).build();
    }

    private static MetricValue metric(double v) {
        return MetricValue.newBuilder()
                .setValue(v)
                .setCiLower(v - 0.05)
                .setCiUpper(Math.min(1, v + 0.05))
                .build();
    }

    /** Publishes an event with CloudEvents headers, as a service would. */
    public static void publish(KafkaTestClient kafka, String topic, Message payload) {
        OutgoingEvent e = CODEC.encode(payload, ContentType.JSON);
        kafka.publish(topic, e.key(), e.value(), e.headers());
    }

    /** An event as the consumer decodes it, with a fresh id unless one is given. */
    public static IncomingEvent<Message> incoming(Message payload, Instant at, String id) {
        return new IncomingEvent<>(
                id == null ? UUID.randomUUID().toString() : id,
                payload.getDescriptorForType().getFullName(),
                "/test",
                EventCodec.jobIdOf(payload),
                at,
                ContentType.JSON,
                payload,
                "finetune.test",
                0,
                0);
    }
}
