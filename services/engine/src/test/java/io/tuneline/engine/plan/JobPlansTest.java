package io.tuneline.engine.plan;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.TargetMatcher;
import io.tuneline.proto.v1.BaseModel;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.Hyperparameters;
import io.tuneline.proto.v1.InlineDataset;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.LoraParams;
import io.tuneline.proto.v1.MethodSpec;
import io.tuneline.proto.v1.PTuningParams;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A job as the run the estimate plans, and a base model's shape from config.json alone. */
class JobPlansTest {
    @TempDir Path tmp;

    @Test
    void aStoredBaseModelIsPlannedFromItsConfigJsonAlone() throws Exception {
        List<String> asked = new ArrayList<>();
        ModelShape shape =
                ModelCatalog.shape(
                        "s3://models/tiny/",
                        (uri, files, into) -> {
                            asked.addAll(files);
                            Files.writeString(into.resolve("config.json"), EstimatorTest.TINYLLAMA);
                        },
                        tmp,
                        2,
                        Optional.empty());
        assertThat(asked).containsExactly("config.json");
        assertThat(shape).isInstanceOf(ModelShape.Llama.class);
        assertThat(shape.modelType()).isEqualTo("llama");
    }

    @Test
    void theBuiltInMiniLmHasNoPoolerAndADirectoryItsOwn() throws Exception {
        ModelShape builtIn = ModelCatalog.shape("minilm-l6", null, tmp, 3, Optional.empty());
        assertThat(((ModelShape.Encoder) builtIn).pooler()).isFalse();
        assertThat(((ModelShape.Encoder) builtIn).labels()).isEqualTo(3);
        Path dir = Files.createDirectories(tmp.resolve("bert"));
        Files.writeString(dir.resolve("config.json"), EstimatorTest.BERT_BASE);
        ModelShape local = ModelCatalog.shape(dir.toString(), null, tmp, 2, Optional.empty());
        assertThat(((ModelShape.Encoder) local).pooler()).isTrue();
    }

    @Test
    void aJobGetsTheWorkersDefaultsAndItsOwnSettings() {
        JobRequested job =
                JobRequested.newBuilder()
                        .setBaseModel(BaseModel.newBuilder().setRef("minilm-l6"))
                        .setMethod(MethodSpec.newBuilder().setLora(LoraParams.newBuilder()))
                        .setDataset(
                                DatasetSpec.newBuilder()
                                        .setInline(records(10, "pos", "neg", "meh")))
                        .build();
        TrainingPlan plan = JobPlans.of(job, EstimatorTest.minilm(false, JobPlans.labels(job)));
        assertThat(plan.microBatch()).isEqualTo(16);
        assertThat(plan.sequenceLength()).isEqualTo(128);
        assertThat(plan.accumulation()).isEqualTo(1);
        // 10 records, 80% for training: 8 in one batch of 16, 3 epochs.
        assertThat(plan.totalSteps()).hasValue(3);
        assertThat(JobPlans.labels(job)).isEqualTo(3);
        FineTuningMethod.Lora lora = (FineTuningMethod.Lora) plan.method();
        assertThat(lora.rank()).isEqualTo(8);
        assertThat(lora.targets()).isEqualTo(TargetMatcher.anyOf(List.of("query", "value")));

        JobRequested sized =
                job.toBuilder()
                        .setMethod(
                                MethodSpec.newBuilder()
                                        .setPTuning(
                                                PTuningParams.newBuilder().setNumVirtualTokens(7)))
                        .setHyperparameters(
                                Hyperparameters.newBuilder()
                                        .setBatchSize(4)
                                        .setGradientAccumulationSteps(2)
                                        .setMaxSeqLength(64)
                                        .setMaxSteps(100))
                        .build();
        TrainingPlan p = JobPlans.of(sized, EstimatorTest.minilm(false, 3));
        assertThat(p.effectiveBatch()).isEqualTo(8);
        assertThat(p.totalSteps()).hasValue(100);
        assertThat(((FineTuningMethod.PTuning) p.method()).virtualTokens()).isEqualTo(7);

        // The worker's defaults for precision (auto) and checkpointing (on for QLoRA only).
        assertThat(plan.precision()).isEqualTo(TrainingPlan.Precision.AUTO);
        assertThat(plan.activationCheckpointing()).isEmpty();
        assertThat(plan.checkpointingRequested()).isFalse();
        JobRequested qlora =
                job.toBuilder()
                        .setMethod(
                                MethodSpec.newBuilder()
                                        .setQlora(io.tuneline.proto.v1.QloraParams.newBuilder()))
                        .build();
        assertThat(JobPlans.of(qlora, EstimatorTest.minilm(false, 3)).checkpointingRequested())
                .isTrue();
        JobRequested set =
                qlora.toBuilder()
                        .setHyperparameters(
                                Hyperparameters.newBuilder()
                                        .setPrecision("BF16")
                                        .setActivationCheckpointing(false))
                        .build();
        TrainingPlan asSet = JobPlans.of(set, EstimatorTest.minilm(false, 3));
        assertThat(asSet.precision()).isEqualTo(TrainingPlan.Precision.BF16);
        assertThat(asSet.checkpointingRequested()).isFalse();

        JobRequested fitted = JobPlans.withBatch(sized, p.withBatch(1, 8));
        assertThat(fitted.getHyperparameters().getBatchSize()).isEqualTo(1);
        assertThat(fitted.getHyperparameters().getGradientAccumulationSteps()).isEqualTo(8);
        assertThat(fitted.getHyperparameters().getMaxSteps()).isEqualTo(100);
    }

    private static InlineDataset records(int n, String... labels) {
        InlineDataset.Builder b = InlineDataset.newBuilder();
        for (int i = 0; i < n; i++) {
            b.addRecords(
                    Struct.newBuilder()
                            .putFields("text", Value.newBuilder().setStringValue("t" + i).build())
                            .putFields(
                                    "label",
                                    Value.newBuilder()
                                            .setStringValue(labels[i % labels.length])
                                            .build()));
        }
        return b.build();
    }
}
