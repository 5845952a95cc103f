package io.tuneline.ingestion.intake;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;
import static org.mockito.ArgumentMatchers.argThat;
import static org.mockito.Mockito.atLeastOnce;
import static org.mockito.Mockito.times;
import static org.mockito.Mockito.verify;

import com.google.protobuf.util.Timestamps;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.mockito.InjectSpy;
import io.tuneline.common.event.CloudEventHeaders;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.event.IncomingEvent;
import io.tuneline.common.messaging.DeadLetters;
import io.tuneline.common.observability.MetricNames;
import io.tuneline.common.topic.Topics;
import io.tuneline.ingestion.metrics.IngestionMetrics;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.JobStatus;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.KafkaTestClient;
import io.tuneline.testing.S3ProxyResource;
import jakarta.inject.Inject;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.mockito.ArgumentCaptor;

@QuarkusTest
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class JobRequestedConsumerTest {
    private static final Duration WAIT = Duration.ofSeconds(30);

    @InjectSpy JobIntake intake;
    @Inject MeterRegistry registry;
    @Inject io.tuneline.common.store.ArtifactStore store;

    private KafkaTestClient kafka;

    @BeforeEach
    void connect() {
        kafka = KafkaTestClient.forApplication();
    }

    @AfterEach
    void disconnect() {
        kafka.close();
    }

    @Test
    void jobPublishedAsPlainJsonLikeKcatIsReadFieldForField() {
        // No headers and no key: exactly what `kcat -P -t finetune.jobs.requested` sends.
        kafka.publish(Topics.JOBS_REQUESTED, null, TestJobs.fullJobJson(), Map.of());

        JobRequested received = awaitAccepted("sentiment-lora-001").payload();
        assertThat(received).isEqualTo(TestJobs.fullJob());
    }

    @Test
    void jobPublishedAsBinaryProtobufIsReadBack() {
        JobRequested job = TestJobs.fullJob().toBuilder().setJobId("binary-job-1").build();
        kafka.publish(
                Topics.JOBS_REQUESTED,
                job.getJobId(),
                job.toByteArray(),
                Map.of(
                        CloudEventHeaders.CONTENT_TYPE,
                        "application/protobuf",
                        CloudEventHeaders.TYPE,
                        "tuneline.v1.JobRequested",
                        CloudEventHeaders.ID,
                        UUID.randomUUID().toString(),
                        CloudEventHeaders.SUBJECT,
                        job.getJobId()));

        IncomingEvent<JobRequested> event = awaitAccepted("binary-job-1");
        assertThat(event.payload()).isEqualTo(job);
        assertThat(event.contentType().mediaType()).isEqualTo("application/protobuf");
    }

    @Test
    void malformedRecordsGoToTheDeadLetterTopicWithTheirReasonAndTheConsumerGoesOn() {
        kafka.publish(Topics.JOBS_REQUESTED, "broken-1", "{\"job_id\": \"broken-1\", ");
        kafka.publish(
                Topics.JOBS_REQUESTED,
                "broken-2",
                "{\"job_id\": \"broken-2\", \"hyperparameters\": {\"epochs\": \"many\"}}");
        kafka.publish(
                Topics.JOBS_REQUESTED,
                "broken-3",
                "{\"job_id\": \"broken-3\", \"learning_rte\": 0.1}");
        String next = "after-the-bad-ones";
        kafka.publish(Topics.JOBS_REQUESTED, next, json(TestJobs.minimalJob(next)));

        List<ConsumerRecord<String, byte[]>> dead =
                kafka.readUntil(
                        Topics.dlq(Topics.JOBS_REQUESTED), records -> records.size() >= 3, WAIT);
        // Jobs are handled side by side (the stage pool), so dead letters need not keep the order.
        assertThat(dead)
                .extracting(ConsumerRecord::key)
                .containsExactlyInAnyOrder("broken-1", "broken-2", "broken-3");
        Map<String, ConsumerRecord<String, byte[]>> byKey = new java.util.HashMap<>();
        dead.forEach(r -> byKey.put(r.key(), r));
        assertThat(KafkaTestClient.header(byKey.get("broken-1"), DeadLetters.REASON))
                .contains("finetune.jobs.requested-0@")
                .contains("not a valid tuneline.v1.JobRequested");
        assertThat(KafkaTestClient.header(byKey.get("broken-2"), DeadLetters.REASON))
                .contains("many");
        assertThat(KafkaTestClient.header(byKey.get("broken-3"), DeadLetters.REASON))
                .contains("learning_rte");
        // The original bytes are kept, so the record can be fixed and replayed.
        assertThat(new String(byKey.get("broken-2").value(), StandardCharsets.UTF_8))
                .contains("\"many\"");

        awaitAccepted(next);
    }

    @Test
    void redeliveredEventIsNotProcessedTwice() {
        String jobId = "redelivered-1";
        Map<String, String> headers =
                Map.of(
                        CloudEventHeaders.ID,
                        "event-" + UUID.randomUUID(),
                        CloudEventHeaders.TYPE,
                        "tuneline.v1.JobRequested",
                        CloudEventHeaders.SUBJECT,
                        jobId);
        byte[] value = json(TestJobs.minimalJob(jobId));
        double duplicatesBefore = duplicates();

        kafka.publish(Topics.JOBS_REQUESTED, jobId, value, headers);
        kafka.publish(Topics.JOBS_REQUESTED, jobId, value, headers);

        await().atMost(WAIT).until(() -> duplicates() > duplicatesBefore);
        verify(intake, times(1)).accept(argThat(e -> e.jobId().equals(jobId)));
    }

    @Test
    void anotherJobUnderAUsedIdIsIgnoredAndTheFirstJobsDatasetStays() throws Exception {
        JobRequested first = TestJobs.fullJob().toBuilder().setJobId("reused-1").build();
        kafka.publish(Topics.JOBS_REQUESTED, first.getJobId(), json(first));
        DatasetIngested ingested = ingested("reused-1");
        byte[] raw = bytes("datasets/reused-1/raw/inline.jsonl");
        double before = registry.counter(IngestionMetrics.REUSED_JOB_IDS).count();

        JobRequested other =
                first.toBuilder().setDisplayName("someone else's job with the same id").build();
        kafka.publish(Topics.JOBS_REQUESTED, other.getJobId(), json(other));
        await().atMost(WAIT)
                .until(() -> registry.counter(IngestionMetrics.REUSED_JOB_IDS).count() > before);
        // The same request sent again (a client's retry) is the same job: announced again.
        kafka.publish(
                Topics.JOBS_REQUESTED,
                first.getJobId(),
                json(first.toBuilder().setRequestedAt(Timestamps.now()).build()));
        List<ConsumerRecord<String, byte[]>> announced =
                kafka.readUntil(
                        Topics.DATASETS_INGESTED,
                        rs -> rs.stream().filter(r -> "reused-1".equals(r.key())).count() >= 2,
                        WAIT);

        assertThat(bytes("datasets/reused-1/raw/inline.jsonl")).isEqualTo(raw);
        assertThat(
                        announced.stream()
                                .filter(r -> "reused-1".equals(r.key()))
                                .map(
                                        r ->
                                                codec().decode(
                                                                r,
                                                                DatasetIngested
                                                                        .getDefaultInstance())
                                                        .payload()
                                                        .getJob()
                                                        .getDisplayName()))
                .hasSize(2)
                .containsOnly(ingested.getJob().getDisplayName());
        assertThat(
                        kafka
                                .readUntil(
                                        Topics.JOBS_STATUS,
                                        rs -> rs.stream().anyMatch(r -> "reused-1".equals(r.key())),
                                        WAIT)
                                .stream()
                                .filter(r -> "reused-1".equals(r.key()))
                                .map(r -> KafkaTestClient.header(r, CloudEventHeaders.TYPE)))
                .doesNotContain("tuneline.v1.JobFailed");
    }

    private byte[] bytes(String key) throws java.io.IOException {
        try (var in = store.get(store.uri(key))) {
            return in.readAllBytes();
        }
    }

    @Test
    void jobWithAnInvalidSpecFailsWithEveryProblemListed() {
        JobRequested job =
                JobRequested.newBuilder()
                        .setJobId("no-task-no-data")
                        .setBaseModel(TestJobs.minimalJob("x").getBaseModel())
                        .build();
        kafka.publish(Topics.JOBS_REQUESTED, job.getJobId(), json(job));

        ConsumerRecord<String, byte[]> failure =
                statusEvent(job.getJobId(), "tuneline.v1.JobFailed");
        JobFailed failed = codec().decode(failure, JobFailed.getDefaultInstance()).payload();
        assertThat(failed.getErrorCode()).isEqualTo("JOB_INVALID");
        assertThat(failed.getDetailsList())
                .anySatisfy(d -> assertThat(d).startsWith("task:"))
                .anySatisfy(d -> assertThat(d).startsWith("dataset:"));
        assertThat(failed.getMessage()).contains("2 problems");
    }

    @Test
    void aComparisonWithAMethodBesideItAndTheSameMethodTwiceIsRefusedNamingBoth() {
        io.tuneline.proto.v1.MethodSpec lora =
                io.tuneline.proto.v1.MethodSpec.newBuilder()
                        .setLora(io.tuneline.proto.v1.LoraParams.newBuilder().setRank(8))
                        .build();
        JobRequested job =
                TestJobs.minimalJob("compare-invalid-1").toBuilder()
                        .setMethod(lora)
                        .addCompareMethods(lora)
                        .addCompareMethods(lora)
                        .build();
        kafka.publish(Topics.JOBS_REQUESTED, job.getJobId(), json(job));

        JobFailed failed =
                codec().decode(
                                statusEvent(job.getJobId(), "tuneline.v1.JobFailed"),
                                JobFailed.getDefaultInstance())
                        .payload();
        assertThat(failed.getErrorCode()).isEqualTo("JOB_INVALID");
        assertThat(failed.getDetailsList())
                .anySatisfy(d -> assertThat(d).startsWith("method and compare_methods: both set"))
                .anySatisfy(
                        d ->
                                assertThat(d)
                                        .startsWith(
                                                "compare_methods[1]: the same lora method and"
                                                        + " parameters as compare_methods[0]"));
    }

    @Test
    void anInlineDatasetIsStoredValidatedAndAnnounced() {
        JobRequested job = TestJobs.fullJob().toBuilder().setJobId("inline-1").build();
        kafka.publish(Topics.JOBS_REQUESTED, job.getJobId(), json(job));

        ConsumerRecord<String, byte[]> status =
                statusEvent("inline-1", "tuneline.v1.JobStatusChanged");
        assertThat(KafkaTestClient.header(status, CloudEventHeaders.SOURCE))
                .isEqualTo("/tuneline/ingestion");
        assertThat(
                        codec().decode(status, JobStatusChanged.getDefaultInstance())
                                .payload()
                                .getStatus())
                .isEqualTo(JobStatus.JOB_STATUS_INGESTING);
        DatasetIngested ingested = ingested("inline-1");
        assertThat(ingested.getValidRecords()).isEqualTo(2);
        assertThat(ingested.getLabelCountsMap()).containsEntry("pos", 1L).containsEntry("neg", 1L);
        assertThat(ingested.getRaw().getUri())
                .isEqualTo("s3://tuneline-test/datasets/inline-1/raw/inline.jsonl");
        assertThat(ingested.getJob()).isEqualTo(job);
    }

    @Test
    void anS3DatasetIsCopiedUnchangedWithItsSha256AndBadLinesAreSkippedWithinThePolicy()
            throws Exception {
        String data = goodLines(60) + "{\"text\": \"no label here\"}\n" + goodLines(39);
        var source =
                store.put(
                        store.uri("uploads/reviews-1.jsonl"),
                        data.getBytes(StandardCharsets.UTF_8),
                        "application/jsonl");
        JobRequested job =
                TestJobs.minimalJob("s3-skip-1").toBuilder()
                        .setDataset(
                                io.tuneline.proto.v1.DatasetSpec.newBuilder()
                                        .setUri("s3://tuneline-test/uploads/reviews-1.jsonl")
                                        .setBadRecords(
                                                io.tuneline.proto.v1.BadRecordPolicy.newBuilder()
                                                        .setAction(
                                                                io.tuneline.proto.v1.BadRecordAction
                                                                        .BAD_RECORD_ACTION_SKIP)
                                                        .setMaxBadFraction(0.05)))
                        .build();
        kafka.publish(Topics.JOBS_REQUESTED, job.getJobId(), json(job));

        DatasetIngested ingested = ingested("s3-skip-1");
        assertThat(ingested.getRaw().getSha256()).isEqualTo(source.getSha256());
        assertThat(ingested.getValidRecords()).isEqualTo(99);
        assertThat(ingested.getBadRecordSamplesList())
                .singleElement()
                .satisfies(
                        b -> {
                            assertThat(b.getLine()).isEqualTo(61);
                            assertThat(b.getReason()).isEqualTo("missing field 'label'");
                        });
    }

    @Test
    void anS3DatasetLosesNoRecordAndKeepsTheirOrderWhetherItIsAlreadyCanonicalOrNot()
            throws Exception {
        // Compact lines as ingestion writes them: the raw copy is the records, no second object.
        // The same records spaced out (as Python's json.dumps writes them) are re-written to
        // records.jsonl.
        StringBuilder compact = new StringBuilder();
        for (int i = 0; i < 5000; i++) {
            compact.append("{\"text\":\"review ")
                    .append(i)
                    .append(" \u00e9 \\\"quoted\\\"\",\"label\":\"")
                    .append(i % 3 == 0 ? "pos" : "neg")
                    .append("\"}\n");
        }
        String spaced = compact.toString().replace("\",\"label\":", "\", \"label\": ");
        for (var c :
                java.util.Map.of("canonical-1", compact.toString(), "spaced-1", spaced)
                        .entrySet()) {
            var source =
                    store.put(
                            store.uri("uploads/" + c.getKey() + ".jsonl"),
                            c.getValue().getBytes(StandardCharsets.UTF_8),
                            "application/jsonl");
            JobRequested job =
                    TestJobs.minimalJob(c.getKey()).toBuilder()
                            .setDataset(
                                    io.tuneline.proto.v1.DatasetSpec.newBuilder()
                                            .setUri(
                                                    "s3://tuneline-test/uploads/"
                                                            + c.getKey()
                                                            + ".jsonl"))
                            .build();
            kafka.publish(Topics.JOBS_REQUESTED, job.getJobId(), json(job));

            DatasetIngested ingested = ingested(c.getKey());
            assertThat(ingested.getRaw().getSha256()).isEqualTo(source.getSha256());
            assertThat(ingested.getRaw().getSizeBytes()).isEqualTo(source.getSizeBytes());
            try (var in = store.get(ingested.getRaw())) {
                assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8))
                        .isEqualTo(c.getValue());
            }
            assertThat(ingested.getValidRecords()).isEqualTo(5000);
            assertThat(ingested.getRecords().getUri())
                    .as(c.getKey())
                    .isEqualTo(
                            c.getKey().equals("canonical-1")
                                    ? ingested.getRaw().getUri()
                                    : "s3://tuneline-test/datasets/spaced-1/records.jsonl");
            // Read through the claim check: the records' sha256 is verified at the end.
            try (var in = store.get(ingested.getRecords())) {
                assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8))
                        .as(c.getKey())
                        .isEqualTo(compact.toString());
            }
        }
    }

    @Test
    void badLinesFailTheJobWithTheirNumbersAndReasonsUnderTheDefaultPolicy() {
        double emptyBefore = rejected("empty_text");
        double badJsonBefore = rejected("bad_json");
        double wrongTypeBefore = rejected("wrong_type");
        String data =
                goodLines(3)
                        + "{\"text\": \"\", \"label\": \"pos\"}\n"
                        + "not json\n"
                        + "{\"text\": 5, \"label\": \"neg\"}\n";
        store.put(
                store.uri("uploads/bad-1.jsonl"),
                data.getBytes(StandardCharsets.UTF_8),
                "application/jsonl");
        JobRequested job =
                TestJobs.minimalJob("s3-bad-1").toBuilder()
                        .setDataset(
                                io.tuneline.proto.v1.DatasetSpec.newBuilder()
                                        .setUri("s3://tuneline-test/uploads/bad-1.jsonl"))
                        .build();
        kafka.publish(Topics.JOBS_REQUESTED, job.getJobId(), json(job));

        JobFailed failed =
                codec().decode(
                                statusEvent("s3-bad-1", "tuneline.v1.JobFailed"),
                                JobFailed.getDefaultInstance())
                        .payload();
        assertThat(failed.getErrorCode()).isEqualTo("DATASET_INVALID");
        assertThat(failed.getMessage())
                .startsWith("3 of 6 records are invalid, first at line 4: empty text");
        // Every rejection counted by its kind, for the dashboards.
        assertThat(rejected("empty_text") - emptyBefore).isEqualTo(1);
        assertThat(rejected("bad_json") - badJsonBefore).isEqualTo(1);
        assertThat(rejected("wrong_type") - wrongTypeBefore).isEqualTo(1);
        assertThat(failed.getDetailsList())
                .containsExactly(
                        "line 4: empty text",
                        "line 5: bad JSON: Unrecognized token 'not': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')",
                        "line 6: field 'text' is number, not a string");
    }

    private JobRequested s3Job(
            String jobId, String key, io.tuneline.proto.v1.DatasetSpec.Builder spec) {
        return TestJobs.minimalJob(jobId).toBuilder()
                .setDataset(spec.setUri("s3://tuneline-test/" + key))
                .build();
    }

    private List<String> canonicalRecords(DatasetIngested ingested) throws Exception {
        try (var in = store.get(ingested.getRecords())) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8).lines().toList();
        }
    }

    @Test
    void aGzippedJsonLinesDatasetIsDetectedStoredUnchangedAndReadThrough() throws Exception {
        var bytes = new java.io.ByteArrayOutputStream();
        try (var gz = new java.util.zip.GZIPOutputStream(bytes)) {
            gz.write(goodLines(20).getBytes(StandardCharsets.UTF_8));
        }
        // The name says nothing: gzip is recognised by its magic bytes.
        var source =
                store.put(
                        store.uri("uploads/reviews-gz"),
                        bytes.toByteArray(),
                        "application/octet-stream");
        kafka.publish(
                Topics.JOBS_REQUESTED,
                "gz-1",
                json(
                        s3Job(
                                "gz-1",
                                "uploads/reviews-gz",
                                io.tuneline.proto.v1.DatasetSpec.newBuilder())));

        DatasetIngested ingested = ingested("gz-1");
        assertThat(ingested.getGzip()).isTrue();
        assertThat(ingested.getFormat())
                .isEqualTo(io.tuneline.proto.v1.DatasetFormat.DATASET_FORMAT_JSONL);
        assertThat(ingested.getFormatDetected()).isTrue();
        assertThat(ingested.getRaw().getSha256()).isEqualTo(source.getSha256());
        assertThat(ingested.getValidRecords()).isEqualTo(20);
        assertThat(canonicalRecords(ingested))
                .hasSize(20)
                .allMatch(l -> l.startsWith("{\"text\":"));
    }

    @Test
    void aCsvDatasetWithItsOwnColumnNamesIsDetectedAndCanonicalised() throws Exception {
        String csv =
                "id,review,sentiment\n"
                        + "1,\"Great, really great\",pos\n"
                        + "2,\"Awful \"\"service\"\", never again\",neg\n"
                        + "3,\"Two\nlines\",pos\n"
                        + "4,Fine,\n";
        store.put(
                store.uri("uploads/reviews.csv"), csv.getBytes(StandardCharsets.UTF_8), "text/csv");
        var spec =
                io.tuneline.proto.v1.DatasetSpec.newBuilder()
                        .setFields(
                                io.tuneline.proto.v1.FieldMapping.newBuilder()
                                        .setText("review")
                                        .setLabel("sentiment"))
                        .setBadRecords(
                                io.tuneline.proto.v1.BadRecordPolicy.newBuilder()
                                        .setAction(
                                                io.tuneline.proto.v1.BadRecordAction
                                                        .BAD_RECORD_ACTION_SKIP)
                                        .setMaxBadFraction(0.3));
        kafka.publish(
                Topics.JOBS_REQUESTED, "csv-1", json(s3Job("csv-1", "uploads/reviews.csv", spec)));

        DatasetIngested ingested = ingested("csv-1");
        assertThat(ingested.getFormat())
                .isEqualTo(io.tuneline.proto.v1.DatasetFormat.DATASET_FORMAT_CSV);
        assertThat(ingested.getFormatDetected()).isTrue();
        assertThat(ingested.getValidRecords()).isEqualTo(3);
        assertThat(ingested.getBadRecordSamplesList())
                .singleElement()
                .satisfies(
                        b -> {
                            assertThat(b.getLine()).isEqualTo(6); // the quoted newline takes a line
                            assertThat(b.getReason()).isEqualTo("missing field 'sentiment'");
                        });
        assertThat(canonicalRecords(ingested))
                .containsExactly(
                        "{\"text\":\"Great, really great\",\"label\":\"pos\"}",
                        "{\"text\":\"Awful \\\"service\\\", never again\",\"label\":\"neg\"}",
                        "{\"text\":\"Two\\nlines\",\"label\":\"pos\"}");
    }

    @Test
    void aTsvDatasetMissingTheTextColumnFailsNamingTheColumnsItHas() {
        store.put(
                store.uri("uploads/reviews.tsv"),
                "sentence\tlabel\nnice\tpos\nbad\tneg\n".getBytes(StandardCharsets.UTF_8),
                "text/tab-separated-values");
        kafka.publish(
                Topics.JOBS_REQUESTED,
                "tsv-1",
                json(
                        s3Job(
                                "tsv-1",
                                "uploads/reviews.tsv",
                                io.tuneline.proto.v1.DatasetSpec.newBuilder())));
        JobFailed failed =
                codec().decode(
                                statusEvent("tsv-1", "tuneline.v1.JobFailed"),
                                JobFailed.getDefaultInstance())
                        .payload();
        assertThat(failed.getMessage())
                .isEqualTo(
                        "the header row has no column 'text' (columns: sentence, label); name the"
                                + " columns in dataset.fields.text and dataset.fields.label");
    }

    @Test
    void plainTextIsRefusedForClassificationWithWhatToUseInstead() {
        store.put(
                store.uri("uploads/notes.txt"),
                "just some text\nand more\n".getBytes(StandardCharsets.UTF_8),
                "text/plain");
        kafka.publish(
                Topics.JOBS_REQUESTED,
                "txt-1",
                json(
                        s3Job(
                                "txt-1",
                                "uploads/notes.txt",
                                io.tuneline.proto.v1.DatasetSpec.newBuilder())));
        JobFailed failed =
                codec().decode(
                                statusEvent("txt-1", "tuneline.v1.JobFailed"),
                                JobFailed.getDefaultInstance())
                        .payload();
        assertThat(failed.getErrorCode()).isEqualTo("FORMAT_UNSUITABLE");
        assertThat(failed.getMessage()).contains("plain text has no labels").contains("CSV/TSV");
    }

    @Test
    void anInvalidUtf8ByteCostsItsLineOnlyAndTheLinesAfterItAreRead() throws Exception {
        double before = rejected("invalid_utf8");
        var data = new java.io.ByteArrayOutputStream();
        data.write(goodLines(1).getBytes(StandardCharsets.UTF_8));
        data.write("{\"text\": \"caf".getBytes(StandardCharsets.UTF_8));
        data.write(0xE9); // Latin-1 é: not UTF-8
        data.write("\", \"label\": \"pos\"}\n".getBytes(StandardCharsets.UTF_8));
        data.write(goodLines(2).getBytes(StandardCharsets.UTF_8));
        store.put(store.uri("uploads/latin1.jsonl"), data.toByteArray(), "application/jsonl");
        var spec =
                io.tuneline.proto.v1.DatasetSpec.newBuilder()
                        .setBadRecords(
                                io.tuneline.proto.v1.BadRecordPolicy.newBuilder()
                                        .setAction(
                                                io.tuneline.proto.v1.BadRecordAction
                                                        .BAD_RECORD_ACTION_SKIP)
                                        .setMaxBadFraction(0.5));
        kafka.publish(
                Topics.JOBS_REQUESTED,
                "utf8-1",
                json(s3Job("utf8-1", "uploads/latin1.jsonl", spec)));

        DatasetIngested ingested = ingested("utf8-1");
        assertThat(ingested.getValidRecords()).isEqualTo(3);
        assertThat(ingested.getBadRecordSamplesList())
                .singleElement()
                .satisfies(
                        b -> {
                            assertThat(b.getLine()).isEqualTo(2);
                            assertThat(b.getReason()).isEqualTo("invalid UTF-8");
                        });
        assertThat(canonicalRecords(ingested)).hasSize(3);
        assertThat(rejected("invalid_utf8") - before).isEqualTo(1);
    }

    @Test
    void aLineOverMaxLineBytesIsABadRecordAndReadingGoesOn() throws Exception {
        // The test profile allows lines of 4096 bytes.
        double before = rejected("line_too_long");
        String data =
                goodLines(2)
                        + "{\"text\": \""
                        + "y".repeat(5000)
                        + "\", \"label\": \"pos\"}\n"
                        + goodLines(97);
        store.put(
                store.uri("uploads/long-line.jsonl"),
                data.getBytes(StandardCharsets.UTF_8),
                "application/jsonl");
        var spec =
                io.tuneline.proto.v1.DatasetSpec.newBuilder()
                        .setBadRecords(
                                io.tuneline.proto.v1.BadRecordPolicy.newBuilder()
                                        .setAction(
                                                io.tuneline.proto.v1.BadRecordAction
                                                        .BAD_RECORD_ACTION_SKIP)
                                        .setMaxBadFraction(0.05));
        kafka.publish(
                Topics.JOBS_REQUESTED,
                "long-line-1",
                json(s3Job("long-line-1", "uploads/long-line.jsonl", spec)));

        DatasetIngested ingested = ingested("long-line-1");
        assertThat(ingested.getValidRecords()).isEqualTo(99);
        assertThat(ingested.getBadRecordSamplesList())
                .singleElement()
                .satisfies(
                        b -> {
                            assertThat(b.getLine()).isEqualTo(3);
                            assertThat(b.getReason()).isEqualTo("line longer than 4096 bytes");
                        });
        assertThat(rejected("line_too_long") - before).isEqualTo(1);
    }

    @Test
    void aCausalLmInstructionDatasetIsCanonicalisedWithItsShape() throws Exception {
        String data =
                "{\"instruction\": \"Translate to French\", \"input\": \"cat\","
                        + " \"output\": \"chat\", \"split\": \"Train\"}\n"
                        + "{\"instruction\": \"Say hi\", \"output\": \"hi\", \"split\": \"dev\"}\n";
        store.put(
                store.uri("uploads/alpaca.jsonl"),
                data.getBytes(StandardCharsets.UTF_8),
                "application/jsonl");
        JobRequested job =
                s3Job(
                                "lm-instruction-1",
                                "uploads/alpaca.jsonl",
                                io.tuneline.proto.v1.DatasetSpec.newBuilder()
                                        .setFields(
                                                io.tuneline.proto.v1.FieldMapping.newBuilder()
                                                        .setSplit("split")))
                        .toBuilder()
                        .setTask(io.tuneline.proto.v1.Task.TASK_CAUSAL_LM)
                        .build();
        kafka.publish(Topics.JOBS_REQUESTED, job.getJobId(), json(job));

        DatasetIngested ingested = ingested("lm-instruction-1");
        assertThat(ingested.getRecordShape()).isEqualTo("instruction");
        assertThat(ingested.getLabelCountsMap()).isEmpty();
        assertThat(ingested.getValidRecords()).isEqualTo(2);
        assertThat(canonicalRecords(ingested))
                .containsExactly(
                        "{\"prompt\":\"Translate to French\\n\\ncat\",\"completion\":\"chat\",\"split\":\"train\"}",
                        "{\"prompt\":\"Say hi\",\"completion\":\"hi\",\"split\":\"validation\"}");
    }

    @Test
    void plainTextIsReadAsTextRecordsForCausalLm() throws Exception {
        store.put(
                store.uri("uploads/story.txt"),
                "Once upon a time\n\nthey lived happily ever after\n"
                        .getBytes(StandardCharsets.UTF_8),
                "text/plain");
        JobRequested job =
                s3Job(
                                "lm-text-1",
                                "uploads/story.txt",
                                io.tuneline.proto.v1.DatasetSpec.newBuilder())
                        .toBuilder()
                        .setTask(io.tuneline.proto.v1.Task.TASK_CAUSAL_LM)
                        .build();
        kafka.publish(Topics.JOBS_REQUESTED, job.getJobId(), json(job));

        DatasetIngested ingested = ingested("lm-text-1");
        assertThat(ingested.getRecordShape()).isEqualTo("text");
        assertThat(ingested.getFormat())
                .isEqualTo(io.tuneline.proto.v1.DatasetFormat.DATASET_FORMAT_TEXT);
        assertThat(canonicalRecords(ingested))
                .containsExactly(
                        "{\"text\":\"Once upon a time\"}",
                        "{\"text\":\"they lived happily ever after\"}");
    }

    @Test
    void aChatDatasetGivenInlineIsAnnouncedAsChat() throws Exception {
        var message =
                com.google.protobuf.Struct.newBuilder()
                        .putFields(
                                "role",
                                com.google.protobuf.Value.newBuilder()
                                        .setStringValue("assistant")
                                        .build())
                        .putFields(
                                "content",
                                com.google.protobuf.Value.newBuilder()
                                        .setStringValue("Hello!")
                                        .build());
        var record =
                com.google.protobuf.Struct.newBuilder()
                        .putFields(
                                "messages",
                                com.google.protobuf.Value.newBuilder()
                                        .setListValue(
                                                com.google.protobuf.ListValue.newBuilder()
                                                        .addValues(
                                                                com.google.protobuf.Value
                                                                        .newBuilder()
                                                                        .setStructValue(message)))
                                        .build());
        JobRequested job =
                TestJobs.minimalJob("lm-chat-1").toBuilder()
                        .setTask(io.tuneline.proto.v1.Task.TASK_CAUSAL_LM)
                        .setDataset(
                                io.tuneline.proto.v1.DatasetSpec.newBuilder()
                                        .setInline(
                                                io.tuneline.proto.v1.InlineDataset.newBuilder()
                                                        .addRecords(record)))
                        .build();
        kafka.publish(Topics.JOBS_REQUESTED, job.getJobId(), json(job));

        DatasetIngested ingested = ingested("lm-chat-1");
        assertThat(ingested.getRecordShape()).isEqualTo("chat");
        assertThat(canonicalRecords(ingested))
                .containsExactly(
                        "{\"messages\":[{\"role\":\"assistant\",\"content\":\"Hello!\"}]}");
    }

    @Test
    void aMissingSourceObjectFailsTheJobNamingIt() {
        kafka.publish(Topics.JOBS_REQUESTED, "missing-1", json(TestJobs.minimalJob("missing-1")));
        JobFailed failed =
                codec().decode(
                                statusEvent("missing-1", "tuneline.v1.JobFailed"),
                                JobFailed.getDefaultInstance())
                        .payload();
        assertThat(failed.getErrorCode()).isEqualTo("SOURCE_NOT_FOUND");
        assertThat(failed.getMessage())
                .contains("s3://tuneline/uploads/reviews.jsonl does not exist");
    }

    @Test
    void anEmptyDatasetIsCalledEmptyNotUnlabelled() {
        store.put(store.uri("uploads/empty.jsonl"), new byte[0], "application/jsonl");
        store.put(
                store.uri("uploads/blank.jsonl"),
                "\n  \n\n".getBytes(StandardCharsets.UTF_8),
                "application/jsonl");
        for (String name : new String[] {"empty", "blank"}) {
            kafka.publish(
                    Topics.JOBS_REQUESTED,
                    name + "-1",
                    json(
                            s3Job(
                                    name + "-1",
                                    "uploads/" + name + ".jsonl",
                                    io.tuneline.proto.v1.DatasetSpec.newBuilder())));
            JobFailed failed =
                    codec().decode(
                                    statusEvent(name + "-1", "tuneline.v1.JobFailed"),
                                    JobFailed.getDefaultInstance())
                            .payload();
            assertThat(failed.getErrorCode()).as(name).isEqualTo("DATASET_EMPTY");
            assertThat(failed.getMessage())
                    .as(name)
                    .startsWith("the dataset is empty: s3://tuneline-test/uploads/" + name)
                    .doesNotContain("label");
        }
    }

    @Test
    void aDatasetOverTheSizeLimitFailsFastAndTheNextJobIsServed() {
        // The test profile allows 1,000,000 bytes.
        store.put(
                store.uri("uploads/huge.jsonl"),
                goodLines(30_000).getBytes(StandardCharsets.UTF_8),
                "application/jsonl");
        kafka.publish(
                Topics.JOBS_REQUESTED,
                "huge-1",
                json(
                        s3Job(
                                "huge-1",
                                "uploads/huge.jsonl",
                                io.tuneline.proto.v1.DatasetSpec.newBuilder())));
        JobFailed failed =
                codec().decode(
                                statusEvent("huge-1", "tuneline.v1.JobFailed"),
                                JobFailed.getDefaultInstance())
                        .payload();
        assertThat(failed.getErrorCode()).isEqualTo("DATASET_TOO_LARGE");
        assertThat(failed.getMessage())
                .contains("s3://tuneline-test/uploads/huge.jsonl")
                .contains("tuneline.ingestion.max-bytes (1000000 bytes)");

        store.put(
                store.uri("uploads/small.jsonl"),
                goodLines(10).getBytes(StandardCharsets.UTF_8),
                "application/jsonl");
        kafka.publish(
                Topics.JOBS_REQUESTED,
                "after-huge-1",
                json(
                        s3Job(
                                "after-huge-1",
                                "uploads/small.jsonl",
                                io.tuneline.proto.v1.DatasetSpec.newBuilder())));
        assertThat(ingested("after-huge-1").getValidRecords()).isEqualTo(10);
    }

    @Test
    void aGzipStreamThatInflatesPastTheSizeLimitFailsAsTooLarge() throws Exception {
        // About 9 KB of gzip that inflates to 9,000,000 bytes, nine times the test profile's
        // limit of 1,000,000; stored, it is far below it. Long lines, so the record limit is not
        // what stops it.
        var bytes = new java.io.ByteArrayOutputStream();
        byte[] line =
                ("{\"text\": \"" + "a long review ".repeat(150) + "\", \"label\": \"pos\"}\n")
                        .getBytes(StandardCharsets.UTF_8);
        try (var gz = new java.util.zip.GZIPOutputStream(bytes)) {
            for (long written = 0; written < 9_000_000; written += line.length) {
                gz.write(line);
            }
        }
        assertThat(bytes.size()).isLessThan(1_000_000 / 10);
        store.put(store.uri("uploads/bomb.jsonl.gz"), bytes.toByteArray(), "application/gzip");
        kafka.publish(
                Topics.JOBS_REQUESTED,
                "bomb-1",
                json(
                        s3Job(
                                "bomb-1",
                                "uploads/bomb.jsonl.gz",
                                io.tuneline.proto.v1.DatasetSpec.newBuilder())));
        JobFailed failed =
                codec().decode(
                                statusEvent("bomb-1", "tuneline.v1.JobFailed"),
                                JobFailed.getDefaultInstance())
                        .payload();
        assertThat(failed.getErrorCode()).isEqualTo("DATASET_TOO_LARGE");
        assertThat(failed.getMessage())
                .contains("the decompressed dataset")
                .contains("tuneline.ingestion.max-bytes (1000000 bytes)");
    }

    @Test
    void anHttpDatasetOnALoopbackAddressIsRefusedByDefault() {
        kafka.publish(
                Topics.JOBS_REQUESTED,
                "http-loopback-1",
                json(
                        TestJobs.minimalJob("http-loopback-1").toBuilder()
                                .setDataset(
                                        io.tuneline.proto.v1.DatasetSpec.newBuilder()
                                                .setUri(
                                                        "http://127.0.0.1:9/internal/secrets.jsonl"))
                                .build()));
        JobFailed failed =
                codec().decode(
                                statusEvent("http-loopback-1", "tuneline.v1.JobFailed"),
                                JobFailed.getDefaultInstance())
                        .payload();
        assertThat(failed.getErrorCode()).isEqualTo("SOURCE_REFUSED");
        assertThat(failed.getMessage())
                .contains("non-public address 127.0.0.1")
                .contains("tuneline.ingestion.http.allow-private-addresses");
    }

    @Test
    void anotherS3EndpointOnALoopbackAddressIsRefusedByDefault() {
        kafka.publish(
                Topics.JOBS_REQUESTED,
                "s3-loopback-1",
                json(
                        TestJobs.minimalJob("s3-loopback-1").toBuilder()
                                .setDataset(
                                        io.tuneline.proto.v1.DatasetSpec.newBuilder()
                                                .setUri("s3://bucket/data.jsonl")
                                                .setS3Endpoint("http://127.0.0.1:9")
                                                .setCredentialsRef("partner"))
                                .build()));
        JobFailed failed =
                codec().decode(
                                statusEvent("s3-loopback-1", "tuneline.v1.JobFailed"),
                                JobFailed.getDefaultInstance())
                        .payload();
        assertThat(failed.getErrorCode()).isEqualTo("SOURCE_REFUSED");
        assertThat(failed.getMessage())
                .startsWith("dataset.s3_endpoint http://127.0.0.1:9 is refused")
                .contains("non-public address 127.0.0.1");
    }

    @Test
    void everyRejectionReasonIsRegisteredAtZero() {
        for (var reason : io.tuneline.ingestion.validate.RejectionReason.values()) {
            assertThat(
                            registry.find(io.tuneline.ingestion.metrics.IngestionMetrics.REJECTED)
                                    .tag("reason", reason.tag())
                                    .counter())
                    .as(reason.tag())
                    .isNotNull();
        }
        assertThat(rejected("bad_message")).isNotNegative();
        assertThat(rejected("no_assistant_message")).isNotNegative();
        assertThat(rejected("bad_split")).isNotNegative();
    }

    private static String goodLines(int n) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < n; i++) {
            b.append("{\"text\": \"review number ")
                    .append(i)
                    .append("\", \"label\": \"")
                    .append(i % 2 == 0 ? "pos" : "neg")
                    .append("\"}\n");
        }
        return b.toString();
    }

    private DatasetIngested ingested(String jobId) {
        var records =
                kafka.readUntil(
                        Topics.DATASETS_INGESTED,
                        rs -> rs.stream().anyMatch(r -> jobId.equals(r.key())),
                        WAIT);
        return codec().decode(
                        records.stream()
                                .filter(r -> jobId.equals(r.key()))
                                .findFirst()
                                .orElseThrow(),
                        DatasetIngested.getDefaultInstance())
                .payload();
    }

    private IncomingEvent<JobRequested> awaitAccepted(String jobId) {
        @SuppressWarnings("unchecked")
        ArgumentCaptor<IncomingEvent<JobRequested>> captor =
                ArgumentCaptor.forClass(IncomingEvent.class);
        await().atMost(WAIT)
                .untilAsserted(
                        () -> {
                            verify(intake, atLeastOnce()).accept(captor.capture());
                            assertThat(captor.getAllValues())
                                    .anyMatch(e -> e.jobId().equals(jobId));
                        });
        return captor.getAllValues().stream()
                .filter(e -> e.jobId().equals(jobId))
                .findFirst()
                .orElseThrow();
    }

    private ConsumerRecord<String, byte[]> statusEvent(String jobId, String type) {
        List<ConsumerRecord<String, byte[]>> records =
                kafka.readUntil(
                        Topics.JOBS_STATUS,
                        rs -> rs.stream().anyMatch(r -> matches(r, jobId, type)),
                        WAIT);
        return records.stream().filter(r -> matches(r, jobId, type)).findFirst().orElseThrow();
    }

    private static boolean matches(ConsumerRecord<String, byte[]> r, String jobId, String type) {
        return jobId.equals(r.key())
                && type.equals(KafkaTestClient.header(r, CloudEventHeaders.TYPE));
    }

    private double rejected(String reason) {
        return registry.get(io.tuneline.ingestion.metrics.IngestionMetrics.REJECTED)
                .tag("reason", reason)
                .counter()
                .count();
    }

    private double duplicates() {
        return registry
                .find(MetricNames.EVENTS_CONSUMED)
                .tag(MetricNames.TAG_OUTCOME, MetricNames.OUTCOME_DUPLICATE)
                .counters()
                .stream()
                .mapToDouble(c -> c.count())
                .sum();
    }

    private static EventCodec codec() {
        return new EventCodec("/test");
    }

    private static byte[] json(JobRequested job) {
        return codec().toJson(job).getBytes(StandardCharsets.UTF_8);
    }
}
