package io.tuneline.common.store;

import io.minio.BucketExistsArgs;
import io.minio.CopyObjectArgs;
import io.minio.CopySource;
import io.minio.GetObjectArgs;
import io.minio.GetPresignedObjectUrlArgs;
import io.minio.ListObjectsArgs;
import io.minio.MakeBucketArgs;
import io.minio.MinioAsyncClient;
import io.minio.MinioClient;
import io.minio.PutObjectArgs;
import io.minio.RemoveObjectArgs;
import io.minio.Result;
import io.minio.StatObjectArgs;
import io.minio.UploadObjectArgs;
import io.minio.errors.ErrorResponseException;
import io.minio.http.Method;
import io.minio.messages.Item;
import io.tuneline.proto.v1.ArtifactRef;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import okhttp3.OkHttpClient;

/**
 * The platform's object store (MinIO in clusters, S3Proxy on one machine, any S3 server), through
 * the MinIO Java client. Writes stream and compute the sha256 on the way; reads can verify it.
 * Close it: the HTTP client's threads otherwise keep the JVM alive for a minute.
 */
public final class ArtifactStore implements AutoCloseable {
    private static final org.jboss.logging.Logger LOG =
            org.jboss.logging.Logger.getLogger(ArtifactStore.class);

    private final StoreSettings settings;
    private final OkHttpClient http;
    private final MinioClient client;

    /** The same client's asynchronous side: the part requests a file sends several at once. */
    private final MinioAsyncClient parts;

    public ArtifactStore(StoreSettings settings) {
        this.settings = settings;
        OkHttpClient.Builder builder =
                new OkHttpClient.Builder()
                        .connectTimeout(Duration.ofSeconds(10))
                        .readTimeout(Duration.ofMinutes(5))
                        .writeTimeout(Duration.ofMinutes(5));
        settings.caFile().ifPresent(ca -> trust(builder, ca));
        this.http = builder.build();
        this.client =
                MinioClient.builder()
                        .endpoint(settings.endpoint())
                        .credentials(settings.accessKey(), settings.secretKey())
                        // A fixed region spares a GetBucketLocation round trip on first use.
                        .region(settings.region())
                        .httpClient(http)
                        .build();
        this.parts =
                MinioAsyncClient.builder()
                        .endpoint(settings.endpoint())
                        .credentials(settings.accessKey(), settings.secretKey())
                        .region(settings.region())
                        .httpClient(http)
                        .build();
    }

    /**
     * Makes {@code builder} trust the certificates in the PEM file {@code ca} as well as the JVM's
     * own authorities, so that one setting serves a private CA without losing the public ones.
     */
    private static void trust(OkHttpClient.Builder builder, java.nio.file.Path ca) {
        try {
            java.util.Collection<? extends java.security.cert.Certificate> certificates;
            try (InputStream in = java.nio.file.Files.newInputStream(ca)) {
                certificates =
                        java.security.cert.CertificateFactory.getInstance("X.509")
                                .generateCertificates(in);
            }
            if (certificates.isEmpty()) {
                throw new IllegalArgumentException(
                        "tuneline.store.ca-file " + ca + " holds no PEM certificate");
            }
            java.security.KeyStore trusted =
                    java.security.KeyStore.getInstance(java.security.KeyStore.getDefaultType());
            trusted.load(null, null);
            int n = 0;
            for (java.security.cert.X509Certificate c : trustManager(null).getAcceptedIssuers()) {
                trusted.setCertificateEntry("jvm-" + n++, c);
            }
            for (java.security.cert.Certificate c : certificates) {
                trusted.setCertificateEntry("ca-file-" + n++, c);
            }
            javax.net.ssl.X509TrustManager manager = trustManager(trusted);
            javax.net.ssl.SSLContext tls = javax.net.ssl.SSLContext.getInstance("TLS");
            tls.init(null, new javax.net.ssl.TrustManager[] {manager}, null);
            builder.sslSocketFactory(tls.getSocketFactory(), manager);
        } catch (java.nio.file.NoSuchFileException e) {
            throw new IllegalArgumentException("tuneline.store.ca-file " + ca + " does not exist");
        } catch (IOException | java.security.GeneralSecurityException e) {
            throw new IllegalArgumentException(
                    "tuneline.store.ca-file " + ca + " cannot be read as PEM certificates: " + e,
                    e);
        }
    }

