package io.tuneline.serving.registry;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.serving.api.ServingException;
import io.tuneline.serving.load.ServingConfig;
import jakarta.enterprise.context.ApplicationScoped;
import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * Reads versions from the registry's REST API ({@code docs/registry.md}): {@code GET
 * /api/v1/models/{name}} for the latest version, {@code GET
 * /api/v1/models/{name}/versions/{version-or-alias}} for a version and its stored files.
 */
@ApplicationScoped
public class RegistryClient {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String MODEL_PREFIX = "model/";

    private final Optional<URI> base;
    private final Optional<String> token;
    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    public RegistryClient(ServingConfig config) {
        this.base = config.registry().url();
        this.token = config.registry().token();
    }

    /**
     * The version {@code ref} (a number or an alias) of {@code model}, or its latest version when
     * {@code ref} is empty.
     *
     * @throws ServingException 404 when the registry has no such model or version, 503 when the
     *     registry cannot be asked
     */
    public RegisteredVersion version(String model, Optional<String> ref) {
        String name = encode(model);
        String v;
        if (ref.isPresent()) {
            v = ref.get();
        } else {
            JsonNode m = get("/api/v1/models/" + name, model);
            JsonNode latest = m.path("latest_version");
            if (!latest.canConvertToLong()) {
                throw ServingException.unknownModel(
                        "model '" + model + "' has no registered version yet");
            }
            v = latest.asText();
        }
        JsonNode node = get("/api/v1/models/" + name + "/versions/" + encode(v), model + ":" + v);
        List<RegisteredVersion.ModelFile> files = new ArrayList<>();
        for (JsonNode a : node.path("artifacts")) {
            String artifact = a.path("name").asText();
            if (artifact.startsWith(MODEL_PREFIX)) {
                files.add(
                        new RegisteredVersion.ModelFile(
                                artifact.substring(MODEL_PREFIX.length()),
                                a.path("uri").asText(),
                                a.path("sha256").asText(),
                                a.path("size_bytes").asLong()));
            }
        }
        JsonNode maxSeq = node.path("hyperparameters").path("max_seq_length");
        if (maxSeq.isMissingNode()) {
            maxSeq = node.path("hyperparameters").path("maxSeqLength");
        }
        return new RegisteredVersion(
                node.path("model").asText(model),
                node.path("version").asLong(),
                node.path("base_model").asText(""),
                node.path("method").asText(""),
                maxSeq.asInt(0) > 0 ? OptionalInt.of(maxSeq.asInt()) : OptionalInt.empty(),
                files);
    }

    private JsonNode get(String path, String what) {
        URI url =
                base.orElseThrow(
                                () ->
                                        new ServingException(
                                                503,
                                                "Registry not configured",
                                                "tuneline.serving.registry.url is not set, so no"
                                                        + " version can be looked up"))
                        .resolve(path);
        HttpRequest.Builder request =
                HttpRequest.newBuilder(url)
                        .timeout(Duration.ofSeconds(30))
                        .header("Accept", "application/json");
        token.ifPresent(t -> request.header("Authorization", "Bearer " + t));
        HttpResponse<String> response;
        try {
            response = http.send(request.build(), HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new ServingException(
                    503,
                    "Registry unavailable",
                    "cannot reach the registry at "
                            + url
                            + ": "
                            + (e.getMessage() == null ? e.toString() : e.getMessage()),
                    e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ServingException(503, "Registry unavailable", "interrupted", e);
        }
        if (response.statusCode() == 404) {
            throw ServingException.unknownModel(
                    "the registry has no model version '"
                            + what
                            + "'; GET /v1/models lists what is loaded, the registry's"
                            + " /api/v1/models what is registered");
        }
        if (response.statusCode() != 200) {
            throw new ServingException(
                    503,
                    "Registry unavailable",
                    "the registry answered " + response.statusCode() + " for " + url);
        }
        try {
            return JSON.readTree(response.body());
        } catch (IOException e) {
            throw new ServingException(
                    503, "Registry unavailable", "the registry's answer is not JSON", e);
        }
    }

    private static String encode(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8).replace("+", "%20");
    }
}
