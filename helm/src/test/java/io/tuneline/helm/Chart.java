package io.tuneline.helm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import com.marcnuri.helm.Helm;
import com.marcnuri.helm.LintResult;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/** The chart under test, rendered and linted in the JVM through helm-java. */
final class Chart {
    static final Path DIR = Path.of("tuneline").toAbsolutePath();
    static final String RELEASE = "tl";
    static final String NAMESPACE = "ml";

    /** Oldest Kubernetes the chart supports (autoscaling/v2, policy/v1, batch ttl). */
    static final String KUBE_VERSION = "1.25.0";

    private static final ObjectMapper YAML = new YAMLMapper();

    private Chart() {}

    static Path values(String name) {
        return Path.of("src/test/resources/values", name).toAbsolutePath();
    }

    /** {@code helm template} with a values file and extra {@code --set}s. */
    static String template(String valuesFile, Map<String, Object> sets) {
        var command =
                new Helm(DIR)
                        .template()
                        .withName(RELEASE)
                        .withNamespace(NAMESPACE)
                        .withKubeVersion(KUBE_VERSION)
                        .withValuesFile(values(valuesFile));
        sets.forEach(command::set);
        return command.call();
    }

    static List<JsonNode> render(String valuesFile) {
        return documents(template(valuesFile, Map.of()));
    }

    static List<JsonNode> render(String valuesFile, Map<String, Object> sets) {
        return documents(template(valuesFile, sets));
    }

    static List<JsonNode> documents(String rendered) {
        List<JsonNode> docs = new ArrayList<>();
        try (var parser = new YAMLFactory().createParser(rendered)) {
            Iterator<JsonNode> it = YAML.readValues(parser, JsonNode.class);
            while (it.hasNext()) {
                JsonNode doc = it.next();
                if (doc != null && !doc.isNull() && !doc.isEmpty()) {
                    docs.add(doc);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("rendered chart is not YAML", e);
        }
        return docs;
    }

    static JsonNode find(List<JsonNode> docs, String kind, String name) {
        return docs.stream()
                .filter(d -> kind.equals(d.path("kind").asText()))
                .filter(d -> name.equals(d.path("metadata").path("name").asText()))
                .findFirst()
                .orElseThrow(() -> new AssertionError("no " + kind + " named " + name));
    }

    static List<JsonNode> ofKind(List<JsonNode> docs, String kind) {
        return docs.stream().filter(d -> kind.equals(d.path("kind").asText())).toList();
    }

    /**
     * {@code helm lint --strict} as if the values file were passed: helm-java's lint takes no
     * values, so the chart is copied with the file merged into its values.yaml.
     */
    static LintResult lintWith(String valuesFile) throws IOException {
        Path root = Files.createTempDirectory(Path.of("target"), "lint-");
        Path copy = root.resolve("tuneline");
        copyTree(DIR, copy);
        ObjectNode defaults = (ObjectNode) YAML.readTree(DIR.resolve("values.yaml").toFile());
        JsonNode overrides = YAML.readTree(values(valuesFile).toFile());
        YAML.readerForUpdating(defaults).readValue(overrides);
        YAML.writeValue(copy.resolve("values.yaml").toFile(), defaults);
        return new Helm(copy).lint().strict().call();
    }

    private static void copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> paths = Files.walk(from)) {
            for (Path p : (Iterable<Path>) paths::iterator) {
                Path target = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(target);
                } else {
                    // Follows the files/ links into deploy/, as helm package does.
                    Files.copy(p, target);
                }
            }
        }
    }
}
