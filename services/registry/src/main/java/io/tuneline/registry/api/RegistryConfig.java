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
}
