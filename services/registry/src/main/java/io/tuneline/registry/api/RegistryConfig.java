package io.tuneline.registry.api;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.time.Duration;

/** {@code tuneline.registry.*}: the registry's own settings. */
@ConfigMapping(prefix = "tuneline.registry")
public interface RegistryConfig {
    /** Bearer token that write endpoints (and reads, if protected) require. */
    String apiToken();

    /** Whether read endpoints need the token too. */
    @WithDefault("false")
    boolean protectReads();

    /** Lifetime of presigned download URLs. */
    @WithDefault("PT1H")
    Duration downloadUrlTtl();

    /** Where the one-machine H2 database lives (without the {@code .mv.db} suffix). */
    String h2File();

    Watchdog watchdog();

    /**
     * {@code tuneline.registry.watchdog.*}: how long a job may go without any event in each state
     * before it is failed as stalled (zero: never). Stages report progress while they work, so
     * these are far above any pause of a healthy job; training's allows for waiting in the queue.
     */
    interface Watchdog {
        /** How often jobs are checked. */
        @WithDefault("1m")
        String interval();

        @WithDefault("PT1H")
        Duration queued();

        @WithDefault("PT1H")
        Duration ingesting();

        @WithDefault("PT1H")
        Duration preprocessing();

        @WithDefault("PT24H")
        Duration training();

        @WithDefault("PT6H")
        Duration evaluating();

        @WithDefault("PT1H")
        Duration registering();
    }
}
