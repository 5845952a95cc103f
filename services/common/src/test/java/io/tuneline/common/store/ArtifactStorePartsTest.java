package io.tuneline.common.store;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tuneline.proto.v1.ArtifactRef;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A file sent as several parts at once, against a real S3 protocol server (S3Proxy). */
class ArtifactStorePartsTest {
    private static final String KEY = "key";
    private static final String SECRET = "secret";
    private static LocalS3 s3;
    private static String endpoint;

    @BeforeAll
    static void start() throws Exception {
        int port = LocalS3.freePort();
        endpoint = "http://127.0.0.1:" + port;
        s3 = LocalS3.start(port, KEY, SECRET, Optional.empty(), null);
    }

    @AfterAll
    static void stop() throws Exception {
        s3.close();
    }

    private static ArtifactStore store(int concurrency) {
        return new ArtifactStore(
                LocalS3.settings(endpoint, KEY, SECRET, Duration.ZERO)
                        .withUploadConcurrency(concurrency));
    }

    /** 17.5 MiB of seeded bytes: four parts of 5 MiB, the last one short. */
    private static Path file(Path dir) throws Exception {
        byte[] bytes = new byte[(int) (3.5 * StoreSettings.MIN_PART_SIZE)];
        SplittableRandom random = new SplittableRandom(11);
        for (int i = 0; i < bytes.length; i++) {
            bytes[i] = (byte) random.nextInt(256);
        }
        Path file = dir.resolve("train.jsonl");
        Files.write(file, bytes);
        return file;
    }

    @Test
    void partsSentAtOnceMakeTheObjectThatPartsSentInTurnMake(@TempDir Path dir) throws Exception {
        Path file = file(dir);
        ArtifactRef atOnce;
        try (ArtifactStore store = store(4)) {
            atOnce = store.put(store.uri("at-once.jsonl"), file, "application/jsonl");
        }
        String inTurnEtag;
        try (ArtifactStore store = store(1)) {
            store.put(store.uri("in-turn.jsonl"), file, "application/jsonl");
            inTurnEtag = store.stat(store.uri("in-turn.jsonl")).orElseThrow().etag();
        }

        try (ArtifactStore store = store(1)) {
            // A multipart ETag is the MD5 of the parts' MD5s and their count: the same parts, in
            // the same order, whichever finished first.
            String etag = store.stat(store.uri("at-once.jsonl")).orElseThrow().etag();
            assertThat(etag).endsWith("-4").isEqualTo(inTurnEtag);
            assertThat(atOnce.getSizeBytes()).isEqualTo(Files.size(file));
            try (InputStream in = store.get(atOnce)) {
                assertThat(in.readAllBytes()).isEqualTo(Files.readAllBytes(file));
            }
        }
        assertThat(
                        s3.blobStore()
                                .blobMetadata(LocalS3.BUCKET, "at-once.jsonl")
                                .getContentMetadata()
                                .getContentType())
                .isEqualTo("application/jsonl");
    }

    @Test
    void aPartThatCannotBeSentAbortsTheUploadAndLeavesNothing(@TempDir Path dir) throws Exception {
        Path file = file(dir);
        long size = Files.size(file);
        try (ArtifactStore store = store(4)) {
            S3Uri uri = store.uri("broken.jsonl");
            // The last part asks for more bytes than the file has: its read fails after the other
            // parts were sent.
            assertThatThrownBy(
                            () ->
                                    store.putInParts(
                                            uri,
                                            file,
                                            size + 1024,
                                            StoreSettings.MIN_PART_SIZE,
                                            "application/jsonl"))
                    .isInstanceOf(java.io.IOException.class);
            assertThat(store.exists(uri)).isFalse();
        }
        assertThat(s3.blobStore().listMultipartUploads(LocalS3.BUCKET)).isEmpty();
    }
}
