package io.tuneline.ingestion.intake;

import com.google.protobuf.Struct;
import com.google.protobuf.Timestamp;
import com.google.protobuf.Value;
import io.tuneline.proto.v1.AttackKind;
import io.tuneline.proto.v1.BadRecordAction;
import io.tuneline.proto.v1.BadRecordPolicy;
import io.tuneline.proto.v1.BaseModel;
import io.tuneline.proto.v1.DatasetFormat;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.EmbeddingAttack;
import io.tuneline.proto.v1.EvaluationSpec;
import io.tuneline.proto.v1.FieldMapping;
import io.tuneline.proto.v1.GateReference;
import io.tuneline.proto.v1.Hyperparameters;
import io.tuneline.proto.v1.InlineDataset;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.LoraParams;
import io.tuneline.proto.v1.LrSchedule;
import io.tuneline.proto.v1.MethodSpec;
import io.tuneline.proto.v1.Optimizer;
import io.tuneline.proto.v1.Perturbation;
import io.tuneline.proto.v1.PerturbationKind;
import io.tuneline.proto.v1.QualityGate;
import io.tuneline.proto.v1.RegistrationSpec;
import io.tuneline.proto.v1.Resources;
import io.tuneline.proto.v1.SplitSpec;
import io.tuneline.proto.v1.Task;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.time.Instant;

/** The job of {@code jobs/full-job.json}, built field by field in Java. */
final class TestJobs {
    private TestJobs() {}

    static byte[] fullJobJson() {
        try (InputStream in = TestJobs.class.getResourceAsStream("/jobs/full-job.json")) {
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static JobRequested fullJob() {
        return JobRequested.newBuilder()
                .setJobId("sentiment-lora-001")
                .setDisplayName("Sentiment, LoRA on MiniLM")
                .setBaseModel(BaseModel.newBuilder().setRef("minilm-l6").setSha256("ab12"))
                .setTask(Task.TASK_SEQUENCE_CLASSIFICATION)
                .setMethod(
                        MethodSpec.newBuilder()
                                .setLora(
                                        LoraParams.newBuilder()
                                                .setRank(8)
                                                .setAlpha(16)
                                                .setDropout(0.05)
                                                .addTargetModules("query")
                                                .addTargetModules("value")))
                .setHyperparameters(
                        Hyperparameters.newBuilder()
                                .setEpochs(3)
                                .setMaxSteps(500)
                                .setBatchSize(16)
                                .setGradientAccumulationSteps(2)
                                .setLearningRate(0.0002)
                                .setWeightDecay(0.01)
                                .setWarmupRatio(0.06)
                                .setLrSchedule(LrSchedule.LR_SCHEDULE_COSINE)
                                .setOptimizer(Optimizer.OPTIMIZER_ADAMW)
                                .setMaxSeqLength(128)
                                .setSeed(7)
                                .setMaxGradNorm(1.0)
                                .setEvalEverySteps(50)
                                .setCheckpointEverySteps(100)
                                .setEarlyStoppingPatience(3))
                .setDataset(
                        DatasetSpec.newBuilder()
                                .setInline(
                                        InlineDataset.newBuilder()
                                                .addRecords(record("great film", "pos"))
                                                .addRecords(record("dull", "neg")))
                                .setFormat(DatasetFormat.DATASET_FORMAT_JSONL)
                                .setFields(
                                        FieldMapping.newBuilder().setText("text").setLabel("label"))
                                .addLabels("neg")
                                .addLabels("pos")
                                .setBadRecords(
                                        BadRecordPolicy.newBuilder()
                                                .setAction(BadRecordAction.BAD_RECORD_ACTION_SKIP)
                                                .setMaxBadFraction(0.02)))
                .setSplit(
                        SplitSpec.newBuilder()
                                .setTrain(0.8)
                                .setValidation(0.1)
                                .setTest(0.1)
                                .setSeed(42))
                .setEvaluation(
                        EvaluationSpec.newBuilder()
                                .setPrimaryMetric("macro_f1")
                                .setBootstrapSamples(500)
                                .addPerturbations(
                                        Perturbation.newBuilder()
                                                .setKind(
                                                        PerturbationKind
                                                                .PERTURBATION_KIND_CHAR_SWAP)
                                                .setRate(0.05)
                                                .setSeed(1))
                                .addAttacks(
                                        EmbeddingAttack.newBuilder()
                                                .setKind(AttackKind.ATTACK_KIND_PGD)
                                                .setEpsilon(0.01)
                                                .setSteps(10))
                                .setGate(
                                        QualityGate.newBuilder()
                                                .putMinMetrics("macro_f1", 0.8)
                                                .putMaxRegression("accuracy", 0.01)
                                                .setReference(
                                                        GateReference.GATE_REFERENCE_PRODUCTION)))
                .setRegistration(
                        RegistrationSpec.newBuilder()
                                .setModelName("sentiment")
                                .setDescription("first try")
                                .putTags("team", "nlp")
                                .addAliases("candidate"))
                .setResources(
                        Resources.newBuilder()
                                .setGpus(1)
                                .setCpu("4")
                                .setMemory("16Gi")
                                .setMaxRuntimeSeconds(3600)
                                .putNodeSelector("gpu", "a100"))
                .putLabels("ticket", "ML-42")
                .setRequestedBy("alice")
                .setRequestedAt(
                        Timestamp.newBuilder()
                                .setSeconds(Instant.parse("2026-11-24T01:00:00Z").getEpochSecond()))
                .build();
    }

    /** A minimal valid job with the given id. */
    static JobRequested minimalJob(String jobId) {
        return JobRequested.newBuilder()
                .setJobId(jobId)
                .setBaseModel(BaseModel.newBuilder().setRef("minilm-l6"))
                .setTask(Task.TASK_SEQUENCE_CLASSIFICATION)
                .setDataset(DatasetSpec.newBuilder().setUri("s3://tuneline/uploads/reviews.jsonl"))
                .build();
    }

    private static Struct record(String text, String label) {
        return Struct.newBuilder()
                .putFields("text", Value.newBuilder().setStringValue(text).build())
                .putFields("label", Value.newBuilder().setStringValue(label).build())
                .build();
    }
}
