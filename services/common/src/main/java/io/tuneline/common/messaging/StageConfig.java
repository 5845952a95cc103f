package io.tuneline.common.messaging;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.time.Duration;
import java.util.Optional;

/** {@code tuneline.stages.*}: how a service runs the pipeline stage it owns. */
@ConfigMapping(prefix = "tuneline.stages")
public interface StageConfig {
    /**
     * How many times one job's stage may be started before the job fails instead: a start that
     * never finished means the service died on it (out of memory, a native crash, a kill), and a
     * record that kills the service on every delivery must not stop all later jobs.
     */
    @WithDefault("3")
    int maxAttempts();

    /**
     * How long a stage record's heartbeat (written every third of it while the stage runs) keeps
     * other instances from doing the same stage: one handed the same event (its partition moved
     * while the stage ran) waits instead. Past it, the instance at work is taken for dead and the
     * stage starts again. Shorter than Kafka's session timeout (45 s), so a killed instance's
     * stages are taken over as soon as its partitions are.
     */
    @WithDefault("PT30S")
    Duration lease();

    /**
     * Faults injected into the stages of chosen jobs, for the reliability tests on the real stack.
     * Off unless a job pattern is set.
     */
    Faults faults();

    interface Faults {
        /**
         * Job ids (a regular expression) whose stage is slowed down by {@link #delay()}, on its
         * first start only.
         */
        Optional<String> delayJobs();

        /** How much longer the stage of a slowed job takes, before its real work. */
        @WithDefault("PT0S")
        Duration delay();

        /** The service whose stage is slowed down; unset: every stage service. */
        Optional<String> delayIn();

        /**
         * Job ids (a regular expression) at whose stage the service halts as if killed, after
         * counting the start.
         */
        Optional<String> haltJobs();

        /** The service that halts; unset: every stage service. */
        Optional<String> haltIn();
    }
}
