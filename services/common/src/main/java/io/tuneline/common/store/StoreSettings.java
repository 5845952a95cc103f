package io.tuneline.common.store;

/**
 * Where the object store is and how to talk to it.
 *
 * @param partSize bytes per multipart part: a stream of unknown size goes up in parts of this size,
 *     a file larger than it in parts of this size (or larger, where it would need more than S3's
 *     10,000 parts), a smaller file in one request; S3 requires 5 MiB at least (AWS "Amazon S3
 *     multipart upload limits")
 * @param retryFor how long an operation that failed because the store could not be reached (or
 *     answered 5xx / SlowDown) is tried again, with backoff, before it fails; zero: never
 * @param caFile PEM certificates (one or a bundle) trusted besides the JVM's own authorities, for
 *     an {@code https} endpoint whose certificate a private CA signed (a MinIO tenant's, a cluster
 *     issuer's)
 * @param uploadConcurrency parts of one file sent at once (1: one after the other, as the MinIO
 *     client does)
 */
public record StoreSettings(
        String endpoint,
        String accessKey,
        String secretKey,
        String bucket,
        String region,
        long partSize,
        java.time.Duration retryFor,
        java.util.Optional<java.nio.file.Path> caFile,
        int uploadConcurrency) {
    public static final long MIN_PART_SIZE = 5L * 1024 * 1024;

    /**
     * The services' part size unless configured ({@code tuneline.store.part-size}). Larger parts
     * cost the local store (S3Proxy) less: it joins a multipart upload's parts into a new file at
     * the end, and holds each signed request's body in its heap, so parts stay well below its 128
     * MiB limit. A 76 MB file went up in 0.67-0.72 s in 16 MiB parts against 0.89-1.05 s in 5 MiB
     * parts (docs/benchmarks.md, preprocessing).
     */
    public static final long DEFAULT_PART_SIZE = 16L * 1024 * 1024;

    /**
     * Parts of one file in flight at once unless configured ({@code
     * tuneline.store.upload-concurrency}): one connection seldom fills a link to S3 or MinIO, and
     * on the local store (S3Proxy) a 76 MB file went up in 0.51-0.53 s with 2 or 4 at once against
     * 0.72 s one after the other, a 512 MB one in 3.1 s against 4.5 s (bench/store-upload.sh,
     * docs/benchmarks.md). Each part in flight is one request body the store holds at a time.
     */
    public static final int DEFAULT_UPLOAD_CONCURRENCY = 4;

    /** How long a store outage is waited out unless configured otherwise. */
    public static final java.time.Duration DEFAULT_RETRY_FOR = java.time.Duration.ofMinutes(5);

    public StoreSettings {
        if (partSize < MIN_PART_SIZE) {
            throw new IllegalArgumentException(
                    "part size " + partSize + " is below the S3 minimum of " + MIN_PART_SIZE);
        }
        java.util.Objects.requireNonNull(caFile, "caFile");
        if (retryFor.isNegative()) {
            throw new IllegalArgumentException("retry-for must not be negative: " + retryFor);
        }
        if (uploadConcurrency < 1) {
            throw new IllegalArgumentException(
                    "upload-concurrency must be 1 or more: " + uploadConcurrency);
        }
    }

    public StoreSettings(
            String endpoint,
            String accessKey,
            String secretKey,
            String bucket,
            String region,
            long partSize,
            java.time.Duration retryFor) {
        this(
                endpoint,
                accessKey,
                secretKey,
                bucket,
                region,
                partSize,
                retryFor,
                java.util.Optional.empty(),
                DEFAULT_UPLOAD_CONCURRENCY);
    }

    public StoreSettings(
            String endpoint,
            String accessKey,
            String secretKey,
            String bucket,
            String region,
            long partSize) {
        this(endpoint, accessKey, secretKey, bucket, region, partSize, DEFAULT_RETRY_FOR);
    }

    /** These settings trusting the certificates in {@code caFile} too (none when empty). */
    public StoreSettings withCaFile(java.util.Optional<java.nio.file.Path> caFile) {
        return new StoreSettings(
                endpoint,
                accessKey,
                secretKey,
                bucket,
                region,
                partSize,
                retryFor,
                caFile,
                uploadConcurrency);
    }

    /** These settings sending {@code parts} parts of a file at once. */
    public StoreSettings withUploadConcurrency(int parts) {
        return new StoreSettings(
                endpoint, accessKey, secretKey, bucket, region, partSize, retryFor, caFile, parts);
    }
}