    private static javax.net.ssl.X509TrustManager trustManager(java.security.KeyStore store)
            throws java.security.GeneralSecurityException {
        javax.net.ssl.TrustManagerFactory factory =
                javax.net.ssl.TrustManagerFactory.getInstance(
                        javax.net.ssl.TrustManagerFactory.getDefaultAlgorithm());
        factory.init(store);
        for (javax.net.ssl.TrustManager m : factory.getTrustManagers()) {
            if (m instanceof javax.net.ssl.X509TrustManager x) {
                return x;
            }
        }
        throw new java.security.GeneralSecurityException("no X.509 trust manager");
    }

    /** The platform bucket's name. */
    public String bucket() {
        return settings.bucket();
    }

    /** The URI of {@code key} in the platform bucket. */
    public S3Uri uri(String key) {
        return new S3Uri(settings.bucket(), key);
    }

    /**
     * Creates the platform bucket when it does not exist yet. Tried once: it runs at start-up,
     * which a store outage must not hold up.
     */
    public void ensureBucket() {
        String bucket = settings.bucket();
        call(
                "create bucket " + bucket,
                false,
                () -> {
                    if (!client.bucketExists(BucketExistsArgs.builder().bucket(bucket).build())) {
                        client.makeBucket(MakeBucketArgs.builder().bucket(bucket).build());
                    }
                    return null;
                });
    }

    /** Whether the platform bucket answers; for readiness checks, so tried once. */
    public boolean bucketExists() {
        return call(
                "check bucket " + settings.bucket(),
                false,
                () ->
                        client.bucketExists(
                                BucketExistsArgs.builder().bucket(settings.bucket()).build()));
    }

    /**
     * Streams {@code in} to {@code uri} and returns its claim check. The sha256 is computed while
     * the bytes go out, so the data is read once and never held whole in memory; objects larger
     * than one part (or of unknown size, {@code size = -1}) are sent as a multipart upload.
     */
    public ArtifactRef put(S3Uri uri, InputStream in, long size, String contentType) {
        // A stream read once cannot be sent again: no retries (files and byte arrays have them).
        return putStream(uri, () -> in, size, contentType, false);
    }

    private ArtifactRef putStream(
            S3Uri uri,
            java.util.function.Supplier<InputStream> source,
            long size,
            String contentType,
            boolean retry) {
        MessageDigest[] digest = new MessageDigest[1];
        CountingInputStream[] counted = new CountingInputStream[1];
        call(
                "write " + uri,
                retry,
                () -> {
                    digest[0] = sha256();
                    counted[0] =
                            new CountingInputStream(new DigestInputStream(source.get(), digest[0]));
                    return client.putObject(
                            PutObjectArgs.builder().bucket(uri.bucket()).object(uri.key()).stream(
                                            counted[0], size, size < 0 ? settings.partSize() : -1)
                                    .contentType(contentType)
                                    .build());
                });
        return ArtifactRef.newBuilder()
                .setUri(uri.toString())
                .setSha256(HexFormat.of().formatHex(digest[0].digest()))
                .setSizeBytes(counted[0].count())
                .setContentType(contentType)
                .build();
    }

