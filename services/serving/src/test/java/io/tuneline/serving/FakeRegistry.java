package io.tuneline.serving;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.proto.v1.ArtifactRef;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The registry's two read endpoints serving uses ({@code docs/registry.md}), answered from what a
 * test registers: services never import each other, so the test speaks the documented JSON.
 */
public class FakeRegistry implements QuarkusTestResourceLifecycleManager {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Map<String, ObjectNode> VERSIONS = new ConcurrentHashMap<>();
    private static final Map<String, Long> LATEST = new ConcurrentHashMap<>();
    private static final Map<String, String> BASES = new ConcurrentHashMap<>();
    private HttpServer server;

    /** Registers {@code name}'s version {@code version} with its model files (name to ref). */
    public static void register(
            String name,
            long version,
            String method,
            int maxSeqLength,
            Map<String, ArtifactRef> files,
            String... aliases) {
        ObjectNode v = JSON.createObjectNode();
        v.put("model", name);
        v.put("version", version);
        v.put("stage", "NONE");
        v.put("base_model", BASES.getOrDefault(name + "/" + version, "test-base"));
        v.put("method", method);
        v.putObject("hyperparameters").put("maxSeqLength", maxSeqLength);
        ArrayNode artifacts = v.putArray("artifacts");
        files.forEach(
                (file, ref) ->
                        artifacts
                                .addObject()
                                .put("name", "model/" + file)
                                .put("uri", ref.getUri())
                                .put("sha256", ref.getSha256())
                                .put("size_bytes", ref.getSizeBytes()));
        VERSIONS.put(name + "/" + version, v);
        for (String alias : aliases) {
            VERSIONS.put(name + "/" + alias, v);
        }
        LATEST.merge(name, version, Math::max);
    }

    /** The registered version's artifacts as the registry lists them (name, uri, sha256, size). */
    public static List<com.fasterxml.jackson.databind.JsonNode> artifacts(
            String name, long version) {
        List<com.fasterxml.jackson.databind.JsonNode> out = new java.util.ArrayList<>();
        VERSIONS.get(name + "/" + version).path("artifacts").forEach(out::add);
        return out;
    }

    /** Removes {@code name}'s {@code alias}, as {@code DELETE .../aliases/{alias}} does. */
    public static void removeAlias(String name, String alias) {
        VERSIONS.remove(name + "/" + alias);
    }

    /**
     * As {@link #registerDirectory}, the version naming {@code baseModel} as its base and its files
     * in one level of subdirectories ({@code adapter/}) registered too.
     */
    public static void registerDirectoryOnBase(
            ArtifactStore store,
            Path directory,
            String baseModel,
            String name,
            long version,
            String method,
            int maxSeqLength,
            String... aliases)
            throws IOException {
        Map<String, ArtifactRef> files = new LinkedHashMap<>();
        try (var walk = Files.walk(directory, 2)) {
            for (Path f : walk.filter(Files::isRegularFile).sorted().toList()) {
                String file = directory.relativize(f).toString();
                files.put(
                        file,
                        store.put(
                                store.uri("runs/" + name + "-" + version + "/model/" + file),
                                f,
                                "application/octet-stream"));
            }
        }
        BASES.put(name + "/" + version, baseModel);
        register(name, version, method, maxSeqLength, files, aliases);
    }

    /** Points {@code name}'s {@code alias} at {@code version}, as {@code PUT .../aliases/} does. */
    public static void moveAlias(String name, String alias, long version) {
        VERSIONS.put(name + "/" + alias, VERSIONS.get(name + "/" + version));
    }

    /**
     * Stores a model directory's files under {@code runs/{name}-{version}/model/} (a job id of its
     * own per version) as the training worker does and registers them as {@code name}'s version
     * {@code version}.
     */
    public static void registerDirectory(
            ArtifactStore store,
            Path directory,
            String name,
            long version,
            String method,
            int maxSeqLength,
            String... aliases)
            throws IOException {
        registerDirectoryOnBase(
                store, directory, "test-base", name, version, method, maxSeqLength, aliases);
    }

    @Override
    public Map<String, String> start() {
        try {
            server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        server.createContext("/api/v1/models/", this::handle);
        server.start();
        return Map.of(
                "tuneline.serving.registry.url",
                "http://127.0.0.1:" + server.getAddress().getPort());
    }

    private void handle(HttpExchange exchange) throws IOException {
        String[] parts =
                exchange.getRequestURI().getPath().substring("/api/v1/models/".length()).split("/");
        ObjectNode body = null;
        if (parts.length == 1 && LATEST.containsKey(parts[0])) {
            body = JSON.createObjectNode().put("name", parts[0]);
            body.put("latest_version", LATEST.get(parts[0]));
        } else if (parts.length == 3 && parts[1].equals("versions")) {
            body = VERSIONS.get(parts[0] + "/" + parts[2]);
        }
        byte[] bytes =
                (body == null
                                ? "{\"title\":\"Not Found\",\"status\":404}"
                                : JSON.writeValueAsString(body))
                        .getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().add("Content-Type", "application/json");
        exchange.sendResponseHeaders(body == null ? 404 : 200, bytes.length);
        exchange.getResponseBody().write(bytes);
        exchange.close();
    }

    @Override
    public void stop() {
        if (server != null) {
            server.stop(0);
        }
    }
}
