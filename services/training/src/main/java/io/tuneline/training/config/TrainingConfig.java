package io.tuneline.training.config;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

/** {@code tuneline.training.*}; the Helm chart sets the kubernetes group from its values. */
@ConfigMapping(prefix = "tuneline.training")
public interface TrainingConfig {

    /** {@code local} (worker processes on this machine) or {@code kubernetes} (one Job per run). */
    @WithDefault("local")
    Executor executor();

    /** Attempts per job: a run that fails in a way a retry may fix restarts from its checkpoint. */
    @WithDefault("3")
    int maxAttempts();

    /**
     * Preemptions per job (a worker stopped from outside after storing a checkpoint: spot nodes,
     * preemption, eviction, a controller restart). They resume the run and do not count against
     * {@link #maxAttempts()}; past this many the next one fails the job, so a run that can never
     * keep its node does not go round for ever.
     */
    @WithDefault("20")
    int maxPreemptions();

    /**
     * How often the controller asks the executor again about every run in flight, so that a run's
     * end it could not record (the object store was down) is acted on once the store is back.
     */
    @WithDefault("30s")
    Duration reconcileInterval();

    Local local();

    Kubernetes kubernetes();

    enum Executor {
        LOCAL,
        KUBERNETES
    }

    interface Local {
        /**
         * The command that starts a worker process. Empty until the engine's worker is part of the
         * build; jobs then fail with a message that says so.
         */
        Optional<List<String>> workerCommand();

        @WithDefault("1")
        int maxConcurrentRuns();

        /** Working directories and logs of local runs. */
        @WithDefault("${java.io.tmpdir}/tuneline-runs")
        Path workDir();

        @WithDefault("30s")
        Duration stopGrace();
    }

    interface Kubernetes {
        /** Namespace of the run Jobs; the chart sets the pod's own namespace. */
        @WithDefault("default")
        String namespace();

        @WithDefault("/etc/tuneline/worker/pod-template.yaml")
        Path podTemplate();

        @WithDefault("nvidia.com/gpu")
        String gpuResourceName();

        @WithDefault("3600")
        int ttlSecondsAfterFinished();

        @WithDefault("0")
        int backoffLimit();

        Kueue kueue();
    }

    /**
     * Cluster queueing through Kueue: Jobs are created suspended in a LocalQueue and started when
     * Kueue admits them against the cluster's quota. The controller then puts no limit of its own
     * in front (the Kubernetes executor never had one): every run's Job is created at once and
     * Kueue orders them by WorkloadPriorityClass and arrival.
     */
    interface Kueue {
        @WithDefault("false")
        boolean enabled();

        /** The LocalQueue (in the Jobs' namespace) the Jobs are labelled with. */
        @WithDefault("tuneline-training")
        String queueName();

        /**
         * WorkloadPriorityClass by the lowest job priority ({@code resources.priority}) it applies
         * to, as {@code min=class} entries: {@code 0=tuneline-normal,10=tuneline-high}.
         */
        Optional<List<String>> priorityClasses();

        /** WorkloadPriorityClass of a priority below every entry; empty for none. */
        Optional<String> defaultPriorityClass();
    }
}
