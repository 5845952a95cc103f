package io.tuneline.preprocessing.intake;

import static org.assertj.core.api.Assertions.assertThat;

import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.messaging.DeadLetters;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.topic.Topics;
import io.tuneline.preprocessing.metrics.PreprocessingMetrics;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.KafkaTestClient;
import io.tuneline.testing.S3ProxyResource;
import jakarta.inject.Inject;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.Test;

/** The service end to end on its topics: a dataset in, splits out, a poison record aside. */
@QuarkusTest
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class PreprocessingFlowTest {
    private static final Duration WAIT = Duration.ofSeconds(30);
    private static final EventCodec CODEC = new EventCodec("/test");

    @Inject ArtifactStore store;
    @Inject MeterRegistry registry;

    private DatasetIngested ingested(String jobId) {
        StringBuilder data = new StringBuilder();
        String[] words = {
            "lovely", "awful", "splendid", "dreadful", "charming", "boring", "superb", "dull"
        };
        for (int i = 0; i < 40; i++) {
            data.append("{\"text\":\"a ")
                    .append(words[i % words.length])
                    .append(" evening number ")
                    .append(Long.toString(i * 7919L + 104729L, 36))
                    .append("\",\"label\":\"")
                    .append(i % 2 == 0 ? "pos" : "neg")
                    .append("\"}\n");
        }
        data.append("{\"text\":\"A LOVELY EVENING NUMBER ")
                .append(Long.toString(104729L, 36).toUpperCase())
                .append("!\",\"label\":\"pos\"}\n");
        ArtifactRef records =
                store.put(
                        store.uri("datasets/" + jobId + "/records.jsonl"),
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
                                .setDataset(DatasetSpec.newBuilder().setUri("s3://x/y")))
                .setRaw(records)
                .setRecords(records)
                .setValidRecords(41)
                .build();
    }

    private double removed(String reason) {
        return registry.get(PreprocessingMetrics.REMOVED).tag("reason", reason).counter().count();
    }

    @Test
    void aDatasetBecomesSplitsAndAPoisonRecordGoesToTheDeadLetterTopic() {
        double nearBefore = removed("near_duplicate");
        try (KafkaTestClient kafka = KafkaTestClient.forApplication()) {
            kafka.publish(
                    Topics.DATASETS_INGESTED,
                    "prep-poison",
                    "{ this is not an event".getBytes(StandardCharsets.UTF_8),
                    Map.of());
            var out = CODEC.encode(ingested("prep-flow-1"));
            kafka.publish(Topics.DATASETS_INGESTED, out.key(), out.value(), out.headers());

            DatasetPrepared prepared =
                    CODEC.decode(
                                    kafka.awaitEvent(
                                            Topics.DATASETS_PREPARED,
                                            "prep-flow-1",
                                            "tuneline.v1.DatasetPrepared",
                                            WAIT),
                                    DatasetPrepared.getDefaultInstance())
                            .payload();
            assertThat(prepared.getStats().getInputRecords()).isEqualTo(41);
            assertThat(prepared.getStats().getNearDuplicatesRemoved()).isEqualTo(1);
            assertThat(
                            prepared.getCounts().getTrain()
                                    + prepared.getCounts().getValidation()
                                    + prepared.getCounts().getTest())
                    .isEqualTo(40);
            assertThat(removed("near_duplicate") - nearBefore).isEqualTo(1);

            ConsumerRecord<String, byte[]> dead =
                    kafka
                            .readUntil(
                                    Topics.dlq(Topics.DATASETS_INGESTED),
                                    rs -> rs.stream().anyMatch(r -> "prep-poison".equals(r.key())),
                                    WAIT)
                            .stream()
                            .filter(r -> "prep-poison".equals(r.key()))
                            .findFirst()
                            .orElseThrow();
            assertThat(KafkaTestClient.header(dead, DeadLetters.REASON)).isNotBlank();
        }
    }
}
