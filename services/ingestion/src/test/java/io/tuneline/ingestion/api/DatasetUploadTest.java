package io.tuneline.ingestion.api;

import static io.restassured.RestAssured.given;
import static org.assertj.core.api.Assertions.assertThat;
import static org.hamcrest.Matchers.containsString;

import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.path.json.JsonPath;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.S3Uri;
import io.tuneline.common.topic.Topics;
import io.tuneline.proto.v1.BaseModel;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.Task;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.KafkaTestClient;
import io.tuneline.testing.S3ProxyResource;
import jakarta.inject.Inject;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;

/** Uploading a dataset over HTTP, then training on it by its s3:// URI. */
@QuarkusTest
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class DatasetUploadTest {
    @Inject ArtifactStore store;

    @Test
    void anUploadedFileIsStoredUnchangedAndAJobCanUseItsUri() throws Exception {
        byte[] csv =
                "text,label\nlovely,pos\nawful,neg\nsplendid,pos\ndreadful,neg\n"
                        .getBytes(StandardCharsets.UTF_8);
        JsonPath answer =
                given().contentType("text/csv")
                        .body(csv)
                        .queryParam("filename", "reviews.csv")
                        .post("/api/v1/datasets")
                        .then()
                        .statusCode(201)
                        .extract()
                        .jsonPath();
        String sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(csv));
        assertThat(answer.getString("sha256")).isEqualTo(sha);
        assertThat(answer.getLong("size_bytes")).isEqualTo(csv.length);
        String uri = answer.getString("uri");
        assertThat(uri).startsWith("s3://tuneline-test/uploads/").endsWith("/reviews.csv");
        try (InputStream in = store.get(S3Uri.parse(uri))) {
            assertThat(in.readAllBytes()).isEqualTo(csv);
        }

        JobRequested job =
                JobRequested.newBuilder()
                        .setJobId("uploaded-1")
                        .setBaseModel(BaseModel.newBuilder().setRef("minilm-l6"))
                        .setTask(Task.TASK_SEQUENCE_CLASSIFICATION)
                        .setDataset(DatasetSpec.newBuilder().setUri(uri))
                        .build();
        try (KafkaTestClient kafka = KafkaTestClient.forApplication()) {
            EventCodec codec = new EventCodec("/test");
            var out = codec.encode(job);
            kafka.publish(Topics.JOBS_REQUESTED, out.key(), out.value(), out.headers());
            DatasetIngested ingested =
                    codec.decode(
                                    kafka.awaitEvent(
                                            Topics.DATASETS_INGESTED,
                                            "uploaded-1",
                                            "tuneline.v1.DatasetIngested",
                                            Duration.ofSeconds(30)),
                                    DatasetIngested.getDefaultInstance())
                            .payload();
            assertThat(ingested.getValidRecords()).isEqualTo(4);
            assertThat(ingested.getRaw().getSha256()).isEqualTo(sha);
        }
    }

    @Test
    void aMultipartFilePartIsStreamedUnchangedUnderItsOwnFileName() throws Exception {
        // Bytes that look like a boundary's start must come through as they are.
        var data = new java.io.ByteArrayOutputStream();
        data.write("text,label\r\n\"--x\r\n--\",pos\r\n".getBytes(StandardCharsets.UTF_8));
        for (int i = 0; i < 20_000; i++) {
            data.write(("row " + i + ",neg\r\n").getBytes(StandardCharsets.UTF_8));
        }
        data.write(new byte[] {0, (byte) 0xff, '\r', '\n', '-', '-'});
        byte[] file = data.toByteArray();
        JsonPath answer =
                given().multiPart("note", "a form field before the file")
                        .multiPart("file", "reviews-form.csv", file, "text/csv")
                        .multiPart("after", "and one after it")
                        .post("/api/v1/datasets")
                        .then()
                        .statusCode(201)
                        .extract()
                        .jsonPath();
        String sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(file));
        assertThat(answer.getString("sha256")).isEqualTo(sha);
        assertThat(answer.getLong("size_bytes")).isEqualTo(file.length);
        String uri = answer.getString("uri");
        assertThat(uri).endsWith("/reviews-form.csv");
        try (InputStream in = store.get(S3Uri.parse(uri))) {
            assertThat(in.readAllBytes()).isEqualTo(file);
        }

        // A part without a file name takes the query parameter's.
        String named =
                given().multiPart("file", "text,label\nok,pos\n")
                        .queryParam("filename", "from-query.csv")
                        .post("/api/v1/datasets")
                        .then()
                        .statusCode(201)
                        .extract()
                        .jsonPath()
                        .getString("uri");
        assertThat(named).endsWith("/from-query.csv");
    }

    @Test
    void aMultipartUploadOverTheLimitWithABadNameOrWithoutAFilePartGetsAProblem() {
        // The test profile allows 1,000,000 bytes.
        given().multiPart("file", "big.bin", new byte[1_000_001], "application/octet-stream")
                .post("/api/v1/datasets")
                .then()
                .statusCode(413)
                .contentType("application/problem+json")
                .body("detail", containsString("tuneline.ingestion.max-bytes (1000000"));
        given().multiPart("file", "my data.csv", new byte[] {'x'}, "text/csv")
                .post("/api/v1/datasets")
                .then()
                .statusCode(400)
                .body("detail", containsString("filename 'my data.csv' must match"));
        given().multiPart("upload", "reviews.csv", new byte[] {'x'}, "text/csv")
                .post("/api/v1/datasets")
                .then()
                .statusCode(400)
                .contentType("application/problem+json")
                .body("detail", containsString("no part named 'file'"));
    }

    @Test
    void aBodyOverTheLimitOrABadFilenameGetsAProblem() {
        // The test profile allows 1,000,000 bytes.
        given().contentType("application/octet-stream")
                .body(new byte[1_000_001])
                .post("/api/v1/datasets")
                .then()
                .statusCode(413)
                .contentType("application/problem+json")
                .body("detail", containsString("tuneline.ingestion.max-bytes (1000000)"));
        given().contentType("text/plain")
                .body("x")
                .queryParam("filename", "../../etc/passwd")
                .post("/api/v1/datasets")
                .then()
                .statusCode(400)
                .body("detail", containsString("filename '../../etc/passwd' must match"));
    }
}
