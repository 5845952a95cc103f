package io.tuneline.training.worker;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Map;
import org.junit.jupiter.api.Test;

class TrainingWorkerTest {
    /** For methods that need no tokenizer: a prompt init text would be a mistake here. */
    private static final java.util.function.Function<String, java.util.List<Integer>> NO_TEXT =
            text -> {
                throw new AssertionError("no text to tokenize expected: " + text);
            };

    @Test
    void kafkaSecuritySettingsComeFromTheSameVariablesTheServicesUse() {
        var props =
                TrainingWorker.kafkaProperties(
                        Map.of(
                                "KAFKA_BOOTSTRAP_SERVERS", "kafka:9093",
                                "KAFKA_SECURITY_PROTOCOL", "SASL_SSL",
                                "KAFKA_SASL_MECHANISM", "SCRAM-SHA-512",
                                "KAFKA_SSL_TRUSTSTORE_LOCATION", "/etc/tuneline/kafka-ca/ca.crt",
                                "S3_ENDPOINT", "http://minio:9000"));
        assertThat(props)
                .containsEntry("bootstrap.servers", "kafka:9093")
                .containsEntry("security.protocol", "SASL_SSL")
                .containsEntry("sasl.mechanism", "SCRAM-SHA-512")
                .containsEntry("ssl.truststore.location", "/etc/tuneline/kafka-ca/ca.crt")
                .doesNotContainKey("s3.endpoint");
    }

    @Test
    void theJobsHyperparametersBecomeTheEnginesSettingsWithTheirDocumentedDefaults() {
        var defaults =
                JobSettings.settings(
                        io.tuneline.proto.v1.Hyperparameters.getDefaultInstance(),
                        io.tuneline.proto.v1.MethodSpec.newBuilder()
                                .setLora(io.tuneline.proto.v1.LoraParams.getDefaultInstance())
                                .build());
        org.assertj.core.api.Assertions.assertThat(defaults)
                .isEqualTo(
                        new io.tuneline.engine.train.TrainingSettings(
                                3,
                                16,
                                2e-4f,
                                0.01f,
                                0.06f,
                                1f,
                                128,
                                42,
                                io.tuneline.engine.train.LearningRateSchedule.Shape.LINEAR,
                                1));
        var cosine =
                JobSettings.settings(
                        io.tuneline.proto.v1.Hyperparameters.newBuilder()
                                .setLrSchedule(io.tuneline.proto.v1.LrSchedule.LR_SCHEDULE_COSINE)
                                .setEpochs(2)
                                .setGradientAccumulationSteps(4)
                                .setMaxSteps(250)
                                .build(),
                        io.tuneline.proto.v1.MethodSpec.getDefaultInstance());
        org.assertj.core.api.Assertions.assertThat(cosine.schedule())
                .isEqualTo(io.tuneline.engine.train.LearningRateSchedule.Shape.COSINE);
        org.assertj.core.api.Assertions.assertThat(cosine.epochs()).isEqualTo(2);
        org.assertj.core.api.Assertions.assertThat(cosine.accumulationSteps()).isEqualTo(4);
        org.assertj.core.api.Assertions.assertThat(cosine.maxSteps()).isEqualTo(250);
        org.assertj.core.api.Assertions.assertThat(defaults.maxSteps()).isZero();
    }

    /**
     * job.proto: activation checkpointing unset is on for QLoRA (its memory saving needs it), off
     * otherwise; a job's own setting wins either way. A QLoRA job's base is streamed into NF4.
     */
    @Test
    void activationCheckpointingIsOnForQloraUnlessTheJobSaysOtherwise() {
        var none = io.tuneline.proto.v1.Hyperparameters.getDefaultInstance();
        var qlora =
                io.tuneline.proto.v1.MethodSpec.newBuilder()
                        .setQlora(
                                io.tuneline.proto.v1.QloraParams.newBuilder()
                                        .setBlockSize(128)
                                        .setDisableDoubleQuant(true))
                        .build();
        var lora =
                io.tuneline.proto.v1.MethodSpec.newBuilder()
                        .setLora(io.tuneline.proto.v1.LoraParams.getDefaultInstance())
                        .build();
        var off = none.toBuilder().setActivationCheckpointing(false).build();
        var on = none.toBuilder().setActivationCheckpointing(true).build();
        assertThat(JobSettings.settings(none, qlora).activationCheckpointing()).isTrue();
        assertThat(JobSettings.settings(off, qlora).activationCheckpointing()).isFalse();
        assertThat(JobSettings.settings(none, lora).activationCheckpointing()).isFalse();
        assertThat(JobSettings.settings(on, lora).activationCheckpointing()).isTrue();
        var nf4 = io.tuneline.engine.method.JobMethods.nf4Loading(qlora).orElseThrow();
        assertThat(nf4.blocksize()).isEqualTo(128);
        assertThat(nf4.doubleQuant()).isFalse();
        assertThat(io.tuneline.engine.method.JobMethods.nf4Loading(lora)).isEmpty();
    }

