package io.tuneline.testing;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.ArtifactStoreException;
import io.tuneline.common.store.ChecksumMismatchException;
import io.tuneline.common.store.S3Uri;
import io.tuneline.proto.v1.ArtifactRef;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The artifact store against a real S3 protocol server (S3Proxy), as the services use it. */
class ArtifactStoreRoundTripTest {
    private static final long FIFTY_MIB = 50L * 1024 * 1024;

    private static InMemoryS3Server server;
    private static ArtifactStore store;

    @BeforeAll
    static void start() {
        server = InMemoryS3Server.start();
        store = server.newStore("tuneline");
    }

    @AfterAll
    static void stop() {
        store.close();
        server.close();
    }

    @Test
    void fiftyMebibytesOfUnknownSizeRoundTripWithMatchingSha256() throws IOException {
        String expected = sha256Of(new PseudoRandomStream(FIFTY_MIB, 7));
        S3Uri uri = store.uri("runs/job-1/model/model.safetensors");

        // Unknown size forces a streamed multipart upload (10 parts of 5 MiB).
        ArtifactRef ref =
                store.put(
                        uri, new PseudoRandomStream(FIFTY_MIB, 7), -1, "application/octet-stream");

        assertThat(ref.getUri()).isEqualTo("s3://tuneline/runs/job-1/model/model.safetensors");
        assertThat(ref.getSizeBytes()).isEqualTo(FIFTY_MIB);
        assertThat(ref.getSha256()).isEqualTo(expected);
        assertThat(store.size(uri)).contains(FIFTY_MIB);
        try (InputStream in = store.get(ref)) {
            assertThat(sha256Of(in)).isEqualTo(expected);
        }
    }

    /** A file larger than one part goes up as a multipart upload read from the file itself. */
    @Test
    void aFileOfTwelveMebibytesRoundTripsWithMatchingSha256(@TempDir Path dir) throws IOException {
        long size = 12L * 1024 * 1024 + 5;
        Path file = dir.resolve("train.jsonl");
        try (InputStream in = new PseudoRandomStream(size, 11)) {
            Files.copy(in, file);
        }
        String expected;
        try (InputStream in = Files.newInputStream(file)) {
            expected = sha256Of(in);
        }
        S3Uri uri = store.uri("datasets/job-2/prepared/train.jsonl");

        ArtifactRef ref = store.put(uri, file, "application/jsonl");

        assertThat(ref.getSizeBytes()).isEqualTo(size);
        assertThat(ref.getSha256()).isEqualTo(expected);
        assertThat(ref.getContentType()).isEqualTo("application/jsonl");
        assertThat(store.size(uri)).contains(size);
        try (InputStream in = store.get(ref)) {
            assertThat(sha256Of(in)).isEqualTo(expected);
        }
        assertThatThrownBy(() -> store.put(uri, dir.resolve("missing"), "application/jsonl"))
                .isInstanceOf(ArtifactStoreException.class)
                .hasMessageContaining("missing");
    }

    /**
     * The configured part size decides: the same 12 MiB file goes up in one request where parts are
     * 16 MiB, in three where they are 5 MiB (a multipart upload's ETag ends in its part count).
     */
    @Test
    void aFileNoLargerThanOnePartGoesUpInOneRequest(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("validation.jsonl");
        try (InputStream in = new PseudoRandomStream(12L * 1024 * 1024, 13)) {
            Files.copy(in, file);
        }
        S3Uri inParts = store.uri("datasets/job-3/prepared/parts.jsonl");
        S3Uri whole = store.uri("datasets/job-3/prepared/whole.jsonl");

        store.put(inParts, file, "application/jsonl");
        ArtifactRef ref;
        try (ArtifactStore large = server.newStore("tuneline", 16L * 1024 * 1024)) {
            ref = large.put(whole, file, "application/jsonl");
        }

        assertThat(store.stat(inParts).orElseThrow().etag()).endsWith("-3");
        assertThat(store.stat(whole).orElseThrow().etag()).doesNotContain("-");
        try (InputStream in = store.get(ref)) {
            assertThat(sha256Of(in)).isEqualTo(ref.getSha256());
        }
    }

