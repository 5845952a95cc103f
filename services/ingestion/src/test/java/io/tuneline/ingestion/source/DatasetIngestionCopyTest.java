package io.tuneline.ingestion.source;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.ObjectChangedException;
import io.tuneline.common.store.S3Uri;
import io.tuneline.ingestion.bench.IngestionThroughput;
import io.tuneline.ingestion.metrics.IngestionMetrics;
import io.tuneline.ingestion.validate.DatasetInvalidException;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.Task;
import io.tuneline.testing.InMemoryS3Server;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An {@code s3://} dataset in the platform's store (S3Proxy on disk, as {@code ./platform} runs
 * it): the raw copy and validation run side by side; records that are the raw copy byte for byte
 * are named by it (no records.jsonl), any others are written to records.jsonl, and a rejected
 * dataset leaves no records and no marker.
 */
class DatasetIngestionCopyTest {
    @TempDir static Path dir;
    static InMemoryS3Server server;
    static ArtifactStore store;
    static DatasetIngestion ingestion;

    @BeforeAll
    static void start() {
        server = InMemoryS3Server.onDisk(dir);
        store = server.newStore("tuneline");
        ingestion =
                new DatasetIngestion(
                        store,
                        IngestionThroughput.config(),
                        new IngestionMetrics(new SimpleMeterRegistry()));
    }

    @AfterAll
    static void stop() {
        store.close();
        server.close();
    }

    @Test
    void aCanonicalDatasetIsCopiedOnceAndItsRawCopyIsItsRecords() throws Exception {
        String data = canonical(0, 3000);
        DatasetIngested ingested = ingest("copy-1", data);
        String sha = sha256(data);
        assertThat(ingested.getRaw().getUri())
                .isEqualTo(store.uri("datasets/copy-1/raw/copy-1.jsonl").toString());
        assertThat(ingested.getRaw().getSha256()).isEqualTo(sha);
        assertThat(ingested.getRaw().getSizeBytes())
                .isEqualTo(data.getBytes(StandardCharsets.UTF_8).length);
        assertThat(ingested.getRecords()).isEqualTo(ingested.getRaw());
        assertThat(readVerified(ingested.getRecords())).isEqualTo(data);
        // One copy of the bytes and the marker, nothing else: no records.jsonl beside raw/.
        assertThat(store.list(store.uri("datasets/copy-1/")))
                .containsExactlyInAnyOrder(
                        store.uri("datasets/copy-1/raw/copy-1.jsonl"),
                        store.uri(DatasetIngestion.marker("copy-1")));
        assertThat(ingested.getValidRecords()).isEqualTo(3000);
        assertThat(ingested.getLabelCountsMap()).containsEntry("pos", 1500L);
    }

    @Test
    void aRedeliveredJobFindsTheStoredResultWhereverItsRecordsAre() throws Exception {
        DatasetIngested canonical = ingest("again-1", canonical(0, 50));
        DatasetIngested rewritten =
                ingest("again-2", canonical(0, 50).replace("\",\"label\":", "\", \"label\": "));
        assertThat(canonical.getRecords()).isEqualTo(canonical.getRaw());
        assertThat(rewritten.getRecords().getUri())
                .isEqualTo(store.uri("datasets/again-2/records.jsonl").toString());
        // JobIntake re-announces what previous() returns instead of ingesting again: it must name
        // the same records, and they must still read back under their sha256.
        for (DatasetIngested first : java.util.List.of(canonical, rewritten)) {
            DatasetIngested stored = ingestion.previous(first.getJobId()).orElseThrow();
            assertThat(stored).isEqualTo(first);
            assertThat(readVerified(stored.getRecords())).isEqualTo(canonical(0, 50));
        }
    }

    @Test
    void recordsThatStopBeingCanonicalPartWayAreWrittenWholeAndCanonical() throws Exception {
        // The first line starts the copy of the records; line 2001 is spaced out, so they are
        // the 2000 lines before it (read again from the store), that line compacted, and the rest.
        String spaced = "{\"text\": \"spaced out\", \"label\": \"neg\"}\n";
        String data = canonical(0, 2000) + spaced + canonical(2001, 1000) + "\n";
        DatasetIngested ingested = ingest("copy-2", data);
        String expected =
                canonical(0, 2000)
                        + "{\"text\":\"spaced out\",\"label\":\"neg\"}\n"
                        + canonical(2001, 1000);
        assertThat(ingested.getRecords().getUri())
                .isEqualTo(store.uri("datasets/copy-2/records.jsonl").toString());
        assertThat(readVerified(ingested.getRecords())).isEqualTo(expected);
        assertThat(ingested.getRecords().getSha256()).isEqualTo(sha256(expected));
        assertThat(ingested.getRecords().getSizeBytes())
                .isEqualTo(expected.getBytes(StandardCharsets.UTF_8).length);
        assertThat(ingested.getRaw().getSha256()).isEqualTo(sha256(data));
        assertThat(read(ingested.getRaw().getUri())).isEqualTo(data);
    }