    /**
     * job.proto: "default 2e-5 for full fine-tuning, 2e-4 for adapter methods"; a job's own rate
     * wins.
     */
    @Test
    void theDefaultLearningRateIsTheOneJobProtoPromisesForTheMethod() {
        var none = io.tuneline.proto.v1.Hyperparameters.getDefaultInstance();
        var full =
                io.tuneline.proto.v1.MethodSpec.newBuilder()
                        .setFull(io.tuneline.proto.v1.FullFineTuning.getDefaultInstance())
                        .build();
        var lora =
                io.tuneline.proto.v1.MethodSpec.newBuilder()
                        .setLora(io.tuneline.proto.v1.LoraParams.getDefaultInstance())
                        .build();
        var freeze =
                io.tuneline.proto.v1.MethodSpec.newBuilder()
                        .setFreeze(
                                io.tuneline.proto.v1.LayerFreezing.newBuilder().setHeadOnly(true))
                        .build();
        assertThat(JobSettings.settings(none, full).learningRate()).isEqualTo(2e-5f);
        assertThat(
                        JobSettings.settings(
                                        none, io.tuneline.proto.v1.MethodSpec.getDefaultInstance())
                                .learningRate())
                .as("no method is full fine-tuning")
                .isEqualTo(2e-5f);
        assertThat(JobSettings.settings(none, lora).learningRate()).isEqualTo(2e-4f);
        assertThat(JobSettings.settings(none, freeze).learningRate()).isEqualTo(2e-4f);
        assertThat(
                        JobSettings.settings(none.toBuilder().setLearningRate(1e-3).build(), full)
                                .learningRate())
                .isEqualTo(1e-3f);
    }

    /**
     * Every parameter-efficient method of the contract becomes its engine record with the
     * contract's defaults for the fields a job leaves unset.
     */
    @Test
    void eachParameterEfficientMethodGetsTheContractsDefaults() {
        var m = io.tuneline.proto.v1.MethodSpec.newBuilder();
        var none = java.util.List.<String>of();
        assertThat(
                        JobSettings.method(
                                m.clear()
                                        .setAdapter(
                                                io.tuneline.proto.v1.AdapterParams
                                                        .getDefaultInstance())
                                        .build(),
                                none,
                                NO_TEXT))
                .isEqualTo(io.tuneline.engine.method.FineTuningMethod.Adapter.pfeiffer());
        assertThat(
                        JobSettings.method(
                                m.clear()
                                        .setAdapter(
                                                io.tuneline.proto.v1.AdapterParams.newBuilder()
                                                        .setPlacement("double_seq_bn"))
                                        .build(),
                                none,
                                NO_TEXT))
                .isEqualTo(io.tuneline.engine.method.FineTuningMethod.Adapter.houlsby());
        assertThat(
                        JobSettings.method(
                                m.clear()
                                        .setPrefix(
                                                io.tuneline.proto.v1.PrefixTuningParams
                                                        .getDefaultInstance())
                                        .build(),
                                none,
                                NO_TEXT))
                .isEqualTo(new io.tuneline.engine.method.FineTuningMethod.Prefix(20, 0));
        assertThat(
                        JobSettings.method(
                                m.clear()
                                        .setPTuning(
                                                io.tuneline.proto.v1.PTuningParams
                                                        .getDefaultInstance())
                                        .build(),
                                none,
                                NO_TEXT))
                .isEqualTo(io.tuneline.engine.method.FineTuningMethod.PTuning.defaults());
        assertThat(
                        JobSettings.method(
                                m.clear()
                                        .setPrompt(
                                                io.tuneline.proto.v1.PromptTuningParams
                                                        .getDefaultInstance())
                                        .build(),
                                none,
                                NO_TEXT))
                .isEqualTo(io.tuneline.engine.method.FineTuningMethod.Prompt.defaults());
        // A text init is tokenized with the base's tokenizer (special tokens and all).
        assertThat(
                        JobSettings.method(
                                m.clear()
                                        .setPrompt(
                                                io.tuneline.proto.v1.PromptTuningParams.newBuilder()
                                                        .setNumVirtualTokens(5)
                                                        .setInitText("good or bad?"))
                                        .build(),
                                none,
                                text -> java.util.List.of(101, text.length(), 102)))
                .isEqualTo(
                        new io.tuneline.engine.method.FineTuningMethod.Prompt(
                                5,
                                io.tuneline.engine.method.FineTuningMethod.Prompt.Init.TEXT,
                                java.util.List.of(101, 12, 102)));
    }

