package io.tuneline.preprocessing.prepare;

import static org.assertj.core.api.Assertions.assertThat;

import io.tuneline.common.store.ArtifactStore;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.SplitSpec;
import io.tuneline.testing.InMemoryS3Server;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class DatasetPreparationTest {
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

    /**
     * A distinct word per number: "review 1" and "review 10" would be near-duplicates of each
     * other, which this data is not meant to have.
     */
    private static String code(int i) {
        return Long.toString(Math.abs(NearDuplicates.mix(i + 1)), 36);
    }

    /** 70 "pos" and 30 "neg" texts, plus 5 exact and 1 whitespace/NFC duplicates and 2 empty. */
    private static DatasetIngested ingested(String jobId, SplitSpec split) {
        StringBuilder data = new StringBuilder();
        for (int i = 0; i < 100; i++) {
            data.append("{\"text\": \"review ")
                    .append(code(i))
                    .append("\", \"label\": \"")
                    .append(i < 70 ? "pos" : "neg")
                    .append("\"}\n");
        }
        for (int i = 0; i < 5; i++) {
            data.append("{\"text\": \"review ").append(code(i)).append("\", \"label\": \"pos\"}\n");
        }
        data.append("{\"text\": \"  review   " + code(7) + " \", \"label\": \"pos\"}\n");
        // Casing and punctuation differ: a near-duplicate, not an exact one.
        data.append(
                "{\"text\": \"REVIEW "
                        + code(3).toUpperCase(java.util.Locale.ROOT)
                        + "!!\", \"label\": \"pos\"}\n");
        data.append(
                "{\"text\": \"   \", \"label\": \"pos\"}\n{\"text\": \"\\t\", \"label\": \"neg\"}\n");
        // "café" written with a combining accent equals the precomposed one after NFC.
        data.append(
                "{\"text\": \"caf\\u00e9\", \"label\": \"neg\"}\n{\"text\": \"cafe\\u0301\", \"label\": \"neg\"}\n");
        ArtifactRef raw =
                store.put(
                        store.uri("datasets/" + jobId + "/raw/data.jsonl"),
                        data.toString().getBytes(StandardCharsets.UTF_8),
                        "application/jsonl");
        return DatasetIngested.newBuilder()
                .setJobId(jobId)
                .setJob(
                        JobRequested.newBuilder()
                                .setJobId(jobId)
                                .setBaseModel(
                                        io.tuneline.proto.v1.BaseModel.newBuilder()
                                                .setRef("minilm-l6"))
                                .setDataset(DatasetSpec.newBuilder().setUri("s3://x/y"))
                                .setSplit(split))
                .setRaw(raw)
                .build();
    }

    @Test
    void cleansDeduplicatesAndSplitsStratifiedByLabel() throws Exception {
        DatasetPrepared p =
                new DatasetPreparation(store)
                        .prepare(ingested("prep-1", SplitSpec.getDefaultInstance()));

        assertThat(p.getStats().getInputRecords()).isEqualTo(111);
        assertThat(p.getStats().getNearDuplicatesRemoved()).isEqualTo(1);
        assertThat(p.getStats().getExactDuplicatesRemoved())
                .isEqualTo(7); // 5 exact, 1 whitespace, 1 NFC
        assertThat(p.getStats().getEmptyRemoved()).isEqualTo(2);
        assertThat(p.getLabelsList()).containsExactly("neg", "pos");
        // neg: 31 (30 + café) -> test 3, validation 3, train 25; pos: 70 -> 7, 7, 56.
        assertThat(p.getStats().getLabelCountsBySplitOrThrow("test").getCountsMap())
                .containsEntry("neg", 3L)
                .containsEntry("pos", 7L);
        assertThat(p.getStats().getLabelCountsBySplitOrThrow("validation").getCountsMap())
                .containsEntry("neg", 3L)
                .containsEntry("pos", 7L);
        assertThat(p.getCounts().getTrain()).isEqualTo(81);

        Set<String> train = lines(p.getTrain());
        Set<String> test = lines(p.getTest());
        assertThat(train).doesNotContainAnyElementsOf(test);
        assertThat(p.getManifest().getUri())
                .isEqualTo("s3://tuneline/datasets/prep-1/prepared/manifest.json");
    }

    @Test
    void batchesWorkedOnInParallelGiveTheSameSplitsAsOneBatch() throws Exception {
        // Batches of 3 records on every core: duplicates of a record land in other batches, which
        // workers finish in any order; decisions and writes must still follow record order.
        DatasetPrepared parallel =
                new DatasetPreparation(
                                store,
                                new DatasetPreparation.Settings(
                                        NearDuplicates.Settings.DEFAULTS, true, 3))
                        .prepare(ingested("prep-parallel", SplitSpec.getDefaultInstance()));
        DatasetPrepared whole =
                new DatasetPreparation(
                                store,
                                new DatasetPreparation.Settings(
                                        NearDuplicates.Settings.DEFAULTS, true, 1000))
                        .prepare(ingested("prep-whole", SplitSpec.getDefaultInstance()));
        assertThat(parallel.getStats()).isEqualTo(whole.getStats());
        assertThat(parallel.getCounts()).isEqualTo(whole.getCounts());
        for (var split :
                java.util.List.of(
                        java.util.List.of(parallel.getTrain(), whole.getTrain()),
                        java.util.List.of(parallel.getValidation(), whole.getValidation()),
                        java.util.List.of(parallel.getTest(), whole.getTest()))) {
            try (InputStream a = store.get(split.get(0));
                    InputStream b = store.get(split.get(1))) {
                assertThat(a.readAllBytes()).isEqualTo(b.readAllBytes());
            }
        }
    }

    @Test
    void ingestionsCanonicalRecordsAreReadInsteadOfTheRawInput() throws Exception {
        // The raw input was a CSV with its own column names; ingestion wrote the canonical
        // {"text", "label"} records beside it, and those are what preprocessing must read.
        ArtifactRef raw =
                store.put(
                        store.uri("datasets/canon-1/raw/reviews.csv"),
                        "review,sentiment\nx,y\n".getBytes(StandardCharsets.UTF_8),
                        "text/csv");
        StringBuilder records = new StringBuilder();
        for (int i = 0; i < 20; i++) {
            records.append("{\"text\":\"review ")
                    .append(i)
                    .append("\",\"label\":\"")
                    .append(i % 2 == 0 ? "pos" : "neg")
                    .append("\"}\n");
        }
        ArtifactRef canonical =
                store.put(
                        store.uri("datasets/canon-1/records.jsonl"),
                        records.toString().getBytes(StandardCharsets.UTF_8),
                        "application/jsonl");
        DatasetIngested ingested =
                DatasetIngested.newBuilder()
                        .setJobId("canon-1")
                        .setJob(
                                JobRequested.newBuilder()
                                        .setJobId("canon-1")
                                        .setBaseModel(
                                                io.tuneline.proto.v1.BaseModel.newBuilder()
                                                        .setRef("minilm-l6"))
                                        .setDataset(
                                                DatasetSpec.newBuilder()
                                                        .setUri("s3://x/reviews.csv")
                                                        .setFields(
                                                                io.tuneline.proto.v1.FieldMapping
                                                                        .newBuilder()
                                                                        .setText("review")
                                                                        .setLabel("sentiment"))))
                        .setRaw(raw)
                        .setRecords(canonical)
                        .build();

        DatasetPrepared p = new DatasetPreparation(store).prepare(ingested);
        assertThat(p.getStats().getInputRecords()).isEqualTo(20);
        assertThat(p.getLabelsList()).containsExactly("neg", "pos");
        assertThat(p.getRaw()).isEqualTo(raw);
    }

    @Test
    void theSameSeedGivesByteIdenticalSplitsAndAnotherSeedDoesNot() throws Exception {
        SplitSpec split =
                SplitSpec.newBuilder()
                        .setTrain(0.6)
                        .setValidation(0.2)
                        .setTest(0.2)
                        .setSeed(7)
                        .build();
        DatasetPrepared a = new DatasetPreparation(store).prepare(ingested("seed-a", split));
        DatasetPrepared b = new DatasetPreparation(store).prepare(ingested("seed-b", split));
        DatasetPrepared c =
                new DatasetPreparation(store)
                        .prepare(ingested("seed-c", split.toBuilder().setSeed(8).build()));
        assertThat(a.getTrain().getSha256()).isEqualTo(b.getTrain().getSha256());
        assertThat(a.getTest().getSha256()).isEqualTo(b.getTest().getSha256());
        assertThat(c.getTest().getSha256()).isNotEqualTo(a.getTest().getSha256());
    }

    private static Set<String> lines(ArtifactRef ref) throws Exception {
        try (InputStream in = store.get(ref)) {
            return new HashSet<>(
                    new String(in.readAllBytes(), StandardCharsets.UTF_8).lines().toList());
        }
    }
}
