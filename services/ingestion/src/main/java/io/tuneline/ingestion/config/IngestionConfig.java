package io.tuneline.ingestion.config;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** {@code tuneline.ingestion.*}: limits and the rules for fetching datasets over HTTP. */
@ConfigMapping(prefix = "tuneline.ingestion")
public interface IngestionConfig {
    /** Largest dataset accepted, in bytes: as stored and, for gzip, also once decompressed. */
    @WithDefault("10737418240")
    long maxBytes();

    /** Most records (valid or not) a dataset may have. */
    @WithDefault("50000000")
    long maxRecords();

    /**
     * Longest line of JSON Lines or plain text, in bytes; a longer line is a bad record, skipped
     * without being held in memory.
     */
    @WithDefault("1048576")
    int maxLineBytes();

    /**
     * Least time between two progress events (JobStatusChanged with percent_done) while a dataset
     * is validated; a dataset validated within it reports no progress.
     */
    @WithDefault("PT2S")
    Duration progressInterval();

    /**
     * Bearer token that {@code POST /api/v1/datasets} requires; unset, uploads are open (fine on
     * one machine, where the service listens on loopback only).
     */
    Optional<String> uploadToken();

    Http http();

    /**
     * Credentials for datasets on other S3 endpoints, by the name a job gives in {@code
     * dataset.credentials_ref}: {@code tuneline.ingestion.s3-credentials."partner".access-key}.
     */
    Map<String, S3Credentials> s3Credentials();

    interface S3Credentials {
        String accessKey();

        String secretKey();

        /** The endpoint's region; asked from the endpoint when not set. */
        Optional<String> region();
    }

    interface Http {
        /**
         * Hosts datasets may come from: exact names, or {@code .example.com} for a domain and its
         * subdomains. Empty: any public host.
         */
        Optional<List<String>> allowedHosts();

        /**
         * Whether loopback, private, link-local and other non-public addresses may be fetched. Off,
         * so a job cannot make the service probe the cluster's inside.
         */
        @WithDefault("false")
        boolean allowPrivateAddresses();

        /** Connect and first-byte timeout. */
        @WithDefault("PT30S")
        Duration timeout();
    }
}
