package io.tuneline.ingestion.intake;

import static org.assertj.core.api.Assertions.assertThat;

import com.sun.net.httpserver.HttpServer;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.topic.Topics;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.KafkaTestClient;
import io.tuneline.testing.S3ProxyResource;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Datasets fetched over HTTP by the running service, with loopback allowed for the test server. */
@QuarkusTest
@TestProfile(HttpDatasetFlowTest.LoopbackAllowed.class)
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class HttpDatasetFlowTest {
    private static final Duration WAIT = Duration.ofSeconds(30);
    private static final EventCodec CODEC = new EventCodec("/test");
    private static final byte[] DATA = lines(40).getBytes(StandardCharsets.UTF_8);

    public static class LoopbackAllowed implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of("tuneline.ingestion.http.allow-private-addresses", "true");
        }
    }

    private HttpServer server;
    private String base;
    private KafkaTestClient kafka;

    @BeforeEach
    void start() throws Exception {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext(
                "/reviews.jsonl",
                x -> {
                    x.sendResponseHeaders(200, DATA.length);
                    x.getResponseBody().write(DATA);
                    x.close();
                });
        server.createContext(
                "/endless.jsonl",
                x -> {
                    // Chunked, no length announced: only the streaming cap can stop it.
                    x.sendResponseHeaders(200, 0);
                    byte[] chunk = lines(1000).getBytes(StandardCharsets.UTF_8);
                    try {
                        for (int i = 0; i < 100; i++) {
                            x.getResponseBody().write(chunk);
                        }
                    } catch (java.io.IOException clientHungUp) {
                        // expected once the service gives up
                    }
                    x.close();
                });
        server.start();
        base = "http://127.0.0.1:" + server.getAddress().getPort();
        kafka = KafkaTestClient.forApplication();
    }

    @AfterEach
    void stop() {
        kafka.close();
        server.stop(0);
    }

    private static String lines(int n) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < n; i++) {
            b.append("{\"text\":\"fetched review ")
                    .append(i)
                    .append("\",\"label\":\"")
                    .append(i % 2 == 0 ? "pos" : "neg")
                    .append("\"}\n");
        }
        return b.toString();
    }

    private void submit(String jobId, String url) {
        JobRequested job =
                TestJobs.minimalJob(jobId).toBuilder()
                        .setDataset(DatasetSpec.newBuilder().setUri(url))
                        .build();
        var out = CODEC.encode(job);
        kafka.publish(Topics.JOBS_REQUESTED, out.key(), out.value(), out.headers());
    }

    private ConsumerRecord<String, byte[]> await(String topic, String jobId, String type) {
        return kafka.awaitEvent(topic, jobId, type, WAIT);
    }

    @Test
    void aDatasetIsFetchedOverHttpAndStoredUnchanged() throws Exception {
        submit("http-ok-1", base + "/reviews.jsonl");
        DatasetIngested ingested =
                CODEC.decode(
                                await(
                                        Topics.DATASETS_INGESTED,
                                        "http-ok-1",
                                        "tuneline.v1.DatasetIngested"),
                                DatasetIngested.getDefaultInstance())
                        .payload();
        assertThat(ingested.getValidRecords()).isEqualTo(40);
        assertThat(ingested.getRaw().getUri()).endsWith("/datasets/http-ok-1/raw/reviews.jsonl");
        assertThat(ingested.getRaw().getSha256())
                .isEqualTo(
                        HexFormat.of()
                                .formatHex(MessageDigest.getInstance("SHA-256").digest(DATA)));
    }

    @Test
    void aStreamLargerThanTheLimitIsCutOffWithAClearError() {
        submit("http-huge-1", base + "/endless.jsonl");
        JobFailed failed =
                CODEC.decode(
                                await(Topics.JOBS_STATUS, "http-huge-1", "tuneline.v1.JobFailed"),
                                JobFailed.getDefaultInstance())
                        .payload();
        assertThat(failed.getErrorCode()).isEqualTo("DATASET_TOO_LARGE");
        assertThat(failed.getMessage())
                .contains("/endless.jsonl is larger than tuneline.ingestion.max-bytes");
    }
}