    /**
     * Uploads a local file: in one request up to the configured part size, in parts of that size
     * above it, {@code upload-concurrency} of them at once. Each part is read from the file when it
     * is sent, so no part is held in the heap (a stream's parts are: 5 MiB and more each, which a
     * small heap feels); the sha256 comes from one read of the file before.
     */
    public ArtifactRef put(S3Uri uri, java.nio.file.Path file, String contentType) {
        MessageDigest digest = sha256();
        long size;
        try (InputStream in =
                new DigestInputStream(java.nio.file.Files.newInputStream(file), digest)) {
            size = in.transferTo(java.io.OutputStream.nullOutputStream());
        } catch (IOException e) {
            throw new ArtifactStoreException(
                    "cannot read " + file + " to store it at " + uri + ": " + e.getMessage(), e);
        }
        long partSize = partSizeFor(size);
        if (size > partSize && settings.uploadConcurrency() > 1) {
            call(
                    "write " + uri,
                    () -> {
                        putInParts(uri, file, size, partSize, contentType);
                        return null;
                    });
        } else {
            call(
                    "write " + uri,
                    () ->
                            client.uploadObject(
                                    UploadObjectArgs.builder()
                                            .bucket(uri.bucket())
                                            .object(uri.key())
                                            .filename(file.toString(), partSize)
                                            .contentType(contentType)
                                            .build()));
        }
        return ArtifactRef.newBuilder()
                .setUri(uri.toString())
                .setSha256(HexFormat.of().formatHex(digest.digest()))
                .setSizeBytes(size)
                .setContentType(contentType)
                .build();
    }

