package io.tuneline.serving.api;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;

import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.restassured.http.ContentType;
import io.tuneline.serving.FakeRegistry;
import io.tuneline.testing.S3ProxyResource;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * With {@code tuneline.serving.candidates.token} set, loading or unloading a candidate needs that
 * bearer token: without it or with another one the answer is a 401 problem, before the body is
 * looked at; with it the request goes through (here to the 404 of an unknown candidate).
 */
@QuarkusTest
@TestProfile(CandidatesTokenTest.WithToken.class)
@QuarkusTestResource(S3ProxyResource.class)
@QuarkusTestResource(FakeRegistry.class)
class CandidatesTokenTest {

    public static class WithToken implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of("tuneline.serving.candidates.token", "s3cret");
        }
    }

    @Test
    void candidatesNeedTheConfiguredBearerToken() {
        Map<String, Object> body =
                Map.of(
                        "files",
                        List.of(Map.of("path", "config.json", "uri", "s3://nowhere/config.json")));
        given().contentType(ContentType.JSON)
                .body(body)
                .put("/v1/candidates/job-1")
                .then()
                .statusCode(401)
                .body("detail", containsString("tuneline.serving.candidates.token"));
        given().header("Authorization", "Bearer wrong")
                .contentType(ContentType.JSON)
                .body(body)
                .put("/v1/candidates/job-1")
                .then()
                .statusCode(401);
        given().delete("/v1/candidates/job-1").then().statusCode(401);
        given().header("Authorization", "Bearer s3cret")
                .delete("/v1/candidates/job-1")
                .then()
                .statusCode(404)
                .body("detail", containsString("no candidate 'job-1'"));
    }
}
