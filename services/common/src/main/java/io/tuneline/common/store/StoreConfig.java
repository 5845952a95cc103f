package io.tuneline.common.store;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;

/** {@code tuneline.store.*}: the object store of a service. */
@ConfigMapping(prefix = "tuneline.store")
public interface StoreConfig {
    /** S3 endpoint URL, e.g. {@code http://127.0.0.1:9000} or a MinIO service in the cluster. */
    String endpoint();

    String accessKey();

    String secretKey();

    /** The one bucket of the platform. */
    @WithDefault("tuneline")
    String bucket();

    @WithDefault("us-east-1")
    String region();

    /**
     * Multipart part size in bytes ({@link StoreSettings#DEFAULT_PART_SIZE}, 16 MiB, by default):
     * streams of unknown size and files larger than this go up in parts.
     */
    @WithDefault("" + StoreSettings.DEFAULT_PART_SIZE)
    long partSize();

    /**
     * Parts of one file sent at once ({@link StoreSettings#DEFAULT_UPLOAD_CONCURRENCY}, 4, by
     * default; 1 sends them one after the other).
     */
    @WithDefault("" + StoreSettings.DEFAULT_UPLOAD_CONCURRENCY)
    int uploadConcurrency();

    /** Create the bucket at start-up when it is missing (off where an operator owns buckets). */
    @WithDefault("true")
    boolean createBucket();

    /**
     * How long an operation keeps trying while the store cannot be reached (connection refused,
     * 5xx, SlowDown), with exponential backoff; then it fails with the last error.
     */
    @WithDefault("PT5M")
    java.time.Duration retryFor();

    /**
     * PEM certificates to trust besides the JVM's authorities, for an {@code https} endpoint signed
     * by a private CA ({@code S3_CA_FILE}; the chart mounts {@code objectStore.tls.caSecret}).
     */
    java.util.Optional<String> caFile();

    default StoreSettings settings() {
        return new StoreSettings(
                        endpoint(),
                        accessKey(),
                        secretKey(),
                        bucket(),
                        region(),
                        partSize(),
                        retryFor())
                .withCaFile(caFile().filter(f -> !f.isBlank()).map(java.nio.file.Path::of))
                .withUploadConcurrency(uploadConcurrency());
    }
}
