package io.tuneline.training.config;

import static org.assertj.core.api.Assertions.assertThat;

import io.quarkus.runtime.configuration.DurationConverter;
import io.smallrye.config.EnvConfigSource;
import io.smallrye.config.SmallRyeConfigBuilder;
import io.tuneline.training.kubernetes.KueueSettings;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/** The Kueue settings as the chart passes them: environment variables of the training ConfigMap. */
class KueueConfigTest {

    private static TrainingConfig config(Map<String, String> env) {
        return new SmallRyeConfigBuilder()
                .addDefaultInterceptors()
                .addSystemSources()
                // Quarkus reads "30s" durations (the mapping's defaults) with its own converter.
                .withConverter(Duration.class, 200, new DurationConverter())
                .withMapping(TrainingConfig.class)
                .withSources(new EnvConfigSource(env, 300))
                .build()
                .getConfigMapping(TrainingConfig.class);
    }

    @Test
    void theChartsVariablesBecomeTheLaunchersKueueSettings() {
        TrainingConfig config =
                config(
                        Map.of(
                                "TUNELINE_TRAINING_KUBERNETES_KUEUE_ENABLED", "true",
                                "TUNELINE_TRAINING_KUBERNETES_KUEUE_QUEUE_NAME", "ml-training",
                                "TUNELINE_TRAINING_KUBERNETES_KUEUE_PRIORITY_CLASSES",
                                        "0=tuneline-normal,10=tuneline-high",
                                "TUNELINE_TRAINING_KUBERNETES_KUEUE_DEFAULT_PRIORITY_CLASS",
                                        "tuneline-low"));
        KueueSettings kueue = LauncherProducer.kueue(config.kubernetes().kueue());
        assertThat(kueue.enabled()).isTrue();
        assertThat(kueue.queueName()).isEqualTo("ml-training");
        assertThat(kueue.priorityClass(12)).contains("tuneline-high");
        assertThat(kueue.priorityClass(3)).contains("tuneline-normal");
        assertThat(kueue.priorityClass(-1)).contains("tuneline-low");
    }

    @Test
    void kueueIsOffUnlessEnabled() {
        TrainingConfig config = config(Map.of());
        assertThat(config.kubernetes().kueue().enabled()).isFalse();
        assertThat(LauncherProducer.kueue(config.kubernetes().kueue()))
                .isEqualTo(KueueSettings.OFF);
        TrainingConfig defaults =
                config(Map.of("TUNELINE_TRAINING_KUBERNETES_KUEUE_ENABLED", "true"));
        assertThat(LauncherProducer.kueue(defaults.kubernetes().kueue()))
                .isEqualTo(
                        new KueueSettings(
                                true, "tuneline-training", new TreeMap<>(), Optional.empty()));
    }
}
