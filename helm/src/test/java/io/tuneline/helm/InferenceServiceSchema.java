package io.tuneline.helm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.ObjectMeta;
import io.fabric8.kubernetes.api.model.PodSpec;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Checks a rendered KServe {@code InferenceService} (serving.kserve.io/v1beta1) with unknown fields
 * rejected. There is no Java model of KServe's types on Maven Central, so the check follows the
 * shape of KServe's v1beta1 Go types ({@code pkg/apis/serving/v1beta1}): {@code PredictorSpec}
 * embeds a Kubernetes {@code PodSpec} and a {@code ComponentExtensionSpec} (replicas, scaling,
 * timeout) beside {@code model} and {@code storageUris}; {@code ModelSpec} embeds a Kubernetes
 * {@code Container} beside {@code modelFormat}, {@code runtime}, {@code protocolVersion} and {@code
 * storageUri}. The Kubernetes parts are parsed strictly with fabric8's models (as {@link
 * KubernetesSchema} does); the KServe fields are checked here by name and type. The field list is
 * ours, written from those types, not a copy of KServe's CRD.
 */
final class InferenceServiceSchema {
    static final String API_VERSION = "serving.kserve.io/v1beta1";
    static final String KIND = "InferenceService";

    /** ComponentExtensionSpec's fields the chart may render, by JSON type. */
    private static final Map<String, JsonType> COMPONENT_EXTENSION =
            Map.of(
                    "minReplicas", JsonType.INTEGER,
                    "maxReplicas", JsonType.INTEGER,
                    "scaleTarget", JsonType.INTEGER,
                    "scaleMetric", JsonType.STRING,
                    "containerConcurrency", JsonType.INTEGER,
                    "timeout", JsonType.INTEGER,
                    "canaryTrafficPercent", JsonType.INTEGER,
                    "labels", JsonType.OBJECT,
                    "annotations", JsonType.OBJECT);

    /** ModelSpec's own fields beside the embedded container. */
    private static final Map<String, JsonType> MODEL =
            Map.of(
                    "modelFormat", JsonType.OBJECT,
                    "runtime", JsonType.STRING,
                    "protocolVersion", JsonType.STRING,
                    "storageUri", JsonType.STRING);

    private enum JsonType {
        INTEGER,
        STRING,
        OBJECT,
        ARRAY;

        boolean matches(JsonNode n) {
            return switch (this) {
                case INTEGER -> n.isIntegralNumber();
                case STRING -> n.isTextual();
                case OBJECT -> n.isObject();
                case ARRAY -> n.isArray();
            };
        }
    }

    private InferenceServiceSchema() {}

    /** Throws naming the document and every field that does not match KServe's types. */
    static JsonNode validate(JsonNode doc) {
        String where = KIND + " " + doc.path("metadata").path("name").asText();
        if (!API_VERSION.equals(doc.path("apiVersion").asText())
                || !KIND.equals(doc.path("kind").asText())) {
            throw new AssertionError(where + ": not a " + API_VERSION + " " + KIND);
        }
        List<String> errors = new ArrayList<>();
        only(doc, "", Set.of("apiVersion", "kind", "metadata", "spec"), errors);
        strict(doc.path("metadata"), "metadata", ObjectMeta.class, errors);
        JsonNode spec = doc.path("spec");
        only(spec, "spec.", Set.of("predictor", "transformer", "explainer"), errors);
        JsonNode predictor = spec.path("predictor");
        if (!predictor.isObject()) {
            errors.add("spec.predictor is required");
        } else {
            predictor(predictor, errors);
        }
        if (!errors.isEmpty()) {
            throw new AssertionError(
                    where + " does not match KServe's types: " + String.join("; ", errors));
        }
        return doc;
    }

    private static void predictor(JsonNode predictor, List<String> errors) {
        ObjectNode pod = predictor.deepCopy();
        for (Iterator<Map.Entry<String, JsonNode>> it = predictor.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> f = it.next();
            String name = f.getKey();
            JsonType type = COMPONENT_EXTENSION.get(name);
            if (type != null) {
                typed("spec.predictor." + name, f.getValue(), type, errors);
                pod.remove(name);
            }
        }
        pod.remove(List.of("model", "storageUris"));
        // What is left is the embedded PodSpec: unknown fields fail there.
        strict(pod, "spec.predictor", PodSpec.class, errors);
        JsonNode uris = predictor.path("storageUris");
        if (!uris.isMissingNode()) {
            typed("spec.predictor.storageUris", uris, JsonType.ARRAY, errors);
            for (int i = 0; i < uris.size(); i++) {
                String at = "spec.predictor.storageUris[" + i + "]";
                only(uris.get(i), at + ".", Set.of("uri", "mountPath"), errors);
                typed(at + ".uri", uris.get(i).path("uri"), JsonType.STRING, errors);
                typed(at + ".mountPath", uris.get(i).path("mountPath"), JsonType.STRING, errors);
            }
        }
        JsonNode model = predictor.path("model");
        if (!model.isObject()) {
            errors.add("spec.predictor.model is required (the chart renders no other predictor)");
            return;
        }
        if (model.has("storageUri") && predictor.has("storageUris")) {
            errors.add("spec.predictor: storageUri and storageUris exclude each other");
        }
        ObjectNode container = model.deepCopy();
        MODEL.forEach(
                (name, type) -> {
                    if (model.has(name)) {
                        typed("spec.predictor.model." + name, model.path(name), type, errors);
                        container.remove(name);
                    }
                });
        JsonNode format = model.path("modelFormat");
        only(format, "spec.predictor.model.modelFormat.", Set.of("name", "version"), errors);
        typed(
                "spec.predictor.model.modelFormat.name",
                format.path("name"),
                JsonType.STRING,
                errors);
        strict(container, "spec.predictor.model", Container.class, errors);
    }

    private static void only(
            JsonNode node, String prefix, Set<String> allowed, List<String> errors) {
        node.fieldNames()
                .forEachRemaining(
                        f -> {
                            if (!allowed.contains(f)) {
                                errors.add(prefix + f + " is not a field here");
                            }
                        });
    }

    private static void typed(String at, JsonNode value, JsonType type, List<String> errors) {
        if (value.isMissingNode()) {
            errors.add(at + " is required");
        } else if (!type.matches(value)) {
            errors.add(at + " must be " + type.name().toLowerCase() + ", not " + value);
        }
    }

    private static void strict(JsonNode node, String at, Class<?> type, List<String> errors) {
        try {
            KubernetesSchema.parseStrictly(node, type);
        } catch (Exception e) {
            errors.add(at + ": " + e.getMessage());
        }
    }
}
