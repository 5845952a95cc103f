package io.tuneline.training.worker;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Map;
import org.junit.jupiter.api.Test;

class TrainingWorkerTest {

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
                ClassificationRun.settings(
                        io.tuneline.proto.v1.Hyperparameters.getDefaultInstance());
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
                ClassificationRun.settings(
                        io.tuneline.proto.v1.Hyperparameters.newBuilder()
                                .setLrSchedule(io.tuneline.proto.v1.LrSchedule.LR_SCHEDULE_COSINE)
                                .setEpochs(2)
                                .setGradientAccumulationSteps(4)
                                .build());
        org.assertj.core.api.Assertions.assertThat(cosine.schedule())
                .isEqualTo(io.tuneline.engine.train.LearningRateSchedule.Shape.COSINE);
        org.assertj.core.api.Assertions.assertThat(cosine.epochs()).isEqualTo(2);
        org.assertj.core.api.Assertions.assertThat(cosine.accumulationSteps()).isEqualTo(4);
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
