package io.tuneline.serving;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.Message;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.quarkus.arc.Arc;
import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import io.smallrye.reactive.messaging.kafka.KafkaClientService;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.event.OutgoingEvent;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.topic.Topics;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.ModelChange;
import io.tuneline.proto.v1.ModelChanged;
import io.tuneline.proto.v1.ModelRegistered;
import io.tuneline.testing.KafkaTestClient;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.awaitility.Awaitility;

/**
 * The registry's two read endpoints serving uses ({@code docs/registry.md}), answered from what a
 * test registers: services never import each other, so the test speaks the documented JSON. Like
 * the registry, it announces each registration ({@code ModelRegistered}) and each alias change
 * ({@code ModelChanged}) on Kafka, unless a test asks it not to (a lost announcement).
 */
public class FakeRegistry implements QuarkusTestResourceLifecycleManager {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Map<String, ObjectNode> VERSIONS = new ConcurrentHashMap<>();
    private static final Map<String, Long> LATEST = new ConcurrentHashMap<>();
    private static final Map<String, String> BASES = new ConcurrentHashMap<>();
    private HttpServer server;
    private static volatile boolean listening;

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
        announce(
                Topics.MODELS_REGISTERED,
                ModelRegistered.newBuilder()
                        .setJobId(name + "-" + version)
                        .setModelName(name)
                        .setVersion(version)
                        .setStage("NONE")
                        .addAllAliases(List.of(aliases))
                        .build());
    }

    /**
     * Sends {@code event} as the registry would, and waits for the broker's acknowledgement. The
     * service reads announcements from the newest record on, so the first one waits until its
     * partitions are assigned: sent before, it would not reach the service (as in production, where
     * the poll catches up what a starting instance missed).
     */
    private static void announce(String topic, Message event) {
        if (!listening) {
            KafkaClientService kafka = Arc.container().instance(KafkaClientService.class).get();
            Awaitility.await()
                    .atMost(Duration.ofSeconds(60))
                    .until(
                            () ->
                                    !kafka.getConsumer("registry-events")
                                            .getAssignments()
                                            .await()
                                            .atMost(Duration.ofSeconds(10))
                                            .isEmpty());
            listening = true;
        }
        OutgoingEvent e = new EventCodec("/tuneline/registry").encode(event);
        try (KafkaTestClient kafka = KafkaTestClient.forApplication()) {
            kafka.publish(topic, e.key(), e.value(), e.headers());
        }
    }

    private static void announceAliasChange(String name, String alias, long version, String to) {
        announce(
                Topics.MODELS_CHANGED,
                ModelChanged.newBuilder()
                        .setJobId(name + "-" + version)
                        .setModelName(name)
                        .addChanges(
                                ModelChange.newBuilder()
                                        .setKind("ALIAS")
                                        .setAlias(alias)
                                        .setVersion(version)
                                        .setTo(to))
                        .setActor("test")
                        .build());
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
        ObjectNode was = VERSIONS.remove(name + "/" + alias);
        announceAliasChange(name, alias, was.path("version").asLong(), "");
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
        moveAliasUnannounced(name, alias, version);
        announceAliasChange(name, alias, version, Long.toString(version));
    }

    /** As {@link #moveAlias}, its announcement lost on the way. */
    public static void moveAliasUnannounced(String name, String alias, long version) {
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