    /**
     * A multipart upload of {@code file} with up to {@code upload-concurrency} parts in flight,
     * each hashed (the request's signature) and sent on a thread of its own: the MinIO client sends
     * a file's parts one after the other, and one connection seldom fills the link to a store. A
     * failure aborts the upload, so the store keeps no orphaned parts, and the caller's retry
     * starts a new one.
     */
    void putInParts(
            S3Uri uri, java.nio.file.Path file, long size, long partSize, String contentType)
            throws Exception {
        com.google.common.collect.Multimap<String, String> headers =
                com.google.common.collect.HashMultimap.create();
        headers.put("Content-Type", contentType);
        String uploadId =
                parts.createMultipartUploadAsync(
                                uri.bucket(), settings.region(), uri.key(), headers, null)
                        .get()
                        .result()
                        .uploadId();
        int count = (int) ((size + partSize - 1) / partSize);
        java.util.concurrent.ExecutorService senders =
                java.util.concurrent.Executors.newFixedThreadPool(
                        Math.min(settings.uploadConcurrency(), count),
                        r -> {
                            Thread t = new Thread(r, "tuneline-store-upload");
                            t.setDaemon(true);
                            return t;
                        });
        try {
            List<java.util.concurrent.Future<io.minio.messages.Part>> sent = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                int number = i + 1;
                long offset = i * partSize;
                long length = Math.min(partSize, size - offset);
                sent.add(
                        senders.submit(
                                () -> {
                                    try (java.io.RandomAccessFile part =
                                            new java.io.RandomAccessFile(file.toFile(), "r")) {
                                        part.seek(offset);
                                        String etag =
                                                parts.uploadPartAsync(
                                                                uri.bucket(),
                                                                settings.region(),
                                                                uri.key(),
                                                                part,
                                                                length,
                                                                uploadId,
                                                                number,
                                                                null,
                                                                null)
                                                        .get()
                                                        .etag();
                                        return new io.minio.messages.Part(number, etag);
                                    }
                                }));
            }
            io.minio.messages.Part[] done = new io.minio.messages.Part[count];
            for (int i = 0; i < count; i++) {
                done[i] = sent.get(i).get();
            }
            parts.completeMultipartUploadAsync(
                            uri.bucket(), settings.region(), uri.key(), uploadId, done, null, null)
                    .get();
        } catch (Exception e) {
            Exception cause = unwrapped(e);
            senders.shutdownNow();
            try {
                parts.abortMultipartUploadAsync(
                                uri.bucket(), settings.region(), uri.key(), uploadId, null, null)
                        .get();
            } catch (Exception abort) {
                cause.addSuppressed(abort);
            }
            throw cause;
        } finally {
            senders.shutdownNow();
        }
    }

    /**
     * The failure inside a future's wrapping, so that {@link #call} judges (and reports) the
     * store's own answer: an unreachable store is retried, a refusal is not.
     */
    private static Exception unwrapped(Exception e) {
        Throwable t = e;
        while ((t instanceof java.util.concurrent.ExecutionException
                        || t instanceof java.util.concurrent.CompletionException)
                && t.getCause() != null) {
            t = t.getCause();
        }
        return t instanceof Exception x ? x : e;
    }

    /**
     * The configured part size, or the least that keeps {@code size} within S3's 10,000 parts.
     * (MinIO's own choice for a file, without one, is 5 MiB parts: a 76 MB file in 15 parts.)
     */
    private long partSizeFor(long size) {
        return partSize(settings.partSize(), size);
    }

    static long partSize(long configured, long size) {
        return Math.max(configured, (size + MAX_PARTS - 1) / MAX_PARTS);
    }

    /** Writes a small object from memory. */
    public ArtifactRef put(S3Uri uri, byte[] bytes, String contentType) {
        return putStream(
                uri,
                () -> new java.io.ByteArrayInputStream(bytes),
                bytes.length,
                contentType,
                true);
    }

    /** Opens an object for streaming; the caller closes the stream. */
    public InputStream get(S3Uri uri) {
        return call(
                "read " + uri,
                () ->
                        client.getObject(
                                GetObjectArgs.builder()
                                        .bucket(uri.bucket())
                                        .object(uri.key())
                                        .build()));
    }

    /**
     * Opens the object provided it still has the ETag {@code etag} (If-Match; no condition when
     * null); throws {@link ObjectChangedException} when it has been replaced since that ETag was
     * seen. With {@code length >= 0}, only its first {@code length} bytes.
     */
    public InputStream get(S3Uri uri, String etag, long length) {
        return call(
                "read " + uri + (etag == null ? "" : " (ETag " + etag + ")"),
                () -> {
                    GetObjectArgs.Builder args =
                            GetObjectArgs.builder().bucket(uri.bucket()).object(uri.key());
                    if (etag != null) {
                        args.matchETag(etag);
                    }
                    if (length >= 0) {
                        args.offset(0L).length(length);
                    }
                    return client.getObject(args.build());
                });
    }

    /**
     * Opens the object a claim check points at; reading it to the end throws {@link
     * ChecksumMismatchException} when the bytes do not match the claim's sha256.
     */
    public InputStream get(ArtifactRef ref) {
        S3Uri uri = S3Uri.parse(ref.getUri());
        return new VerifyingInputStream(get(uri), uri, ref.getSha256());
    }

    /** An object's size in bytes and its ETag, as the store reports them. */
    public record Stat(long size, String etag) {}

    /** Size in bytes, or empty when the object does not exist. */
    public Optional<Long> size(S3Uri uri) {
        return stat(uri).map(Stat::size);
    }

    /** Size and ETag, or empty when the object does not exist. */
    public Optional<Stat> stat(S3Uri uri) {
        return call(
                "stat " + uri,
                true,
                () -> {
                    try {
                        var r =
                                client.statObject(
                                        StatObjectArgs.builder()
                                                .bucket(uri.bucket())
                                                .object(uri.key())
                                                .build());
                        return Optional.of(new Stat(r.size(), r.etag()));
                    } catch (ErrorResponseException e) {
                        if ("NoSuchKey".equals(e.errorResponse().code())) {
                            return Optional.<Stat>empty();
                        }
                        throw e;
                    }
                });
    }

    public boolean exists(S3Uri uri) {
        return size(uri).isPresent();
    }

    /** Keys below a prefix, recursively, in the store's order. */
    public List<S3Uri> list(S3Uri prefix) {
        return call(
                "list " + prefix,
                () -> {
                    List<S3Uri> keys = new ArrayList<>();
                    for (Result<Item> r :
                            client.listObjects(
                                    ListObjectsArgs.builder()
                                            .bucket(prefix.bucket())
                                            .prefix(prefix.key())
                                            .recursive(true)
                                            .build())) {
                        keys.add(new S3Uri(prefix.bucket(), r.get().objectName()));
                    }
                    return keys;
                });
    }

    /**
     * Copies the objects {@code names} below the prefix {@code directory} ({@code
     * s3://bucket/dir/}, the trailing slash optional) into the local directory {@code into},
     * keeping their names; names the store does not have are skipped. Matches the engine's model
     * fetcher, so services pass {@code store::download} to the model catalogue.
     */
    public void download(String directory, List<String> names, java.nio.file.Path into)
            throws java.io.IOException {
        S3Uri prefix = S3Uri.parse(directory);
        java.nio.file.Files.createDirectories(into);
        for (String name : names) {
            S3Uri uri = prefix.resolve(name);
            if (!exists(uri)) {
                continue;
            }
            java.nio.file.Path target = into.resolve(name);
            java.nio.file.Path partial = into.resolve(name + ".part");
            try (InputStream in = get(uri)) {
                java.nio.file.Files.copy(
                        in, partial, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            }
            java.nio.file.Files.move(
                    partial, target, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /** The largest object one S3 CopyObject request may copy. */
    public static final long MAX_COPY_BYTES = 5L << 30;

    /**
     * Copies an object inside the store, server-side: no byte passes through this process. Up to
     * {@link #MAX_COPY_BYTES} (S3's limit for one CopyObject); the caller streams larger ones.
     */
    public void copy(S3Uri from, S3Uri to) {
        copy(from, to, null);
    }

    /**
     * {@link #copy(S3Uri, S3Uri)} provided the source still has the ETag {@code etag} (any version
     * when null); throws {@link ObjectChangedException} when it has been replaced since that ETag
     * was seen.
     */
    public void copy(S3Uri from, S3Uri to, String etag) {
        CopySource.Builder source = CopySource.builder().bucket(from.bucket()).object(from.key());
        if (etag != null) {
            source.matchETag(etag);
        }
        call(
                "copy " + from + (etag == null ? "" : " (ETag " + etag + ")") + " to " + to,
                true,
                () ->
                        client.copyObject(
                                CopyObjectArgs.builder()
                                        .bucket(to.bucket())
                                        .object(to.key())
                                        .source(source.build())
                                        .build()));
    }

    public void delete(S3Uri uri) {
        call(
                "delete " + uri,
                () -> {
                    client.removeObject(
                            RemoveObjectArgs.builder()
                                    .bucket(uri.bucket())
                                    .object(uri.key())
                                    .build());
                    return null;
                });
    }

    /** A URL that lets anyone holding it download the object with a plain HTTP GET until expiry. */
    public String presignedGet(S3Uri uri, Duration expiry) {
        return call(
                "presign " + uri,
                () ->
                        client.getPresignedObjectUrl(
                                GetPresignedObjectUrlArgs.builder()
                                        .method(Method.GET)
                                        .bucket(uri.bucket())
                                        .object(uri.key())
                                        .expiry((int) expiry.toSeconds(), TimeUnit.SECONDS)
                                        .build()));
    }

    @Override
    public void close() {
        http.dispatcher().executorService().shutdown();
        http.connectionPool().evictAll();
    }

    private interface StoreCall<T> {
        T run() throws Exception;
    }

    private <T> T call(String what, StoreCall<T> action) {
        return call(what, true, action);
    }

    /**
     * Runs {@code action}; while the store cannot be reached (or answers 5xx or SlowDown) and
     * {@code retry} allows, tries again with exponential backoff for {@code settings.retryFor()},
     * so an outage of the store delays work instead of failing it. Refusals (403, NoSuchKey, a bad
     * request) fail at once.
     */
    private <T> T call(String what, boolean retry, StoreCall<T> action) {
        long deadline = System.nanoTime() + settings.retryFor().toNanos();
        long backoffMillis = 200;
        int failures = 0;
        while (true) {
            try {
                T result = action.run();
                if (failures > 0) {
                    LOG.infof(
                            "object store answers again: %s succeeded after %d retries",
                            what, failures);
                }
                return result;
            } catch (Exception e) {
                if (!retry || !transient_(e) || System.nanoTime() >= deadline) {
                    throw failure(what, e, failures);
                }
                if (failures++ == 0) {
                    LOG.warnf(
                            "cannot %s (%s); retrying for up to %s while the store is unavailable",
                            what, brief(e), settings.retryFor());
                }
                try {
                    Thread.sleep(
                            Math.min(
                                    backoffMillis,
                                    Math.max(1, (deadline - System.nanoTime()) / 1_000_000)));
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw failure(what, e, failures);
                }
                backoffMillis = Math.min(backoffMillis * 2, MAX_BACKOFF_MILLIS);
            }
        }
    }

    private static final long MAX_BACKOFF_MILLIS = 10_000;
    private static final long MAX_PARTS = 10_000;

    /** Whether trying the same request again later may succeed: the store was out of reach. */
    static boolean transient_(Exception e) {
        if (e instanceof ErrorResponseException r) {
            String code = r.errorResponse().code();
            int status = r.response() == null ? 0 : r.response().code();
            return status >= 500
                    || "SlowDown".equals(code)
                    || "ServiceUnavailable".equals(code)
                    || "InternalError".equals(code)
                    || "RequestTimeout".equals(code);
        }
        if (e instanceof io.minio.errors.ServerException s) {
            return s.statusCode() >= 500;
        }
        return e instanceof IOException;
    }

    private ArtifactStoreException failure(String what, Exception e, int retries) {
        String after = retries == 0 ? "" : " (after " + retries + " retries)";
        if (e instanceof ErrorResponseException r
                && "PreconditionFailed".equals(r.errorResponse().code())) {
            return new ObjectChangedException(
                    "cannot "
                            + what
                            + " at "
                            + settings.endpoint()
                            + ": it has been replaced since"
                            + " ("
                            + brief(e)
                            + ")",
                    e);
        }
        return new ArtifactStoreException(
                "cannot " + what + " at " + settings.endpoint() + after + ": " + brief(e), e);
    }

    private static String brief(Exception e) {
        if (e instanceof ErrorResponseException r) {
            return r.errorResponse().code() + " " + r.errorResponse().message();
        }
        return e.toString();
    }

    /** A fresh SHA-256 digest, the hash every stored artifact is recorded with. */
    public static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required by every JVM", e);
        }
    }

    private static final class VerifyingInputStream extends FilterInputStream {
        private final MessageDigest digest = sha256();
        private final S3Uri uri;
        private final String expected;
        private boolean verified;

        VerifyingInputStream(InputStream in, S3Uri uri, String expected) {
            super(in);
            this.uri = uri;
            this.expected = expected;
        }

        @Override
        public int read() throws IOException {
            int b = super.read();
            if (b >= 0) {
                digest.update((byte) b);
            } else {
                verify();
            }
            return b;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            int n = super.read(b, off, len);
            if (n > 0) {
                digest.update(b, off, n);
            } else if (n < 0) {
                verify();
            }
            return n;
        }

        @Override
        public long skip(long n) throws IOException {
            throw new IOException("skipping would defeat the sha256 check of " + uri);
        }

        private void verify() throws ChecksumMismatchException {
            if (verified) {
                return;
            }
            verified = true;
            String actual = HexFormat.of().formatHex(digest.digest());
            if (!actual.equals(expected)) {
                throw new ChecksumMismatchException(uri, expected, actual);
            }
        }
    }
}
