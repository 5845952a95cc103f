package io.tuneline.ingestion.intake;

import static org.assertj.core.api.Assertions.assertThat;

import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.topic.Topics;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.InMemoryS3Server;
import io.tuneline.testing.KafkaTestClient;
import io.tuneline.testing.S3ProxyResource;
import jakarta.inject.Inject;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Datasets on another S3 endpoint: a second in-memory S3 server, read with the credentials the test
 * profile names "partner" (application.properties), loopback allowed for the test.
 */
@QuarkusTest
@TestProfile(HttpDatasetFlowTest.LoopbackAllowed.class)
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class ExternalS3DatasetTest {
    private static final Duration WAIT = Duration.ofSeconds(30);
    private static final EventCodec CODEC = new EventCodec("/test");
    private static final byte[] DATA =
            ("{\"text\": \"from the partner\", \"label\": \"pos\"}\n"
                            + "{\"text\": \"also from the partner\", \"label\": \"neg\"}\n")
                    .getBytes(StandardCharsets.UTF_8);

    private static InMemoryS3Server partner;
    private static ArtifactStore partnerStore;

    @Inject ArtifactStore store;
    private KafkaTestClient kafka;

    @BeforeAll
    static void startPartner() {
        partner = InMemoryS3Server.start();
        partnerStore = partner.newStore("partner-data");
        partnerStore.put(partnerStore.uri("exports/reviews.jsonl"), DATA, "application/jsonl");
    }

    @AfterAll
    static void stopPartner() {
        partnerStore.close();
        partner.close();
    }

    @BeforeEach
    void connect() {
        kafka = KafkaTestClient.forApplication();
    }

    @AfterEach
    void disconnect() {
        kafka.close();
    }

    private void submit(String jobId, String uri, String credentialsRef) {
        JobRequested job =
                TestJobs.minimalJob(jobId).toBuilder()
                        .setDataset(
                                DatasetSpec.newBuilder()
                                        .setUri(uri)
                                        .setS3Endpoint(partner.endpoint())
                                        .setCredentialsRef(credentialsRef))
                        .build();
        var out = CODEC.encode(job);
        kafka.publish(Topics.JOBS_REQUESTED, out.key(), out.value(), out.headers());
    }

    private JobFailed failed(String jobId) {
        return CODEC.decode(
                        kafka.awaitEvent(Topics.JOBS_STATUS, jobId, "tuneline.v1.JobFailed", WAIT),
                        JobFailed.getDefaultInstance())
                .payload();
    }

    @Test
    void anObjectOnAnotherEndpointIsCopiedIntoThePlatformStoreAndValidated() throws Exception {
        submit("partner-ok-1", "s3://partner-data/exports/reviews.jsonl", "partner");
        DatasetIngested ingested =
                CODEC.decode(
                                kafka.awaitEvent(
                                        Topics.DATASETS_INGESTED,
                                        "partner-ok-1",
                                        "tuneline.v1.DatasetIngested",
                                        WAIT),
                                DatasetIngested.getDefaultInstance())
                        .payload();
        assertThat(ingested.getValidRecords()).isEqualTo(2);
        assertThat(ingested.getRaw().getUri())
                .isEqualTo("s3://tuneline-test/datasets/partner-ok-1/raw/reviews.jsonl");
        try (InputStream in = store.get(ingested.getRaw())) {
            assertThat(in.readAllBytes()).isEqualTo(DATA);
        }
    }

    @Test
    void aMissingObjectOnTheOtherEndpointIsSourceNotFound() {
        submit("partner-missing-1", "s3://partner-data/exports/nothing.jsonl", "partner");
        JobFailed failed = failed("partner-missing-1");
        assertThat(failed.getErrorCode()).isEqualTo("SOURCE_NOT_FOUND");
        assertThat(failed.getMessage())
                .contains("s3://partner-data/exports/nothing.jsonl at " + partner.endpoint())
                .contains("does not exist");
    }

    @Test
    void anObjectOverTheSizeLimitIsRefusedBeforeItIsCopied() {
        // The test profile allows 1,000,000 bytes.
        partnerStore.put(
                partnerStore.uri("exports/huge.jsonl"), new byte[1_000_001], "application/jsonl");
        submit("partner-huge-1", "s3://partner-data/exports/huge.jsonl", "partner");
        JobFailed failed = failed("partner-huge-1");
        assertThat(failed.getErrorCode()).isEqualTo("DATASET_TOO_LARGE");
        assertThat(failed.getMessage())
                .contains("s3://partner-data/exports/huge.jsonl (1000001 bytes)")
                .contains("tuneline.ingestion.max-bytes (1000000 bytes)");
    }

    @Test
    void unknownCredentialsFailTheJobNamingThem() {
        submit("partner-nocreds-1", "s3://partner-data/exports/reviews.jsonl", "stranger");
        JobFailed failed = failed("partner-nocreds-1");
        assertThat(failed.getErrorCode()).isEqualTo("CREDENTIALS_UNKNOWN");
        assertThat(failed.getMessage())
                .contains("dataset.credentials_ref 'stranger' names no credentials")
                .contains("tuneline.ingestion.s3-credentials.\"stranger\".access-key");
    }

    @Test
    void wrongCredentialsAreRefusedByTheEndpoint() {
        submit("partner-badcreds-1", "s3://partner-data/exports/reviews.jsonl", "wrong");
        JobFailed failed = failed("partner-badcreds-1");
        assertThat(failed.getErrorCode()).isEqualTo("SOURCE_UNREACHABLE");
        assertThat(failed.getMessage()).contains("credentials 'wrong'");
    }
}
