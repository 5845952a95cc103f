package io.tuneline.common.store;

/**
 * Where the object store is and how to talk to it.
 *
 * @param partSize bytes per multipart part when the size is unknown or large; S3 requires 5 MiB at
 *     least (AWS "Amazon S3 multipart upload limits")
 */
public record StoreSettings(
        String endpoint,
        String accessKey,
        String secretKey,
        String bucket,
        String region,
        long partSize) {
    public static final long MIN_PART_SIZE = 5L * 1024 * 1024;

    public StoreSettings {
        if (partSize < MIN_PART_SIZE) {
            throw new IllegalArgumentException(
                    "part size " + partSize + " is below the S3 minimum of " + MIN_PART_SIZE);
        }
    }
}
