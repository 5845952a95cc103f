package io.tuneline.evaluation.gate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.sun.net.httpserver.HttpServer;
import io.tuneline.proto.v1.GateReference;
import io.tuneline.proto.v1.QualityGate;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The production reference read from a stand-in for the registry's API. */
class ProductionMetricsTest {
    private HttpServer server;
    private URI url;
    private String lastAuthorization;

    @BeforeEach
    void start() throws Exception {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext(
                "/api/v1/models/",
                exchange -> {
                    lastAuthorization = exchange.getRequestHeaders().getFirst("Authorization");
                    String path = exchange.getRequestURI().getPath();
                    String body =
                            switch (path) {
                                case "/api/v1/models/sentiment" ->
                                        "{\"name\":\"sentiment\",\"production_version\":2}";
                                case "/api/v1/models/sentiment/versions/2" ->
                                        "{\"version\":2,\"metrics\":{\"tuned_metrics\":{"
                                                + "\"macro_f1\":{\"value\":0.91,\"ci_lower\":0.88},"
                                                + "\"accuracy\":{\"value\":0.93}}}}";
                                case "/api/v1/models/fresh" ->
                                        "{\"name\":\"fresh\",\"production_version\":null}";
                                default -> null;
                            };
                    int status =
                            path.startsWith("/api/v1/models/locked")
                                    ? 401
                                    : body == null ? 404 : 200;
                    byte[] bytes = (body == null ? "{}" : body).getBytes(StandardCharsets.UTF_8);
                    exchange.sendResponseHeaders(status, bytes.length);
                    exchange.getResponseBody().write(bytes);
                    exchange.close();
                });
        server.start();
        url = URI.create("http://127.0.0.1:" + server.getAddress().getPort());
    }

    @AfterEach
    void stop() {
        server.stop(0);
    }

    @Test
    void theProductionVersionsTunedMetricsAreTheReference() {
        var reference =
                new ProductionMetrics(Optional.of(url), Optional.of("t0ken")).of("sentiment");
        assertThat(reference).isPresent();
        assertThat(reference.get().version()).isEqualTo(2);
        assertThat(reference.get().metrics())
                .containsExactly(Map.entry("macro_f1", 0.91), Map.entry("accuracy", 0.93));
        assertThat(lastAuthorization).isEqualTo("Bearer t0ken");

        // A tuned macro F1 of 0.85 is a regression of 0.06 against production, over the 0.02
        // allowed: the gate fails and says against what.
        GateVerdict verdict =
                QualityGateCheck.check(
                        QualityGate.newBuilder()
                                .setReference(GateReference.GATE_REFERENCE_PRODUCTION)
                                .putMaxRegression("macro_f1", 0.02)
                                .build(),
                        Map.of("macro_f1", 0.85),
                        Optional.of(reference.get().metrics()));
        assertThat(verdict.passed()).isFalse();
        assertThat(verdict.reasons()).singleElement().asString().contains("production version");
    }

    @Test
    void aModelWithoutAProductionVersionOrNotRegisteredYetHasNoReference() {
        ProductionMetrics production = new ProductionMetrics(Optional.of(url), Optional.empty());
        assertThat(production.of("fresh")).isEmpty();
        assertThat(production.of("never-registered")).isEmpty();
    }

    @Test
    void aRegistryThatCannotBeAskedIsAnErrorNamingWhy() {
        assertThatThrownBy(() -> new ProductionMetrics(Optional.empty(), Optional.empty()).of("x"))
                .hasMessageContaining("tuneline.evaluation.registry.url");
        assertThatThrownBy(
                        () ->
                                new ProductionMetrics(Optional.of(url), Optional.empty())
                                        .of("locked"))
                .hasMessageContaining("HTTP 401")
                .hasMessageContaining("tuneline.evaluation.registry.token");
        URI closed = URI.create("http://127.0.0.1:1");
        assertThatThrownBy(
                        () -> new ProductionMetrics(Optional.of(closed), Optional.empty()).of("x"))
                .hasMessageContaining("cannot reach the registry");
    }
}
