package io.tuneline.ingestion.intake;

import static org.assertj.core.api.Assertions.assertThat;

import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.tuneline.common.event.CloudEventHeaders;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.topic.Topics;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.JobStatus;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.proto.v1.Stage;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.KafkaTestClient;
import io.tuneline.testing.S3ProxyResource;
import jakarta.inject.Inject;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.Test;

/** Progress events while a dataset is validated, with no minimum interval between them. */
@QuarkusTest
@TestProfile(IngestionProgressTest.NoInterval.class)
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class IngestionProgressTest {
    private static final Duration WAIT = Duration.ofSeconds(30);
    private static final EventCodec CODEC = new EventCodec("/test");

    public static class NoInterval implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of("tuneline.ingestion.progress-interval", "PT0S");
        }
    }

    @Inject ArtifactStore store;

    private static boolean progress(ConsumerRecord<String, byte[]> r, String jobId) {
        if (!jobId.equals(r.key())
                || !"tuneline.v1.JobStatusChanged"
                        .equals(KafkaTestClient.header(r, CloudEventHeaders.TYPE))) {
            return false;
        }
        double p =
                CODEC.decode(r, JobStatusChanged.getDefaultInstance()).payload().getPercentDone();
        return p > 0 && p < 100;
    }

    @Test
    void aLargeDatasetReportsHowFarValidationHasGot() {
        // About 600 kB (the test limit is 1 MB), read in 64 kB chunks: several tenths.
        StringBuilder data = new StringBuilder();
        for (int i = 0; i < 12_000; i++) {
            data.append("{\"text\": \"review number ")
                    .append(i)
                    .append("\", \"label\": \"")
                    .append(i % 2 == 0 ? "pos" : "neg")
                    .append("\"}\n");
        }
        store.put(
                store.uri("uploads/progress.jsonl"),
                data.toString().getBytes(StandardCharsets.UTF_8),
                "application/jsonl");
        JobRequested job =
                TestJobs.minimalJob("progress-1").toBuilder()
                        .setDataset(
                                DatasetSpec.newBuilder()
                                        .setUri("s3://tuneline-test/uploads/progress.jsonl"))
                        .build();
        try (KafkaTestClient kafka = KafkaTestClient.forApplication()) {
            var out = CODEC.encode(job);
            kafka.publish(Topics.JOBS_REQUESTED, out.key(), out.value(), out.headers());
            kafka.awaitEvent(
                    Topics.DATASETS_INGESTED, "progress-1", "tuneline.v1.DatasetIngested", WAIT);

            List<JobStatusChanged> reports =
                    kafka
                            .readUntil(
                                    Topics.JOBS_STATUS,
                                    rs -> rs.stream().anyMatch(r -> progress(r, "progress-1")),
                                    WAIT)
                            .stream()
                            .filter(r -> progress(r, "progress-1"))
                            .map(
                                    r ->
                                            CODEC.decode(r, JobStatusChanged.getDefaultInstance())
                                                    .payload())
                            .toList();
            assertThat(reports).isNotEmpty();
            for (JobStatusChanged s : reports) {
                assertThat(s.getStatus()).isEqualTo(JobStatus.JOB_STATUS_INGESTING);
                assertThat(s.getStage()).isEqualTo(Stage.STAGE_INGESTION);
                assertThat(s.getMessage())
                        .matches("validated \\d{1,3}(,\\d{3})* records \\(\\d{1,2}%\\)")
                        .endsWith("(" + (int) s.getPercentDone() + "%)");
            }
            // At most one per tenth, in order.
            assertThat(reports.stream().map(s -> (int) (s.getPercentDone() / 10)).toList())
                    .isSorted()
                    .doesNotHaveDuplicates();
        }
    }

    @Test
    void theMessageGroupsThousands() {
        assertThat(JobIntake.progressMessage(42.7, 1_234_567))
                .isEqualTo("validated 1,234,567 records (42%)");
    }
}