    @Test
    void aTrailingBlankLineIsDroppedFromTheRecords() throws Exception {
        String data = canonical(0, 10) + "\n";
        DatasetIngested ingested = ingest("copy-3", data);
        // Not the raw bytes any more, so written out.
        assertThat(ingested.getRecords().getUri())
                .isEqualTo(store.uri("datasets/copy-3/records.jsonl").toString());
        assertThat(readVerified(ingested.getRecords())).isEqualTo(canonical(0, 10));
    }

    @Test
    void aRejectedDatasetLeavesNoRecordsAndNoMarkerBehind() {
        // Canonical up to the bad line, and spaced out after it: neither kind of records is kept.
        String data =
                canonical(0, 500)
                        + "not json\n"
                        + canonical(501, 10).replace("\",\"label\":", "\", \"label\": ");
        assertThatThrownBy(() -> ingest("copy-4", data))
                .isInstanceOf(DatasetInvalidException.class)
                .hasMessageContaining("first at line 501: bad JSON");
        assertThat(store.exists(store.uri("datasets/copy-4/records.jsonl"))).isFalse();
        assertThat(store.exists(store.uri(DatasetIngestion.marker("copy-4")))).isFalse();
        assertThat(ingestion.previous("copy-4")).isEmpty();
    }

    @Test
    void readsAndCopiesOnTheConditionOfAnETagRefuseAReplacedObject() throws Exception {
        S3Uri uri = store.uri("uploads/changing.jsonl");
        store.put(uri, "first\n".getBytes(StandardCharsets.UTF_8), "application/jsonl");
        String before = store.stat(uri).orElseThrow().etag();
        try (InputStream in = store.get(uri, before, 3)) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8)).isEqualTo("fir");
        }
        store.put(uri, "second\n".getBytes(StandardCharsets.UTF_8), "application/jsonl");
        assertThatThrownBy(() -> store.get(uri, before, -1).close())
                .isInstanceOf(ObjectChangedException.class)
                .hasMessageContaining(uri.toString());
        assertThatThrownBy(() -> store.copy(uri, store.uri("elsewhere"), before))
                .isInstanceOf(ObjectChangedException.class);
        assertThat(store.exists(store.uri("elsewhere"))).isFalse();
        String now = store.stat(uri).orElseThrow().etag();
        try (InputStream in = store.get(uri, now, -1)) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8)).isEqualTo("second\n");
        }
    }

    private static DatasetIngested ingest(String jobId, String data) throws Exception {
        S3Uri source = store.uri("uploads/" + jobId + ".jsonl");
        store.put(source, data.getBytes(StandardCharsets.UTF_8), "application/jsonl");
        return ingestion.ingest(
                JobRequested.newBuilder()
                        .setJobId(jobId)
                        .setTask(Task.TASK_SEQUENCE_CLASSIFICATION)
                        .setDataset(DatasetSpec.newBuilder().setUri(source.toString()))
                        .build());
    }

    /** Compact records as ingestion writes them, with an escape and a non-ASCII letter. */
    private static String canonical(int from, int n) {
        StringBuilder s = new StringBuilder();
        for (int i = from; i < from + n; i++) {
            s.append("{\"text\":\"review ")
                    .append(i)
                    .append(" caf\u00e9 \\\"quoted\\\"\",\"label\":\"")
                    .append(i % 2 == 0 ? "pos" : "neg")
                    .append("\"}\n");
        }
        return s.toString();
    }

    /** Through the claim check: reading to the end fails unless the bytes have its sha256. */
    private static String readVerified(io.tuneline.proto.v1.ArtifactRef ref) throws Exception {
        try (InputStream in = store.get(ref)) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    private static String read(String uri) throws Exception {
        try (InputStream in = store.get(S3Uri.parse(uri))) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    private static String sha256(String s) throws Exception {
        return HexFormat.of()
                .formatHex(
                        MessageDigest.getInstance("SHA-256")
                                .digest(s.getBytes(StandardCharsets.UTF_8)));
    }
}
