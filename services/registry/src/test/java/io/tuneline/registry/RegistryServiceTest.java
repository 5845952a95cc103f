package io.tuneline.registry;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.hasItem;

import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.S3ProxyResource;
import io.tuneline.testing.ServiceContractTest;
import org.junit.jupiter.api.Test;

@QuarkusTest
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class RegistryServiceTest extends ServiceContractTest {

    @Test
    void reportsTheDatabaseInReadiness() {
        given().when()
                .get("/q/health/ready")
                .then()
                .statusCode(200)
                .body("checks.name", hasItem(containsString("Database connections health check")));
    }

    @Test
    void publishesAnOpenApiDocumentOfTheApi() {
        given().when()
                .get("/q/openapi?format=json")
                .then()
                .statusCode(200)
                .body(containsString("/api/v1/jobs/{id}/events"))
                .body(containsString("/api/v1/models/{name}/versions/{version}/stage"));
    }
}