    /**
     * A QLoRA job becomes the engine's Qlora with the QLoRA paper's defaults (NF4, blocks of 64,
     * double quantization) around the LoRA the job describes; its adapter is exported as LoRA's.
     */
    @Test
    void aQloraJobGetsNf4DefaultsAndItsLora() {
        var spec =
                io.tuneline.proto.v1.MethodSpec.newBuilder()
                        .setQlora(
                                io.tuneline.proto.v1.QloraParams.newBuilder()
                                        .setLora(
                                                io.tuneline.proto.v1.LoraParams.newBuilder()
                                                        .setRank(4)))
                        .build();
        var method = JobSettings.method(spec, java.util.List.of("c_attn"), NO_TEXT);
        org.assertj.core.api.Assertions.assertThat(method)
                .isEqualTo(
                        new io.tuneline.engine.method.FineTuningMethod.Qlora(
                                new io.tuneline.engine.method.FineTuningMethod.Lora(
                                        4, 8f, 0.05f, java.util.List.of("c_attn")),
                                64,
                                true));
        org.assertj.core.api.Assertions.assertThat(
                        io.tuneline.engine.export.MethodExport.loraOf(method))
                .contains(((io.tuneline.engine.method.FineTuningMethod.Qlora) method).lora());
        var single =
                JobSettings.method(
                        spec.toBuilder()
                                .setQlora(
                                        spec.getQlora().toBuilder()
                                                .setBlockSize(128)
                                                .setDisableDoubleQuant(true))
                                .build(),
                        java.util.List.of("c_attn"),
                        NO_TEXT);
        org.assertj.core.api.Assertions.assertThat(single)
                .extracting("blocksize", "doubleQuant")
                .containsExactly(128, false);
    }

    /** The job's list or regular expression, or PEFT's targets for the family when it has none. */
    @Test
    void aLoraJobWithoutTargetsGetsTheFamilysDefaultTargets() {
        var lora =
                io.tuneline.proto.v1.MethodSpec.newBuilder()
                        .setLora(io.tuneline.proto.v1.LoraParams.getDefaultInstance())
                        .build();
        assertThat(JobSettings.method(lora, java.util.List.of("c_attn"), NO_TEXT))
                .isEqualTo(
                        new io.tuneline.engine.method.FineTuningMethod.Lora(
                                8, 16f, 0.05f, java.util.List.of("c_attn")));
        var named =
                io.tuneline.proto.v1.MethodSpec.newBuilder()
                        .setLora(
                                io.tuneline.proto.v1.LoraParams.newBuilder()
                                        .addTargetModules("dense"))
                        .build();
        assertThat(JobSettings.method(named, java.util.List.of("query", "value"), NO_TEXT))
                .isEqualTo(
                        new io.tuneline.engine.method.FineTuningMethod.Lora(
                                8, 16f, 0.05f, java.util.List.of("dense")));
        var regex =
                io.tuneline.proto.v1.MethodSpec.newBuilder()
                        .setLora(
                                io.tuneline.proto.v1.LoraParams.newBuilder()
                                        .setTargetModulesRegex(".*\\.(query|value)"))
                        .build();
        assertThat(JobSettings.method(regex, java.util.List.of("query", "value"), NO_TEXT))
                .isEqualTo(
                        new io.tuneline.engine.method.FineTuningMethod.Lora(
                                8,
                                16f,
                                0.05f,
                                io.tuneline.engine.method.TargetMatcher.fullMatch(
                                        ".*\\.(query|value)")));
    }

    @Test
    void classWeightsFollowTheDatasetsLabelOrderAndAnUnknownLabelIsRefused() {
        var h =
                io.tuneline.proto.v1.Hyperparameters.newBuilder()
                        .setLabelSmoothing(0.1)
                        .putClassWeights("pos", 3.0)
                        .build();
        var loss = ClassificationRun.objective(h, java.util.List.of("neg", "pos"));
        org.assertj.core.api.Assertions.assertThat(loss.smoothing()).isEqualTo(0.1);
        org.assertj.core.api.Assertions.assertThat(loss.classWeights())
                .hasValueSatisfying(
                        w -> org.assertj.core.api.Assertions.assertThat(w).containsExactly(1f, 3f));
        org.assertj.core.api.Assertions.assertThat(
                        ClassificationRun.objective(
                                io.tuneline.proto.v1.Hyperparameters.getDefaultInstance(),
                                java.util.List.of("a", "b")))
                .isSameAs(io.tuneline.engine.train.ClassificationLoss.PLAIN);
        org.assertj.core.api.Assertions.assertThatThrownBy(
                        () ->
                                ClassificationRun.objective(
                                        h.toBuilder().putClassWeights("meh", 2.0).build(),
                                        java.util.List.of("neg", "pos")))
                .hasMessageContaining(
                        "class_weights names label 'meh', which the dataset does not have");
    }
}