    @Test
    void presignedUrlServesTheObjectToAPlainHttpClient() throws Exception {
        S3Uri uri = store.uri("reports/job-2/evaluation.md");
        ArtifactRef ref =
                store.put(uri, "# Report\n".getBytes(StandardCharsets.UTF_8), "text/markdown");

        String url = store.presignedGet(uri, Duration.ofMinutes(5));
        HttpResponse<byte[]> response =
                HttpClient.newHttpClient()
                        .send(
                                HttpRequest.newBuilder(URI.create(url)).GET().build(),
                                HttpResponse.BodyHandlers.ofByteArray());

        assertThat(response.statusCode()).isEqualTo(200);
        assertThat(sha256Of(new java.io.ByteArrayInputStream(response.body())))
                .isEqualTo(ref.getSha256());
    }

    @Test
    void readingAnObjectThatChangedAfterItsClaimWasIssuedFails() throws IOException {
        S3Uri uri = store.uri("datasets/job-3/raw/data.jsonl");
        ArtifactRef claim = store.put(uri, "{\"text\":\"a\"}\n".getBytes(), "application/jsonl");
        store.put(uri, "{\"text\":\"b\"}\n".getBytes(), "application/jsonl");

        try (InputStream in = store.get(claim)) {
            assertThatThrownBy(in::readAllBytes)
                    .isInstanceOf(ChecksumMismatchException.class)
                    .hasMessageContaining(uri.toString())
                    .hasMessageContaining(claim.getSha256());
        }
    }

    @Test
    void listsAndDeletesBelowAPrefixAndSaysWhichObjectIsMissing() {
        store.put(store.uri("runs/job-4/checkpoints/step-1/a"), new byte[] {1}, "x/y");
        store.put(store.uri("runs/job-4/checkpoints/step-2/a"), new byte[] {2}, "x/y");
        assertThat(store.list(store.uri("runs/job-4/checkpoints/")))
                .extracting(S3Uri::key)
                .containsExactly(
                        "runs/job-4/checkpoints/step-1/a", "runs/job-4/checkpoints/step-2/a");

        store.delete(store.uri("runs/job-4/checkpoints/step-1/a"));
        assertThat(store.exists(store.uri("runs/job-4/checkpoints/step-1/a"))).isFalse();
        assertThatThrownBy(() -> store.get(store.uri("runs/job-4/nothing")).close())
                .isInstanceOf(ArtifactStoreException.class)
                .hasMessageContaining("s3://tuneline/runs/job-4/nothing")
                .hasMessageContaining("NoSuchKey");
    }

    private static String sha256Of(InputStream in) throws IOException {
        MessageDigest digest;
        try {
            digest = MessageDigest.getInstance("SHA-256");
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        try (in;
                OutputStream sink =
                        new DigestOutputStream(OutputStream.nullOutputStream(), digest)) {
            in.transferTo(sink);
        }
        return HexFormat.of().formatHex(digest.digest());
    }

    /** Reproducible bytes produced on the fly, so 50 MiB never sit in memory. */
    private static final class PseudoRandomStream extends InputStream {
        private final SplittableRandom random;
        private long remaining;

        PseudoRandomStream(long size, long seed) {
            this.remaining = size;
            this.random = new SplittableRandom(seed);
        }

        @Override
        public int read() {
            if (remaining <= 0) {
                return -1;
            }
            remaining--;
            return random.nextInt(256);
        }

        @Override
        public int read(byte[] b, int off, int len) {
            if (remaining <= 0) {
                return -1;
            }
            int n = (int) Math.min(len, remaining);
            for (int i = 0; i < n; i++) {
                b[off + i] = (byte) random.nextInt(256);
            }
            remaining -= n;
            return n;
        }
    }
}
