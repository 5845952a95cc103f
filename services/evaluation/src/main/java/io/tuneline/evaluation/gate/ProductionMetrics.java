package io.tuneline.evaluation.gate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;

/**
 * The tuned metrics of a model's current production version, read from the registry's API ({@code
 * GET /api/v1/models/{name}}, then the production version), for a quality gate whose reference is
 * production. A model with no production version yet has no reference; a registry that cannot be
 * asked is an error, never a silently passed gate.
 */
public final class ProductionMetrics {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** The production version and its metrics. */
    public record Reference(long version, Map<String, Double> metrics) {}

    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    private final Optional<URI> registry;
    private final Optional<String> token;

    /**
     * @param registry base URL of the registry, e.g. {@code http://registry:8080}; empty when the
     *     evaluation service is not told where it is
     * @param token bearer token, for a registry whose reads are protected
     */
    public ProductionMetrics(Optional<URI> registry, Optional<String> token) {
        this.registry = registry;
        this.token = token;
    }

    /**
     * @throws ReferenceUnavailableException when the registry is not configured, not reachable, or
     *     answers with an error
     */
    public Optional<Reference> of(String model) {
        URI base =
                registry.orElseThrow(
                        () ->
                                new ReferenceUnavailableException(
                                        "the gate compares with the production version, but"
                                                + " tuneline.evaluation.registry.url is not set"));
        String name = URLEncoder.encode(model, StandardCharsets.UTF_8).replace("+", "%20");
        Optional<JsonNode> m = get(base.resolve("/api/v1/models/" + name));
        if (m.isEmpty()
                || m.get().path("production_version").isNull()
                || m.get().path("production_version").isMissingNode()) {
            return Optional.empty();
        }
        long version = m.get().path("production_version").asLong();
        JsonNode v =
                get(base.resolve("/api/v1/models/" + name + "/versions/" + version))
                        .orElseThrow(
                                () ->
                                        new ReferenceUnavailableException(
                                                "the registry names version "
                                                        + version
                                                        + " of "
                                                        + model
                                                        + " as production but does not have it"));
        Map<String, Double> metrics = new LinkedHashMap<>();
        v.path("metrics")
                .path("tuned_metrics")
                .fields()
                .forEachRemaining(
                        e -> {
                            if (e.getValue().path("value").isNumber()) {
                                metrics.put(e.getKey(), e.getValue().path("value").asDouble());
                            }
                        });
        return Optional.of(new Reference(version, metrics));
    }

    /** The body of a 200, empty for a 404. */
    private Optional<JsonNode> get(URI uri) {
        HttpRequest.Builder request =
                HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(30)).GET();
        token.ifPresent(t -> request.header("Authorization", "Bearer " + t));
        HttpResponse<String> response;
        try {
            response = http.send(request.build(), HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new ReferenceUnavailableException(
                    "cannot reach the registry at " + uri + ": " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ReferenceUnavailableException("interrupted asking " + uri, e);
        }
        if (response.statusCode() == 404) {
            return Optional.empty();
        }
        if (response.statusCode() != 200) {
            throw new ReferenceUnavailableException(
                    "the registry answered HTTP "
                            + response.statusCode()
                            + " to GET "
                            + uri
                            + (response.statusCode() == 401
                                    ? " (set tuneline.evaluation.registry.token)"
                                    : ""));
        }
        try {
            return Optional.of(JSON.readTree(response.body()));
        } catch (IOException e) {
            throw new ReferenceUnavailableException(
                    "the registry's answer to " + uri + " is not JSON", e);
        }
    }

    /** The production reference could not be read. */
    public static final class ReferenceUnavailableException extends RuntimeException {
        ReferenceUnavailableException(String message) {
            super(message);
        }

        ReferenceUnavailableException(String message, Throwable cause) {
            super(message, cause);
        }
    }
}
