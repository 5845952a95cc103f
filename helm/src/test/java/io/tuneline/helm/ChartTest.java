package io.tuneline.helm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import com.marcnuri.helm.LintResult;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.PodTemplateSpec;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.Toleration;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.batch.v1.Job;
import io.fabric8.kubernetes.api.model.rbac.PolicyRule;
import io.fabric8.kubernetes.api.model.rbac.Role;
import io.tuneline.common.topic.Topics;
import io.tuneline.training.kubernetes.KubernetesExecutorSettings;
import io.tuneline.training.kubernetes.TrainingJobFactory;
import io.tuneline.training.run.RunRequest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.StreamSupport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class ChartTest {
    private static final List<String> SERVICES =
            List.of("ingestion", "preprocessing", "training", "evaluation", "registry");

    @ParameterizedTest
    @ValueSource(
            strings = {
                "minimal.yaml",
                "gpu-training.yaml",
                "external-tls-sasl.yaml",
                "everything-on.yaml"
            })
    void lintsStrictlyAndRendersOnlyValidKubernetesObjects(String valuesFile) throws IOException {
        LintResult lint = Chart.lintWith(valuesFile);
        assertThat(lint.isFailed()).as("lint: %s", lint.getMessages()).isFalse();

        List<JsonNode> docs = Chart.render(valuesFile);
        assertThat(docs).isNotEmpty();
        docs.forEach(KubernetesSchema::validate);
        assertThat(Chart.ofKind(docs, "Deployment")).hasSize(SERVICES.size());
    }

    @Test
    void everyServiceIsHardenedAndProbedOnItsHealthEndpoints() {
        List<JsonNode> docs = Chart.render("minimal.yaml");
        for (String service : SERVICES) {
            Deployment d =
                    (Deployment)
                            KubernetesSchema.validate(
                                    Chart.find(docs, "Deployment", "tl-tuneline-" + service));
            var pod = d.getSpec().getTemplate().getSpec();
            Container c = pod.getContainers().get(0);
            assertThat(pod.getSecurityContext().getRunAsNonRoot()).isTrue();
            assertThat(c.getSecurityContext().getReadOnlyRootFilesystem()).isTrue();
            assertThat(c.getSecurityContext().getAllowPrivilegeEscalation()).isFalse();
            assertThat(c.getStartupProbe().getHttpGet().getPath()).isEqualTo("/q/health/started");
            assertThat(c.getLivenessProbe().getHttpGet().getPath()).isEqualTo("/q/health/live");
            assertThat(c.getReadinessProbe().getHttpGet().getPath()).isEqualTo("/q/health/ready");
            assertThat(d.getSpec().getTemplate().getMetadata().getAnnotations())
                    .containsKey("checksum/config");
            assertThat(c.getImage()).isEqualTo("ghcr.io/tuneline/" + service + ":0.1.0");
        }
    }

    @Test
    void gpuSchedulingSettingsReachTheTrainingWorkerPodTemplate() throws IOException {
        List<JsonNode> docs = Chart.render("gpu-training.yaml");
        JsonNode cm = Chart.find(docs, "ConfigMap", "tl-tuneline-training-worker");
        PodTemplateSpec template =
                KubernetesSchema.podTemplate(
                        "worker pod template",
                        new YAMLMapper()
                                .readTree(cm.path("data").path("pod-template.yaml").asText()));
        var spec = template.getSpec();

        Container worker = spec.getContainers().get(0);
        assertThat(worker.getImage())
                .isEqualTo("registry.example.com/tuneline/training-worker-cuda:0.1.0-cu124");
        assertThat(worker.getResources().getLimits())
                .containsEntry("nvidia.com/gpu", new Quantity("2"))
                .containsEntry("memory", new Quantity("96Gi"));
        assertThat(worker.getResources().getRequests()).containsEntry("cpu", new Quantity("8"));
        assertThat(spec.getNodeSelector())
                .containsEntry("nvidia.com/gpu.product", "NVIDIA-A100-SXM4-80GB");
        assertThat(spec.getTolerations())
                .extracting(Toleration::getKey)
                .containsExactly("nvidia.com/gpu", "dedicated");
        assertThat(
                        spec.getAffinity()
                                .getNodeAffinity()
                                .getRequiredDuringSchedulingIgnoredDuringExecution()
                                .getNodeSelectorTerms())
                .hasSize(1);
        assertThat(spec.getRuntimeClassName()).isEqualTo("nvidia");
        assertThat(spec.getPriorityClassName()).isEqualTo("ml-training-high");
        assertThat(spec.getRestartPolicy()).isEqualTo("Never");
        assertThat(spec.getServiceAccountName()).isEqualTo("tl-tuneline-training");

        // The training controller turns this template into a run's Job.
        Path file = Files.createTempFile(Path.of("target"), "pod-template", ".yaml");
        Files.writeString(file, cm.path("data").path("pod-template.yaml").asText());
        Job job =
                new TrainingJobFactory(
                                new KubernetesExecutorSettings(
                                        "ml", file, "nvidia.com/gpu", 3600, 0))
                        .build(
                                new RunRequest(
                                        "sentiment-1",
                                        1,
                                        4,
                                        Optional.empty(),
                                        Optional.empty(),
                                        Map.of(),
                                        0,
                                        0));
        var runPod = job.getSpec().getTemplate().getSpec();
        assertThat(runPod.getContainers().get(0).getResources().getLimits())
                .containsEntry("nvidia.com/gpu", new Quantity("4"));
        assertThat(runPod.getRuntimeClassName()).isEqualTo("nvidia");
        assertThat(job.getSpec().getTemplate().getMetadata().getLabels())
                .containsEntry("app.kubernetes.io/component", "training-worker")
                .containsEntry("tuneline.io/job-id", "sentiment-1");

        // A change of the worker template rolls the training controller, which reads it at start.
        String before = trainingChecksum(docs, "checksum/worker");
        String after =
                trainingChecksum(
                        Chart.render("gpu-training.yaml", Map.of("training.worker.defaultGpus", 4)),
                        "checksum/worker");
        assertThat(after).isNotEqualTo(before);
    }

    @Test
    void trainingControllerMayManageJobsInItsOwnNamespaceOnly() {
        List<JsonNode> docs = Chart.render("minimal.yaml");
        assertThat(Chart.ofKind(docs, "ClusterRole")).isEmpty();
        assertThat(Chart.ofKind(docs, "ClusterRoleBinding")).isEmpty();
        Role role =
                (Role) KubernetesSchema.validate(Chart.find(docs, "Role", "tl-tuneline-training"));
        assertThat(role.getMetadata().getNamespace()).isEqualTo("ml");
        PolicyRule jobs =
                role.getRules().stream()
                        .filter(r -> r.getApiGroups().contains("batch"))
                        .findFirst()
                        .orElseThrow();
        assertThat(jobs.getResources()).containsExactly("jobs");
        assertThat(jobs.getVerbs())
                .containsExactlyInAnyOrder("create", "get", "list", "watch", "delete");
        assertThat(role.getRules())
                .flatExtracting(PolicyRule::getVerbs)
                .doesNotContain("*", "update", "patch", "escalate", "bind");
        JsonNode binding = Chart.find(docs, "RoleBinding", "tl-tuneline-training");
        assertThat(binding.path("subjects").get(0).path("name").asText())
                .isEqualTo("tl-tuneline-training");
        // Other services get no API token at all.
        assertThat(
                        Chart.find(docs, "ServiceAccount", "tl-tuneline-ingestion")
                                .path("automountServiceAccountToken")
                                .asBoolean())
                .isFalse();
    }

    @Test
    void externalKafkaWithTlsAndScramTakesEveryCredentialFromSecrets() {
        List<JsonNode> docs = Chart.render("external-tls-sasl.yaml");
        JsonNode config = Chart.find(docs, "ConfigMap", "tl-tuneline-ingestion").path("data");
        assertThat(config.path("KAFKA_SECURITY_PROTOCOL").asText()).isEqualTo("SASL_SSL");
        assertThat(config.path("KAFKA_SASL_MECHANISM").asText()).isEqualTo("SCRAM-SHA-512");
        assertThat(config.path("KAFKA_SSL_TRUSTSTORE_LOCATION").asText())
                .isEqualTo("/etc/tuneline/kafka-ca/ca.crt");

        Deployment d =
                (Deployment)
                        KubernetesSchema.validate(
                                Chart.find(docs, "Deployment", "tl-tuneline-registry"));
        List<EnvVar> env = d.getSpec().getTemplate().getSpec().getContainers().get(0).getEnv();
        assertThat(secretOf(env, "KAFKA_SASL_PASSWORD")).isEqualTo("tuneline-kafka-user");
        assertThat(env)
                .filteredOn(e -> e.getName().equals("KAFKA_SASL_USERNAME"))
                .singleElement()
                .extracting(EnvVar::getValue)
                .isEqualTo("tuneline");
        assertThat(env)
                .filteredOn(e -> e.getName().equals("KAFKA_SASL_JAAS_CONFIG"))
                .singleElement()
                .extracting(EnvVar::getValue)
                .asString()
                .contains("password=\"$(KAFKA_SASL_PASSWORD)\"");
        assertThat(secretOf(env, "S3_SECRET_KEY")).isEqualTo("minio-tuneline-credentials");
        assertThat(secretOf(env, "DB_PASSWORD")).isEqualTo("tuneline-db-app");
        assertThat(secretOf(env, "REGISTRY_API_TOKEN")).isEqualTo("tuneline-api-token");
        Deployment ingestion =
                (Deployment)
                        KubernetesSchema.validate(
                                Chart.find(docs, "Deployment", "tl-tuneline-ingestion"));
        assertThat(
                        secretOf(
                                ingestion
                                        .getSpec()
                                        .getTemplate()
                                        .getSpec()
                                        .getContainers()
                                        .get(0)
                                        .getEnv(),
                                "INGESTION_UPLOAD_TOKEN"))
                .as("uploads need the API token too")
                .isEqualTo("tuneline-api-token");
        assertThat(Chart.ofKind(docs, "Secret"))
                .as("existing secrets are used, none created")
                .isEmpty();
    }

    @Test
    void secretValuesNeverAppearOutsideSecrets() {
        List<JsonNode> docs = Chart.render("minimal.yaml");
        docs.stream()
                .filter(d -> !"Secret".equals(d.path("kind").asText()))
                .forEach(
                        d ->
                                assertThat(d.toString())
                                        .as(d.path("kind") + " " + d.path("metadata").path("name"))
                                        .doesNotContain("minio-secret-value", "db-secret-value"));
        assertThat(Chart.ofKind(docs, "Secret")).hasSize(2);
    }

    @Test
    void changingConfigurationRollsThePods() {
        String before = trainingChecksum(Chart.render("minimal.yaml"), "checksum/config");
        String after =
                trainingChecksum(
                        Chart.render("minimal.yaml", Map.of("objectStore.bucket", "other-bucket")),
                        "checksum/config");
        assertThat(after).isNotEqualTo(before);
    }

    @Test
    void strimziTopicsAreExactlyThePlatformTopics() {
        List<JsonNode> docs = Chart.render("everything-on.yaml");
        List<String> topics =
                Chart.ofKind(docs, "KafkaTopic").stream()
                        .map(t -> t.path("spec").path("topicName").asText())
                        .toList();
        assertThat(topics).containsExactlyInAnyOrderElementsOf(Topics.all());
        JsonNode dlq = Chart.find(docs, "KafkaTopic", "finetune-jobs-requested-dlq");
        assertThat(dlq.path("metadata").path("labels").path("strimzi.io/cluster").asText())
                .isEqualTo("tuneline");
        assertThat(dlq.path("spec").path("config").path("retention.ms").asLong())
                .isEqualTo(1209600000L);
    }

    @Test
    void alertsShipAsAPrometheusRuleAndServiceMonitorScrapesEveryService() {
        List<JsonNode> docs = Chart.render("everything-on.yaml");
        JsonNode rule = Chart.find(docs, "PrometheusRule", "tl-tuneline");
        List<String> alerts =
                StreamSupport.stream(rule.path("spec").path("groups").spliterator(), false)
                        .flatMap(g -> StreamSupport.stream(g.path("rules").spliterator(), false))
                        .map(r -> r.path("alert").asText())
                        .filter(a -> !a.isEmpty())
                        .toList();
        assertThat(alerts)
                .contains(
                        "TunelineServiceDown",
                        "TunelineJobFailureRateHigh",
                        "TunelineTrainingStuck",
                        "TunelineConsumerLagHigh",
                        "TunelineDeadLettersGrowing");
        JsonNode monitor = Chart.find(docs, "ServiceMonitor", "tl-tuneline");
        assertThat(monitor.path("spec").path("endpoints").get(0).path("path").asText())
                .isEqualTo("/q/metrics");
        assertThat(monitor.path("metadata").path("labels").path("release").asText())
                .isEqualTo("kube-prometheus-stack");
        List<JsonNode> dashboards =
                Chart.ofKind(docs, "ConfigMap").stream()
                        .filter(c -> c.path("metadata").path("labels").has("grafana_dashboard"))
                        .toList();
        assertThat(dashboards)
                .extracting(c -> c.path("metadata").path("name").asText())
                .contains("tl-tuneline-dashboard-overview", "tl-tuneline-dashboard-pipeline");
        assertThat(dashboards)
                .allSatisfy(
                        c -> {
                            assertThat(c.path("metadata").path("namespace").asText())
                                    .isEqualTo("monitoring");
                            assertThat(c.path("data").toString()).contains("${DS_PROMETHEUS}");
                        });
        assertThat(Chart.ofKind(docs, "PodDisruptionBudget")).hasSize(SERVICES.size());
        assertThat(Chart.ofKind(docs, "HorizontalPodAutoscaler")).hasSize(3);
    }

    @Test
    void theTrainingControllerAndTheRegistryRunAsOneReplica() {
        // The stateless services scale (ScaleOutEndToEndTest proves it); these two keep state
        // that a second replica would race (runs taken over at start-up, unlocked job rows).
        for (String key :
                List.of(
                        "training.replicaCount",
                        "registry.replicaCount",
                        "training.autoscaling.enabled",
                        "registry.autoscaling.enabled")) {
            Object value = key.endsWith("enabled") ? (Object) true : (Object) 2;
            assertThatThrownBy(() -> Chart.template("minimal.yaml", Map.of(key, value)))
                    .as(key)
                    .hasMessageContaining("/" + key.replace('.', '/'));
        }
        assertThat(Chart.template("minimal.yaml", Map.of("ingestion.replicaCount", 3)))
                .isNotEmpty();
    }

    @Test
    void schemaRejectsUnknownKeysAndWrongTypes() {
        assertThatThrownBy(() -> Chart.template("minimal.yaml", Map.of("ingestion.replicas", 2)))
                .hasMessageContaining("replicas");
        assertThatThrownBy(
                        () ->
                                Chart.template(
                                        "minimal.yaml",
                                        Map.of("training.worker.defaultGpus", "two")))
                .hasMessageContaining("defaultGpus");
        assertThatThrownBy(
                        () -> Chart.template("minimal.yaml", Map.of("training.executor", "slurm")))
                .hasMessageContaining("executor");
    }

    @Test
    void missingConnectionSettingsFailWithTheKeyToSet() {
        assertThatThrownBy(
                        () -> Chart.template("minimal.yaml", Map.of("kafka.bootstrapServers", "")))
                .hasMessageContaining("kafka.bootstrapServers is required");
        assertThatThrownBy(
                        () -> Chart.template("minimal.yaml", Map.of("objectStore.secretKey", "")))
                .hasMessageContaining(
                        "objectStore.secretKey is required unless objectStore.existingSecret is set");
        // Dataset uploads are never open in a cluster: the token has no default.
        assertThatThrownBy(
                        () ->
                                Chart.template(
                                        "minimal.yaml", Map.of("registryApi.existingSecret", "")))
                .hasMessageContaining("registryApi.existingSecret is required");
    }

    private static String trainingChecksum(List<JsonNode> docs, String annotation) {
        return Chart.find(docs, "Deployment", "tl-tuneline-training")
                .path("spec")
                .path("template")
                .path("metadata")
                .path("annotations")
                .path(annotation)
                .asText();
    }

    private static String secretOf(List<EnvVar> env, String name) {
        return env.stream()
                .filter(e -> e.getName().equals(name))
                .findFirst()
                .orElseThrow(() -> new AssertionError("no env " + name))
                .getValueFrom()
                .getSecretKeyRef()
                .getName();
    }
}
