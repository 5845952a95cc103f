package io.tuneline.common.store;

import java.util.regex.Pattern;

/**
 * An {@code s3://bucket/key} URI, the form in which events point at artifacts (claim check). A key
 * ending in {@code /} names a prefix.
 */
public record S3Uri(String bucket, String key) {
    // S3 bucket naming rules (AWS "Bucket naming rules"): 3-63 chars, lower case, digits, dots,
    // hyphens, starting and ending with a letter or digit.
    private static final Pattern BUCKET = Pattern.compile("[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]");

    public S3Uri {
        if (!BUCKET.matcher(bucket).matches()) {
            throw new IllegalArgumentException(
                    "invalid bucket name '" + bucket + "': use 3-63 characters of [a-z0-9.-]");
        }
        if (key.isEmpty() || key.startsWith("/")) {
            throw new IllegalArgumentException(
                    "invalid object key '" + key + "': it must be non-empty and not start with /");
        }
    }

    /** Parses {@code s3://bucket/key}, with a message that says what is wrong. */
    public static S3Uri parse(String uri) {
        if (uri == null || !uri.startsWith("s3://")) {
            throw new IllegalArgumentException(
                    "'" + uri + "' is not an s3:// URI; expected s3://bucket/key");
        }
        String rest = uri.substring("s3://".length());
        int slash = rest.indexOf('/');
        if (slash <= 0 || slash == rest.length() - 1) {
            throw new IllegalArgumentException(
                    "'" + uri + "' has no object key; expected s3://bucket/key");
        }
        return new S3Uri(rest.substring(0, slash), rest.substring(slash + 1));
    }

    public boolean isPrefix() {
        return key.endsWith("/");
    }

    /** The URI of {@code relative} below this prefix. */
    public S3Uri resolve(String relative) {
        String base = isPrefix() ? key : key + "/";
        return new S3Uri(bucket, base + relative);
    }

    @Override
    public String toString() {
        return "s3://" + bucket + "/" + key;
    }
}
