package io.tuneline.training.config;

import io.fabric8.kubernetes.client.KubernetesClient;
import io.tuneline.common.store.StoreConfig;
import io.tuneline.training.kubernetes.KubernetesExecutorSettings;
import io.tuneline.training.kubernetes.KubernetesRunLauncher;
import io.tuneline.training.kubernetes.KueueSettings;
import io.tuneline.training.local.LocalExecutorSettings;
import io.tuneline.training.local.LocalRunLauncher;
import io.tuneline.training.run.RunLauncher;
import jakarta.enterprise.inject.Disposes;
import jakarta.enterprise.inject.Instance;
import jakarta.enterprise.inject.Produces;
import jakarta.inject.Singleton;
import java.util.List;
import java.util.Map;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/** The executor the configuration names; closed (workers stopped) at shutdown. */
@Singleton
public class LauncherProducer {

    @Produces
    @Singleton
    RunLauncher launcher(
            TrainingConfig config,
            StoreConfig store,
            @ConfigProperty(name = "kafka.bootstrap.servers") String kafka,
            Instance<KubernetesClient> kubernetes) {
        return switch (config.executor()) {
            case LOCAL ->
                    new LocalRunLauncher(
                            new LocalExecutorSettings(
                                    config.local()
                                            .workerCommand()
                                            .orElse(List.of(MissingWorker.COMMAND)),
                                    config.local().maxConcurrentRuns(),
                                    config.local().workDir(),
                                    config.local().stopGrace(),
                                    workerEnvironment(store, kafka)));
            case KUBERNETES ->
                    new KubernetesRunLauncher(
                            kubernetes.get(),
                            new KubernetesExecutorSettings(
                                    config.kubernetes().namespace(),
                                    config.kubernetes().podTemplate(),
                                    config.kubernetes().gpuResourceName(),
                                    config.kubernetes().ttlSecondsAfterFinished(),
                                    config.kubernetes().backoffLimit(),
                                    kueue(config.kubernetes().kueue())));
        };
    }

    static KueueSettings kueue(TrainingConfig.Kueue kueue) {
        if (!kueue.enabled()) {
            return KueueSettings.OFF;
        }
        return new KueueSettings(
                true,
                kueue.queueName(),
                KueueSettings.parsePriorityClasses(kueue.priorityClasses().orElse(List.of())),
                kueue.defaultPriorityClass().filter(c -> !c.isBlank()));
    }

    /**
     * What a local worker needs to reach the platform, in the variables the %prod profile reads
     * (the same a worker pod gets from the chart).
     */
    static Map<String, String> workerEnvironment(StoreConfig store, String kafka) {
        Map<String, String> env = new java.util.HashMap<>();
        env.put("KAFKA_BOOTSTRAP_SERVERS", kafka);
        env.put("S3_ENDPOINT", store.endpoint());
        env.put("S3_ACCESS_KEY", store.accessKey());
        env.put("S3_SECRET_KEY", store.secretKey());
        env.put("S3_BUCKET", store.bucket());
        store.caFile().filter(f -> !f.isBlank()).ifPresent(f -> env.put("S3_CA_FILE", f));
        return Map.copyOf(env);
    }

    void close(@Disposes RunLauncher launcher) {
        launcher.close();
    }

    /** Names the missing piece when no worker command is configured. */
    public static final class MissingWorker {
        static final String COMMAND = "tuneline-training-worker-not-configured";

        private MissingWorker() {}
    }
}
