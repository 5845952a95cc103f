package io.tuneline.testing;

import static io.restassured.RestAssured.given;
import static org.assertj.core.api.Assertions.assertThat;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import org.eclipse.microprofile.config.Config;
import org.eclipse.microprofile.config.ConfigProvider;
import org.junit.jupiter.api.Test;

/**
 * What every Tuneline service promises operators: health endpoints that report its dependencies,
 * and Prometheus metrics tagged with its name. Extend it in a {@code @QuarkusTest} of each service.
 */
public abstract class ServiceContractTest {

    @Test
    void reportsLivenessAndReadinessWithTheObjectStore() {
        given().when().get("/q/health/live").then().statusCode(200).body("status", equalTo("UP"));
        given().when()
                .get("/q/health/ready")
                .then()
                .statusCode(200)
                .body("status", equalTo("UP"))
                .body("checks.name", org.hamcrest.Matchers.hasItem("object-store"));
    }

    @Test
    void eventCountersOfEveryIncomingChannelExistFromStartup() {
        String metrics =
                given().when().get("/q/metrics").then().statusCode(200).extract().asString();
        Config config = ConfigProvider.getConfig();
        for (String property : config.getPropertyNames()) {
            if (!property.matches("mp\\.messaging\\.incoming\\.[^.]+\\.topics?")) {
                continue;
            }
            for (String topic : config.getValue(property, String.class).split(",")) {
                // "failed" is the outcome no test provokes on purpose: it exists only if it was
                // registered at start-up, which is what lets increase() see a service's first
                // failure.
                assertThat(metrics.lines())
                        .as("tuneline_events_consumed_total for %s", topic)
                        .anyMatch(
                                l ->
                                        l.startsWith("tuneline_events_consumed_total{")
                                                && l.contains("outcome=\"failed\"")
                                                && l.contains("topic=\"" + topic + "\""));
            }
        }
    }

    @Test
    void exposesPrometheusMetricsTaggedWithTheServiceName() {
        String service =
                ConfigProvider.getConfig().getValue("quarkus.application.name", String.class);
        given().when()
                .get("/q/metrics")
                .then()
                .statusCode(200)
                .body(containsString("jvm_memory_used_bytes"))
                .body(containsString("service=\"" + service + "\""));
    }
}
