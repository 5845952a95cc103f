package io.tuneline.helm;

import com.fasterxml.jackson.databind.JsonNode;
import io.fabric8.kubernetes.api.model.ObjectMeta;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Checks a rendered Kueue {@code LocalQueue} (kueue.x-k8s.io/v1beta1) with unknown fields rejected.
 * There is no Java model of Kueue's types on Maven Central, so the check follows Kueue's v1beta1 Go
 * types ({@code apis/kueue/v1beta1/localqueue_types.go}, {@code fairsharing_types.go}): {@code
 * LocalQueueSpec} has {@code clusterQueue} (a {@code ClusterQueueReference}: a DNS subdomain of at
 * most 253 characters, immutable), {@code stopPolicy} (enum None, Hold, HoldAndDrain) and {@code
 * fairSharing} ({@code weight}, a resource quantity); {@code status} is Kueue's to write. The
 * metadata is parsed strictly with fabric8's {@code ObjectMeta}. The field list is ours, written
 * from those types, not a copy of Kueue's CRD.
 */
final class LocalQueueSchema {
    static final String API_VERSION = "kueue.x-k8s.io/v1beta1";
    static final String KIND = "LocalQueue";

    /** Kueue's {@code ClusterQueueReference}/{@code LocalQueueName}: an RFC 1123 subdomain. */
    private static final Pattern DNS_SUBDOMAIN =
            Pattern.compile("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$");

    private static final Set<String> STOP_POLICIES = Set.of("None", "Hold", "HoldAndDrain");

    /**
     * Kubernetes' resource.Quantity serialisation: a number or a string such as "1.5" or "500m".
     */
    private static final Pattern QUANTITY =
            Pattern.compile("^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$");

    private LocalQueueSchema() {}

    /** Throws naming the document and every field that does not match Kueue's types. */
    static JsonNode validate(JsonNode doc) {
        String where = KIND + " " + doc.path("metadata").path("name").asText();
        if (!API_VERSION.equals(doc.path("apiVersion").asText())
                || !KIND.equals(doc.path("kind").asText())) {
            throw new AssertionError(where + ": not a " + API_VERSION + " " + KIND);
        }
        List<String> errors = new ArrayList<>();
        only(doc, "", Set.of("apiVersion", "kind", "metadata", "spec"), errors);
        try {
            KubernetesSchema.parseStrictly(doc.path("metadata"), ObjectMeta.class);
        } catch (Exception e) {
            errors.add("metadata: " + e.getMessage());
        }
        name("metadata.name", doc.path("metadata").path("name"), errors);

        JsonNode spec = doc.path("spec");
        if (!spec.isObject()) {
            errors.add("spec must be an object");
        } else {
            only(spec, "spec.", Set.of("clusterQueue", "stopPolicy", "fairSharing"), errors);
            // Optional in the Go type, but a LocalQueue without one admits nothing.
            name("spec.clusterQueue", spec.path("clusterQueue"), errors);
            JsonNode stop = spec.path("stopPolicy");
            if (!stop.isMissingNode()
                    && !(stop.isTextual() && STOP_POLICIES.contains(stop.asText()))) {
                errors.add("spec.stopPolicy must be one of " + STOP_POLICIES + ", not " + stop);
            }
            JsonNode fair = spec.path("fairSharing");
            if (!fair.isMissingNode()) {
                if (!fair.isObject()) {
                    errors.add("spec.fairSharing must be an object, not " + fair);
                } else {
                    only(fair, "spec.fairSharing.", Set.of("weight"), errors);
                    JsonNode weight = fair.path("weight");
                    if (!weight.isMissingNode()
                            && !weight.isNumber()
                            && !(weight.isTextual()
                                    && QUANTITY.matcher(weight.asText()).matches())) {
                        errors.add("spec.fairSharing.weight must be a quantity, not " + weight);
                    }
                }
            }
        }
        if (!errors.isEmpty()) {
            throw new AssertionError(
                    where + " does not match Kueue's types: " + String.join("; ", errors));
        }
        return doc;
    }

    private static void name(String at, JsonNode value, List<String> errors) {
        if (value.isMissingNode()) {
            errors.add(at + " is required");
        } else if (!value.isTextual()) {
            errors.add(at + " must be a string, not " + value);
        } else if (value.asText().length() > 253
                || !DNS_SUBDOMAIN.matcher(value.asText()).matches()) {
            errors.add(at + " must be a DNS subdomain of at most 253 characters, not " + value);
        }
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
}
