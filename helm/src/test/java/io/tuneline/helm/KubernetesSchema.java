package io.tuneline.helm;

import com.fasterxml.jackson.databind.BeanDescription;
import com.fasterxml.jackson.databind.DeserializationConfig;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.deser.BeanDeserializerBuilder;
import com.fasterxml.jackson.databind.deser.BeanDeserializerModifier;
import com.fasterxml.jackson.databind.module.SimpleModule;
import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.PodTemplateSpec;
import io.fabric8.kubernetes.api.model.Secret;
import io.fabric8.kubernetes.api.model.Service;
import io.fabric8.kubernetes.api.model.ServiceAccount;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.autoscaling.v2.HorizontalPodAutoscaler;
import io.fabric8.kubernetes.api.model.policy.v1.PodDisruptionBudget;
import io.fabric8.kubernetes.api.model.rbac.Role;
import io.fabric8.kubernetes.api.model.rbac.RoleBinding;
import io.fabric8.openshift.api.model.monitoring.v1.PrometheusRule;
import io.fabric8.openshift.api.model.monitoring.v1.ServiceMonitor;
import io.strimzi.api.kafka.model.topic.KafkaTopic;
import java.util.Map;

/**
 * Checks rendered documents against the Kubernetes API types (fabric8's model classes, Strimzi's
 * for KafkaTopic) strictly: the models normally keep unknown fields in {@code
 * additionalProperties}; here that catch-all is removed, so a misspelt or misplaced field fails
 * with its path, as the API server's strict field validation would. KServe's InferenceService,
 * which has no Java model, is checked against its CRD schema ({@link InferenceServiceSchema}), and
 * so is Kueue's LocalQueue ({@link LocalQueueSchema}).
 */
final class KubernetesSchema {
    private static final Map<String, Class<?>> TYPES =
            Map.ofEntries(
                    Map.entry("v1/ConfigMap", ConfigMap.class),
                    Map.entry("v1/Secret", Secret.class),
                    Map.entry("v1/Service", Service.class),
                    Map.entry("v1/ServiceAccount", ServiceAccount.class),
                    Map.entry("apps/v1/Deployment", Deployment.class),
                    Map.entry("policy/v1/PodDisruptionBudget", PodDisruptionBudget.class),
                    Map.entry(
                            "autoscaling/v2/HorizontalPodAutoscaler",
                            HorizontalPodAutoscaler.class),
                    Map.entry("rbac.authorization.k8s.io/v1/Role", Role.class),
                    Map.entry("rbac.authorization.k8s.io/v1/RoleBinding", RoleBinding.class),
                    Map.entry("monitoring.coreos.com/v1/ServiceMonitor", ServiceMonitor.class),
                    Map.entry("monitoring.coreos.com/v1/PrometheusRule", PrometheusRule.class),
                    Map.entry("kafka.strimzi.io/v1beta2/KafkaTopic", KafkaTopic.class));

    private static final ObjectMapper STRICT =
            new ObjectMapper()
                    .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
                    .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
                    .registerModule(
                            new SimpleModule()
                                    .setDeserializerModifier(
                                            new BeanDeserializerModifier() {
                                                @Override
                                                public BeanDeserializerBuilder updateBuilder(
                                                        DeserializationConfig config,
                                                        BeanDescription description,
                                                        BeanDeserializerBuilder builder) {
                                                    builder.setAnySetter(null);
                                                    return builder;
                                                }
                                            }));

    private KubernetesSchema() {}

    /** Parses {@code doc} as its API type; throws naming the document and the bad field. */
    static Object validate(JsonNode doc) {
        String key = doc.path("apiVersion").asText() + "/" + doc.path("kind").asText();
        if (key.equals(InferenceServiceSchema.API_VERSION + "/" + InferenceServiceSchema.KIND)) {
            return InferenceServiceSchema.validate(doc);
        }
        if (key.equals(LocalQueueSchema.API_VERSION + "/" + LocalQueueSchema.KIND)) {
            return LocalQueueSchema.validate(doc);
        }
        Class<?> type = TYPES.get(key);
        String where = key + " " + doc.path("metadata").path("name").asText();
        if (type == null) {
            throw new AssertionError(where + ": no schema known for this kind; add it to TYPES");
        }
        return parse(where, doc, type);
    }

    static PodTemplateSpec podTemplate(String where, JsonNode doc) {
        return parse(where, doc, PodTemplateSpec.class);
    }

    /** Parses {@code doc} as {@code type}, unknown fields rejected; throws Jackson's error. */
    static <T> T parseStrictly(JsonNode doc, Class<T> type) throws Exception {
        return STRICT.treeToValue(doc, type);
    }

    private static <T> T parse(String where, JsonNode doc, Class<T> type) {
        try {
            return STRICT.treeToValue(doc, type);
        } catch (Exception e) {
            throw new AssertionError(
                    where + " does not match the API schema: " + e.getMessage(), e);
        }
    }
}
