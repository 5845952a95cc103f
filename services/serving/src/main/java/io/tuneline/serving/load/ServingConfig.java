package io.tuneline.serving.load;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

/** {@code tuneline.serving.*}: where versions come from, what is loaded at start, the limits. */
@ConfigMapping(prefix = "tuneline.serving")
public interface ServingConfig {

    Registry registry();

    /** Versions loaded at start-up ({@code name}, {@code name:3}, {@code name:champion}). */
    Optional<List<String>> preload();

    Batch batch();

    Limits limits();

    Aliases aliases();

    Candidates candidates();

    /** Runs loaded before registration ({@code PUT /v1/candidates/{name}}). */
    interface Candidates {
        /**
         * Bearer token that {@code PUT} and {@code DELETE /v1/candidates/...} must carry; unset,
         * they are open (one machine). Evaluation's scenario stage sends it.
         */
        Optional<String> token();
    }

    /** How names and aliases follow the registry. */
    interface Aliases {
        /**
         * How often every name and alias served is resolved again ({@code 30s}; {@code off} turns
         * it off): read by {@code LoadedModels}' schedule, declared here so it is documented.
         */
        @WithDefault("30s")
        String refreshInterval();
    }

    interface Registry {
        /** The registry's base URL ({@code http://127.0.0.1:8080} on one machine). */
        Optional<URI> url();

        /** Bearer token, when the registry protects reads. */
        Optional<String> token();
    }

    /** How concurrent classify requests to one version are gathered into engine batches. */
    interface Batch {
        /** Texts in one engine batch; a request with more runs alone, in slices of this size. */
        @WithDefault("32")
        int maxSize();

        /** How long a batch waits for more requests after its first, once the engine is free. */
        @WithDefault("5ms")
        Duration maxWait();
    }

    interface Limits {
        /** Texts in one classify request. */
        @WithDefault("64")
        int maxInputs();

        /** Characters of one classify input, or of one prompt or chat. */
        @WithDefault("8192")
        int maxInputChars();

        /** {@code max_tokens} a completion may ask for. */
        @WithDefault("512")
        int maxTokens();

        /** Requests waiting per version while its engine is busy; the next gets a 429. */
        @WithDefault("64")
        int maxQueued();

        /** Distinct versions held in memory at once. */
        @WithDefault("8")
        int maxLoadedModels();
    }
}
