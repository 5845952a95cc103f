package io.tuneline.registry.api;

import static io.restassured.RestAssured.given;
import static org.assertj.core.api.Assertions.assertThat;
import static org.hamcrest.Matchers.equalTo;

import com.google.protobuf.util.Timestamps;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.path.json.JsonPath;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.Stage;
import io.tuneline.registry.Fixtures;
import io.tuneline.registry.jobs.JobReadModel;
import io.tuneline.registry.models.ModelRegistrar;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.S3ProxyResource;
import jakarta.inject.Inject;
import java.time.Instant;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.Test;

/** Listing, filtering and paging jobs and models. */
@QuarkusTest
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class ListingApiTest {
    @Inject JobReadModel jobs;
    @Inject ModelRegistrar registrar;

    @Test
    void jobsAreFilteredByStatusAndModelAndPagedNewestFirst() {
        String model = "listing-" + UUID.randomUUID().toString().substring(0, 6);
        Instant t0 = Instant.parse("2030-01-01T00:00:00Z");
        for (int i = 0; i < 5; i++) {
            String id = model + "-job-" + i;
            jobs.apply(Fixtures.incoming(Fixtures.job(id, model, 1e-3), t0.plusSeconds(i), null));
            if (i % 2 == 0) {
                jobs.apply(
                        Fixtures.incoming(
                                JobFailed.newBuilder()
                                        .setJobId(id)
                                        .setStage(Stage.STAGE_INGESTION)
                                        .setErrorCode("DATASET_INVALID")
                                        .setMessage("line 3: label 'meh' is not declared")
                                        .setFailedAt(Timestamps.now())
                                        .build(),
                                t0.plusSeconds(10 + i),
                                null));
            }
        }

        JsonPath failed =
                given().queryParam("model", model)
                        .queryParam("status", "failed")
                        .queryParam("size", 2)
                        .get("/api/v1/jobs")
                        .then()
                        .statusCode(200)
                        .extract()
                        .jsonPath();
        assertThat(failed.getLong("total")).isEqualTo(3);
        assertThat(failed.getList("items.job_id", String.class))
                .containsExactly(model + "-job-4", model + "-job-2");
        assertThat(failed.getString("items[0].failure.reason")).contains("label 'meh'");

        JsonPath secondPage =
                given().queryParam("model", model)
                        .queryParam("status", "FAILED")
                        .queryParam("size", 2)
                        .queryParam("page", 1)
                        .get("/api/v1/jobs")
                        .then()
                        .extract()
                        .jsonPath();
        assertThat(secondPage.getList("items.job_id", String.class))
                .containsExactly(model + "-job-0");

        JsonPath queued =
                given().queryParam("model", model)
                        .queryParam("status", "QUEUED")
                        .get("/api/v1/jobs")
                        .then()
                        .extract()
                        .jsonPath();
        assertThat(queued.getList("items.job_id", String.class))
                .containsExactly(model + "-job-3", model + "-job-1");
        given().queryParam("size", 500).get("/api/v1/jobs").then().statusCode(400);
    }

    @Test
    void modelsAreListedByNameAndFilteredByTask() {
        String a = "aaa-listing-" + UUID.randomUUID().toString().substring(0, 6);
        for (String name : List.of(a + "-2", a + "-1")) {
            registrar.register(
                    Fixtures.evaluation(
                            Fixtures.job(name + "-job", name, 1e-3),
                            0.9,
                            true,
                            Fixtures.defaultFiles(name + "-job")));
        }
        JsonPath page =
                given().queryParam("task", "SEQUENCE_CLASSIFICATION")
                        .queryParam("size", 200)
                        .get("/api/v1/models")
                        .then()
                        .statusCode(200)
                        .extract()
                        .jsonPath();
        List<String> names = page.getList("items.name", String.class);
        assertThat(names).containsSubsequence(a + "-1", a + "-2");
        given().queryParam("task", "CAUSAL_LM")
                .get("/api/v1/models")
                .then()
                .body("total", equalTo(0));
        given().get("/api/v1/models/" + a + "-1")
                .then()
                .body("latest_version", equalTo(1))
                .body("versions", equalTo(1));
    }
}
