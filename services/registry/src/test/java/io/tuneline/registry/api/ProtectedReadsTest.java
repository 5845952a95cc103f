package io.tuneline.registry.api;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;

import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import io.tuneline.registry.Fixtures;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.S3ProxyResource;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** With tuneline.registry.protect-reads, reading needs the token too; health and metrics do not. */
@QuarkusTest
@TestProfile(ProtectedReadsTest.ReadsProtected.class)
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class ProtectedReadsTest {
    public static class ReadsProtected implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of("tuneline.registry.protect-reads", "true");
        }
    }

    @Test
    void readsNeedTheTokenButHealthAndMetricsDoNot() {
        given().get("/api/v1/models")
                .then()
                .statusCode(401)
                .contentType("application/problem+json")
                .body("title", equalTo("Unauthorized"));
        given().header("Authorization", "Bearer " + Fixtures.TOKEN)
                .get("/api/v1/models")
                .then()
                .statusCode(200);
        given().get("/q/health/live").then().statusCode(200);
        given().get("/q/metrics").then().statusCode(200);
    }
}
