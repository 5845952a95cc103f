package io.tuneline.helm;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import com.marcnuri.helm.LintResult;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.PodTemplateSpec;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.Toleration;
import io.fabric8.kubernetes.api.model.VolumeMount;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.kubernetes.api.model.batch.v1.Job;
import io.fabric8.kubernetes.api.model.rbac.PolicyRule;
import io.fabric8.kubernetes.api.model.rbac.Role;
import io.tuneline.common.topic.Topics;
import io.tuneline.training.kubernetes.KubernetesExecutorSettings;
import io.tuneline.training.kubernetes.KueueSettings;
import io.tuneline.training.kubernetes.TrainingJobFactory;
import io.tuneline.training.run.RunRequest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.StreamSupport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class ChartTest {
    private static final List<String> SERVICES =
            List.of("ingestion", "preprocessing", "training", "evaluation", "registry", "serving");

    @ParameterizedTest
    @ValueSource(
            strings = {
                "minimal.yaml",
                "gpu-training.yaml",
                "gpu-serving.yaml",
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

        assertScheduledOnGpus(
                spec,
                "registry.example.com/tuneline/training-worker-cuda:0.1.0-cu124",
                new GpuPod("2", "96Gi", "8", "ml-training-high"),
                "nvidia.com/gpu",
                "dedicated");
        assertThat(spec.getRestartPolicy()).isEqualTo("Never");
        assertThat(spec.getServiceAccountName()).isEqualTo("tl-tuneline-training");
        // The worker stores its checkpoint within the pod's grace period after SIGTERM, keeping
        // 15 s of it for the upload.
        assertThat(spec.getTerminationGracePeriodSeconds()).isEqualTo(120L);
        assertThat(spec.getContainers().get(0).getEnv())
                .anySatisfy(
                        e -> {
                            assertThat(e.getName()).isEqualTo("TUNELINE_STOP_GRACE_SECONDS");
                            assertThat(e.getValue()).isEqualTo("105");
                        });

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
    void gpuSchedulingSettingsReachTheServingPod() {
        List<JsonNode> docs = Chart.render("gpu-serving.yaml");
        Deployment d =
                (Deployment)
                        KubernetesSchema.validate(
                                Chart.find(docs, "Deployment", "tl-tuneline-serving"));
        var pod = d.getSpec().getTemplate().getSpec();
        assertScheduledOnGpus(
                pod,
                "registry.example.com/tuneline/serving-cuda:0.1.0-cu124",
                new GpuPod("1", "48Gi", "4", "ml-serving"),
                "nvidia.com/gpu");
        Container c = pod.getContainers().get(0);
        // The autoscaler owns the replica count.
        assertThat(d.getSpec().getReplicas()).isNull();
        assertThat(Chart.find(docs, "HorizontalPodAutoscaler", "tl-tuneline-serving")).isNotNull();
        assertThat(Chart.find(docs, "PodDisruptionBudget", "tl-tuneline-serving")).isNotNull();

        // Read-only root: the versions' files and libtorch go to size-limited emptyDirs.
        assertThat(c.getSecurityContext().getReadOnlyRootFilesystem()).isTrue();
        assertThat(c.getVolumeMounts())
                .extracting(VolumeMount::getMountPath)
                .contains("/tmp", "/var/cache/tuneline/engine");
        assertThat(pod.getVolumes())
                .filteredOn(v -> v.getName().equals("tmp") || v.getName().equals("engine-cache"))
                .allSatisfy(v -> assertThat(v.getEmptyDir().getSizeLimit()).isNotNull())
                .hasSize(2);
        JsonNode config = Chart.find(docs, "ConfigMap", "tl-tuneline-serving").path("data");
        assertThat(config.path("ENGINE_CACHE_DIR").asText())
                .isEqualTo("/var/cache/tuneline/engine");

        // Without GPUs (the default) the pod asks for none and needs no GPU runtime.
        var cpuPod =
                ((Deployment)
                                KubernetesSchema.validate(
                                        Chart.find(
                                                Chart.render("minimal.yaml"),
                                                "Deployment",
                                                "tl-tuneline-serving")))
                        .getSpec()
                        .getTemplate()
                        .getSpec();
        assertThat(cpuPod.getContainers().get(0).getResources().getLimits())
                .doesNotContainKey("nvidia.com/gpu");
        assertThat(cpuPod.getRuntimeClassName()).isNull();
    }

    @Test
    void servingAsksTheRegistryOfItsReleaseWithTheConfiguredLimits() {
        List<JsonNode> docs = Chart.render("gpu-serving.yaml");
        JsonNode config = Chart.find(docs, "ConfigMap", "tl-tuneline-serving").path("data");
        // The registry's Service of this release, on the port it serves.
        JsonNode registry = Chart.find(docs, "Service", "tl-tuneline-registry");
        assertThat(config.path("REGISTRY_URL").asText())
                .isEqualTo(
                        "http://"
                                + registry.path("metadata").path("name").asText()
                                + ":"
                                + registry.path("spec").path("ports").get(0).path("port").asInt());
        assertThat(config.path("TUNELINE_SERVING_PRELOAD").asText())
                .isEqualTo("sentiment:production,support-llama:3");
        // Evaluation's scenario stage replays requests against this release's serving Service.
        JsonNode serving = Chart.find(docs, "Service", "tl-tuneline-serving");
        assertThat(
                        Chart.find(docs, "ConfigMap", "tl-tuneline-evaluation")
                                .path("data")
                                .path("SERVING_URL")
                                .asText())
                .isEqualTo(
                        "http://"
                                + serving.path("metadata").path("name").asText()
                                + ":"
                                + serving.path("spec").path("ports").get(0).path("port").asInt());
        assertThat(config.path("TUNELINE_SERVING_BATCH_MAX_SIZE").asText()).isEqualTo("16");
        assertThat(config.path("TUNELINE_SERVING_BATCH_MAX_WAIT").asText()).isEqualTo("10ms");
        assertThat(config.path("TUNELINE_SERVING_LIMITS_MAX_QUEUED").asText()).isEqualTo("128");
        assertThat(config.path("TUNELINE_SERVING_LIMITS_MAX_LOADED_MODELS").asText())
                .isEqualTo("4");
        assertThat(config.path("TUNELINE_SERVING_LIMITS_MAX_INPUTS").asText()).isEqualTo("64");
        assertThat(config.path("QUARKUS_HTTP_LIMITS_MAX_BODY_SIZE").asText()).isEqualTo("2M");

        // Every tuneline.serving key the chart sets is one the service reads (ServingConfig).
        Set<String> known = ServingProperties.environmentNames();
        config.fieldNames()
                .forEachRemaining(
                        key -> {
                            if (key.startsWith("TUNELINE_SERVING_")) {
                                assertThat(known)
                                        .as("ServingConfig property for %s", key)
                                        .contains(key);
                            }
                        });

        Deployment d =
                (Deployment)
                        KubernetesSchema.validate(
                                Chart.find(docs, "Deployment", "tl-tuneline-serving"));
        Container c = d.getSpec().getTemplate().getSpec().getContainers().get(0);
        assertThat(c.getEnvFrom().get(0).getConfigMapRef().getName())
                .isEqualTo("tl-tuneline-serving");
        assertThat(secretOf(c.getEnv(), "REGISTRY_API_TOKEN")).isEqualTo("tuneline-api-token");
        assertThat(secretOf(c.getEnv(), "S3_SECRET_KEY")).isEqualTo("tl-tuneline-object-store");

        // A registry elsewhere.
        assertThat(
                        Chart.find(
                                        Chart.render(
                                                "minimal.yaml",
                                                Map.of(
                                                        "serving.registryUrl",
                                                        "https://registry.example.com")),
                                        "ConfigMap",
                                        "tl-tuneline-serving")
                                .path("data")
                                .path("REGISTRY_URL")
                                .asText())
                .isEqualTo("https://registry.example.com");
        assertThat(
                        Chart.ofKind(
                                        Chart.render(
                                                "minimal.yaml", Map.of("serving.enabled", false)),
                                        "Deployment")
                                .stream()
                                .map(x -> x.path("metadata").path("name").asText()))
                .hasSize(SERVICES.size() - 1)
                .doesNotContain("tl-tuneline-serving");
    }

    @Test
    void theRegistryPlansACpuRunForTheRunPodsCoresAndMemoryLimit() {
        // The chart's defaults: 4 cores requested, a 24Gi memory limit (above the 16Gi request).
        JsonNode defaults =
                Chart.find(Chart.render("minimal.yaml"), "ConfigMap", "tl-tuneline-registry")
                        .path("data");
        assertThat(defaults.path("TRAINING_POD_CPU").asText()).isEqualTo("4");
        assertThat(defaults.path("TRAINING_POD_MEMORY").asText()).isEqualTo("24Gi");
        JsonNode gpu =
                Chart.find(Chart.render("gpu-training.yaml"), "ConfigMap", "tl-tuneline-registry")
                        .path("data");
        assertThat(gpu.path("TRAINING_POD_CPU").asText()).isEqualTo("8");
        assertThat(gpu.path("TRAINING_POD_MEMORY").asText()).isEqualTo("96Gi");
        // Without a limit the request is what the run may count on.
        JsonNode requestOnly =
                Chart.find(
                                Chart.render(
                                        "minimal.yaml",
                                        Map.of("training.worker.resources.limits.memory", "null")),
                                "ConfigMap",
                                "tl-tuneline-registry")
                        .path("data");
        assertThat(requestOnly.path("TRAINING_POD_MEMORY").asText()).isEqualTo("16Gi");
        // A values file whose "resources:" is empty deletes the defaults: the chart still renders
        // (a run's pod without requests), and the registry falls back to its own figures.
        List<JsonNode> none =
                Chart.render("minimal.yaml", Map.of("training.worker.resources", "null"));
        JsonNode bare = Chart.find(none, "ConfigMap", "tl-tuneline-registry").path("data");
        assertThat(bare.has("TRAINING_POD_CPU")).isFalse();
        assertThat(bare.has("TRAINING_POD_MEMORY")).isFalse();
    }

    @Test
    void kserveInferenceServicesServeTheVersionsExportsAndAdapters() {
        List<JsonNode> docs = Chart.render("gpu-serving.yaml");
        assertThat(Chart.ofKind(docs, "InferenceService")).hasSize(2);
        assertThat(Chart.ofKind(Chart.render("minimal.yaml"), "InferenceService")).isEmpty();

        JsonNode merged =
                InferenceServiceSchema.validate(Chart.find(docs, "InferenceService", "sentiment"));
        JsonNode predictor = merged.path("spec").path("predictor");
        assertThat(predictor.path("model").path("modelFormat").path("name").asText())
                .isEqualTo("huggingface");
        assertThat(predictor.path("model").path("storageUri").asText())
                .isEqualTo("s3://tuneline/runs/sentiment-2026-11-30/model");
        assertThat(predictor.path("model").path("args").toString())
                .contains("--model_name=sentiment");
        assertThat(predictor.path("model").path("resources").path("limits").has("nvidia.com/gpu"))
                .as("gpus: 0")
                .isFalse();
        assertThat(predictor.path("serviceAccountName").asText()).isEqualTo("kserve-s3");
        assertThat(predictor.has("storageUris")).isFalse();

        JsonNode adapter =
                InferenceServiceSchema.validate(
                        Chart.find(docs, "InferenceService", "support-llama"));
        predictor = adapter.path("spec").path("predictor");
        // KServe refuses storageUri together with storageUris.
        assertThat(predictor.path("model").has("storageUri")).isFalse();
        assertThat(predictor.path("storageUris").findValuesAsText("uri"))
                .containsExactly(
                        "s3://models/meta-llama/Llama-3.2-1B-Instruct",
                        "s3://tuneline/runs/support-llama-lora-7/model/adapter");
        assertThat(predictor.path("storageUris").findValuesAsText("mountPath"))
                .containsExactly("/mnt/models/base", "/mnt/models/adapter");
        List<String> args = new ArrayList<>();
        predictor.path("model").path("args").forEach(a -> args.add(a.asText()));
        assertThat(args)
                .containsSubsequence(
                        "--model_dir=/mnt/models/base",
                        "--backend=vllm",
                        "--enable-lora",
                        "--lora-modules",
                        "support-llama=/mnt/models/adapter",
                        "--max-model-len=4096")
                .contains("--model_name=support-llama-base");
        assertThat(
                        predictor
                                .path("model")
                                .path("resources")
                                .path("limits")
                                .path("nvidia.com/gpu")
                                .asInt())
                .isEqualTo(1);
        // Scheduled on the GPU nodes as the serving service is.
        assertThat(predictor.path("runtimeClassName").asText()).isEqualTo("nvidia");
        assertThat(predictor.path("priorityClassName").asText()).isEqualTo("ml-serving");
        assertThat(predictor.path("tolerations").get(0).path("key").asText())
                .isEqualTo("nvidia.com/gpu");
        assertThat(predictor.path("minReplicas").asInt()).isEqualTo(1);
        assertThat(predictor.path("maxReplicas").asInt()).isEqualTo(2);
    }

    @Test
    void anInferenceServiceWithAnUnknownFieldOrAWrongTypeFailsKServesSchema() {
        JsonNode rendered =
                Chart.find(Chart.render("gpu-serving.yaml"), "InferenceService", "sentiment");

        ObjectNode misspelt = rendered.deepCopy();
        ((ObjectNode) misspelt.path("spec").path("predictor").path("model"))
                .put("storageURI", "s3://x");
        assertThatThrownBy(() -> KubernetesSchema.validate(misspelt))
                .hasMessageContaining("storageURI");

        ObjectNode misplaced = rendered.deepCopy();
        ((ObjectNode) misplaced.path("spec")).put("storageUri", "s3://x");
        assertThatThrownBy(() -> KubernetesSchema.validate(misplaced))
                .hasMessageContaining("storageUri");

        ObjectNode wrongType = rendered.deepCopy();
        ((ObjectNode) wrongType.path("spec").path("predictor")).put("minReplicas", "two");
        assertThatThrownBy(() -> KubernetesSchema.validate(wrongType))
                .hasMessageContaining("minReplicas");

        ObjectNode noFormatName = rendered.deepCopy();
        ((ObjectNode) noFormatName.path("spec").path("predictor").path("model").path("modelFormat"))
                .remove("name");
        assertThatThrownBy(() -> KubernetesSchema.validate(noFormatName))
                .hasMessageContaining("name");

        // The chart's values schema stops the same mistakes before rendering.
        assertThatThrownBy(() -> renderInferenceService("storageURI", "s3://x"))
                .hasMessageContaining("storageURI");
        assertThatThrownBy(() -> renderInferenceService("adapter", true))
                .hasMessageContaining("baseStorageUri");
    }

    /** An InferenceService entry with a name, a job id and one more field. */
    private static String renderInferenceService(String field, Object value) {
        String entry = "serving.kserve.inferenceServices[0].";
        return Chart.template(
                "minimal.yaml",
                Map.of(entry + "name", "x", entry + "jobId", "j", entry + field, value));
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
    void kueueQueuesEveryRunsJobSuspendedInTheLocalQueueTheChartCreates() throws Exception {
        Map<String, Object> kueue =
                Map.of(
                        "training.kueue.enabled", true,
                        "training.kueue.queueName", "ml-training",
                        "training.kueue.createLocalQueue", true,
                        "training.kueue.clusterQueue", "gpu-a100",
                        "training.kueue.priorityClasses.0", "tuneline-normal",
                        "training.kueue.priorityClasses.10", "tuneline-high");
        List<JsonNode> docs = Chart.render("gpu-training.yaml", kueue);
        docs.forEach(KubernetesSchema::validate);

        JsonNode queue = LocalQueueSchema.validate(Chart.find(docs, "LocalQueue", "ml-training"));
        assertThat(queue.path("metadata").path("namespace").asText()).isEqualTo("ml");
        assertThat(queue.path("spec").path("clusterQueue").asText()).isEqualTo("gpu-a100");
        assertThat(queue.path("spec").has("stopPolicy")).isFalse();

        JsonNode config = Chart.find(docs, "ConfigMap", "tl-tuneline-training").path("data");
        assertThat(config.path("TUNELINE_TRAINING_KUBERNETES_KUEUE_ENABLED").asText())
                .isEqualTo("true");
        assertThat(config.path("TUNELINE_TRAINING_KUBERNETES_KUEUE_QUEUE_NAME").asText())
                .isEqualTo("ml-training");
        String classes =
                config.path("TUNELINE_TRAINING_KUBERNETES_KUEUE_PRIORITY_CLASSES").asText();
        assertThat(classes).isEqualTo("0=tuneline-normal,10=tuneline-high");
        assertThat(config.has("TUNELINE_TRAINING_KUBERNETES_KUEUE_DEFAULT_PRIORITY_CLASS"))
                .isFalse();

        // The training service builds a run's Job from the rendered template and these settings:
        // suspended, in the queue, with the run's WorkloadPriorityClass, and a valid batch/v1 Job.
        JsonNode cm = Chart.find(docs, "ConfigMap", "tl-tuneline-training-worker");
        Path file = Files.createTempFile(Path.of("target"), "pod-template", ".yaml");
        Files.writeString(file, cm.path("data").path("pod-template.yaml").asText());
        KueueSettings settings =
                new KueueSettings(
                        Boolean.parseBoolean(
                                config.path("TUNELINE_TRAINING_KUBERNETES_KUEUE_ENABLED").asText()),
                        config.path("TUNELINE_TRAINING_KUBERNETES_KUEUE_QUEUE_NAME").asText(),
                        KueueSettings.parsePriorityClasses(List.of(classes.split(","))),
                        Optional.empty());
        Job job =
                new TrainingJobFactory(
                                new KubernetesExecutorSettings(
                                        "ml", file, "nvidia.com/gpu", 3600, 0, settings))
                        .build(
                                new RunRequest(
                                        "sentiment-1",
                                        1,
                                        2,
                                        Optional.empty(),
                                        Optional.empty(),
                                        Map.of(),
                                        0,
                                        10));
        JsonNode jobJson =
                new com.fasterxml.jackson.databind.ObjectMapper()
                        .readTree(io.fabric8.kubernetes.client.utils.Serialization.asJson(job));
        Job strict = KubernetesSchema.parseStrictly(jobJson, Job.class);
        assertThat(strict.getSpec().getSuspend()).isTrue();
        assertThat(strict.getMetadata().getLabels())
                .containsEntry("kueue.x-k8s.io/queue-name", "ml-training")
                .containsEntry("kueue.x-k8s.io/priority-class", "tuneline-high");
        assertThat(strict.getMetadata().getNamespace())
                .isEqualTo(queue.path("metadata").path("namespace").asText());

        // The Role adds reading Kueue's Workloads (why a Job waits), nothing else of Kueue's.
        Role role =
                (Role) KubernetesSchema.validate(Chart.find(docs, "Role", "tl-tuneline-training"));
        PolicyRule workloads =
                role.getRules().stream()
                        .filter(r -> r.getApiGroups().contains("kueue.x-k8s.io"))
                        .findFirst()
                        .orElseThrow();
        assertThat(workloads.getApiGroups()).containsExactly("kueue.x-k8s.io");
        assertThat(workloads.getResources()).containsExactly("workloads");
        assertThat(workloads.getVerbs()).containsExactlyInAnyOrder("get", "list");
        assertThat(
                        ((Role)
                                        KubernetesSchema.validate(
                                                Chart.find(
                                                        Chart.render("gpu-training.yaml"),
                                                        "Role",
                                                        "tl-tuneline-training")))
                                .getRules())
                .flatExtracting(PolicyRule::getApiGroups)
                .doesNotContain("kueue.x-k8s.io");
    }

    @Test
    void withoutKueueNoQueueIsRenderedAndRunsStartAtOnce() {
        List<JsonNode> docs = Chart.render("gpu-training.yaml");
        assertThat(Chart.ofKind(docs, "LocalQueue")).isEmpty();
        JsonNode config = Chart.find(docs, "ConfigMap", "tl-tuneline-training").path("data");
        assertThat(config.path("TUNELINE_TRAINING_KUBERNETES_KUEUE_ENABLED").asText())
                .isEqualTo("false");
        assertThat(config.has("TUNELINE_TRAINING_KUBERNETES_KUEUE_QUEUE_NAME")).isFalse();
        // Kueue on with a queue the cluster's admin made: the settings, no LocalQueue.
        List<JsonNode> admins =
                Chart.render("gpu-training.yaml", Map.of("training.kueue.enabled", true));
        assertThat(Chart.ofKind(admins, "LocalQueue")).isEmpty();
        assertThat(
                        Chart.find(admins, "ConfigMap", "tl-tuneline-training")
                                .path("data")
                                .path("TUNELINE_TRAINING_KUBERNETES_KUEUE_QUEUE_NAME")
                                .asText())
                .isEqualTo("tuneline-training");
    }

    @Test
    void aLocalQueueWithAnUnknownFieldOrAWrongTypeFailsKueuesTypes() {
        List<JsonNode> docs = Chart.render("everything-on.yaml");
        JsonNode config = Chart.find(docs, "ConfigMap", "tl-tuneline-training").path("data");
        assertThat(config.path("TUNELINE_TRAINING_KUBERNETES_KUEUE_PRIORITY_CLASSES").asText())
                .isEqualTo("0=tuneline-normal,10=tuneline-high");
        assertThat(
                        config.path("TUNELINE_TRAINING_KUBERNETES_KUEUE_DEFAULT_PRIORITY_CLASS")
                                .asText())
                .isEqualTo("tuneline-low");
        JsonNode rendered = Chart.find(docs, "LocalQueue", "tuneline-training");
        assertThat(rendered.path("spec").path("stopPolicy").asText()).isEqualTo("None");
        LocalQueueSchema.validate(rendered);

        ObjectNode misspelt = rendered.deepCopy();
        ((ObjectNode) misspelt.path("spec")).put("clusterqueue", "gpu-a100");
        assertThatThrownBy(() -> KubernetesSchema.validate(misspelt))
                .hasMessageContaining("spec.clusterqueue is not a field here");

        ObjectNode wrongType = rendered.deepCopy();
        ((ObjectNode) wrongType.path("spec")).put("clusterQueue", 5);
        assertThatThrownBy(() -> KubernetesSchema.validate(wrongType))
                .hasMessageContaining("spec.clusterQueue must be a string");

        ObjectNode badName = rendered.deepCopy();
        ((ObjectNode) badName.path("spec")).put("clusterQueue", "GPU_A100");
        assertThatThrownBy(() -> KubernetesSchema.validate(badName))
                .hasMessageContaining("DNS subdomain");

        ObjectNode badPolicy = rendered.deepCopy();
        ((ObjectNode) badPolicy.path("spec")).put("stopPolicy", "Pause");
        assertThatThrownBy(() -> KubernetesSchema.validate(badPolicy))
                .hasMessageContaining("spec.stopPolicy must be one of");

        ObjectNode fair = rendered.deepCopy();
        ((ObjectNode) fair.path("spec")).putObject("fairSharing").put("weight", "2");
        LocalQueueSchema.validate(fair);
        ((ObjectNode) fair.path("spec").path("fairSharing")).put("weight", "heavy");
        assertThatThrownBy(() -> KubernetesSchema.validate(fair))
                .hasMessageContaining("spec.fairSharing.weight must be a quantity");
        ((ObjectNode) fair.path("spec").path("fairSharing")).remove("weight");
        ((ObjectNode) fair.path("spec").path("fairSharing")).put("share", 1);
        assertThatThrownBy(() -> KubernetesSchema.validate(fair))
                .hasMessageContaining("spec.fairSharing.share is not a field here");

        ObjectNode withStatus = rendered.deepCopy();
        withStatus.putObject("status").put("pendingWorkloads", 0);
        assertThatThrownBy(() -> KubernetesSchema.validate(withStatus))
                .hasMessageContaining("status is not a field here");

        ObjectNode badMeta = rendered.deepCopy();
        ((ObjectNode) badMeta.path("metadata")).put("label", "x");
        assertThatThrownBy(() -> KubernetesSchema.validate(badMeta)).hasMessageContaining("label");
    }

    @Test
    void kueueValuesAreCheckedBeforeRendering() {
        assertThatThrownBy(
                        () ->
                                Chart.template(
                                        "minimal.yaml",
                                        Map.of(
                                                "training.kueue.enabled", true,
                                                "training.kueue.createLocalQueue", true)))
                .hasMessageContaining(
                        "training.kueue.clusterQueue is required with"
                                + " training.kueue.createLocalQueue");
        assertThatThrownBy(
                        () ->
                                Chart.template(
                                        "minimal.yaml",
                                        Map.of(
                                                "training.kueue.enabled",
                                                true,
                                                "training.executor",
                                                "local")))
                .hasMessageContaining("training.kueue.enabled needs training.executor kubernetes");
        assertThatThrownBy(
                        () -> Chart.template("minimal.yaml", Map.of("training.kueue.queue", "q")))
                .hasMessageContaining("queue");
        assertThatThrownBy(
                        () ->
                                Chart.template(
                                        "minimal.yaml",
                                        Map.of("training.kueue.priorityClasses.high", "x")))
                .hasMessageContaining("priorityClasses");
        assertThatThrownBy(
                        () ->
                                Chart.template(
                                        "minimal.yaml",
                                        Map.of("training.kueue.stopPolicy", "Pause")))
                .hasMessageContaining("stopPolicy");
        assertThatThrownBy(
                        () ->
                                Chart.template(
                                        "minimal.yaml",
                                        Map.of("training.kueue.queueName", "ML_Queue")))
                .hasMessageContaining("queueName");
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
    void aPrivateCaOfTheObjectStoreReachesEveryServiceAndTheWorker() throws IOException {
        List<JsonNode> docs = Chart.render("external-tls-sasl.yaml");
        List<JsonNode> deployments = Chart.ofKind(docs, "Deployment");
        assertThat(deployments).isNotEmpty();
        for (JsonNode doc : deployments) {
            Deployment d = (Deployment) KubernetesSchema.validate(doc);
            String name = d.getMetadata().getName();
            assertThat(Chart.find(docs, "ConfigMap", name).path("data").path("S3_CA_FILE").asText())
                    .as(name)
                    .isEqualTo("/etc/tuneline/s3-ca/ca.crt");
            assertTrustsTheStoreCa(name, d.getSpec().getTemplate().getSpec());
        }
        JsonNode cm = Chart.find(docs, "ConfigMap", "tl-tuneline-training-worker");
        assertTrustsTheStoreCa(
                "worker pod template",
                KubernetesSchema.podTemplate(
                                "worker pod template",
                                new YAMLMapper()
                                        .readTree(
                                                cm.path("data").path("pod-template.yaml").asText()))
                        .getSpec());
    }

    private static void assertTrustsTheStoreCa(
            String what, io.fabric8.kubernetes.api.model.PodSpec spec) {
        assertThat(spec.getVolumes())
                .as(what)
                .filteredOn(v -> v.getName().equals("s3-ca"))
                .singleElement()
                .satisfies(
                        v ->
                                assertThat(v.getSecret().getSecretName())
                                        .isEqualTo("minio-tenant-ca"));
        assertThat(spec.getContainers().get(0).getVolumeMounts())
                .as(what)
                .filteredOn(m -> m.getName().equals("s3-ca"))
                .singleElement()
                .satisfies(m -> assertThat(m.getMountPath()).isEqualTo("/etc/tuneline/s3-ca"));
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
                        "TunelineDeadLettersGrowing",
                        "TunelineServingErrorsHigh",
                        "TunelineServingLatencyHigh");
        JsonNode monitor = Chart.find(docs, "ServiceMonitor", "tl-tuneline");
        assertThat(monitor.path("spec").path("endpoints").get(0).path("path").asText())
                .isEqualTo("/q/metrics");
        assertThat(monitor.path("metadata").path("labels").path("release").asText())
                .isEqualTo("kube-prometheus-stack");
        // Serving's Service is one the monitor selects, on the port it scrapes.
        JsonNode serving = Chart.find(docs, "Service", "tl-tuneline-serving");
        monitor.path("spec")
                .path("selector")
                .path("matchLabels")
                .fields()
                .forEachRemaining(
                        label ->
                                assertThat(
                                                serving.path("metadata")
                                                        .path("labels")
                                                        .path(label.getKey())
                                                        .asText())
                                        .isEqualTo(label.getValue().asText()));
        assertThat(serving.path("spec").path("ports").get(0).path("name").asText())
                .isEqualTo(monitor.path("spec").path("endpoints").get(0).path("port").asText());
        List<JsonNode> dashboards =
                Chart.ofKind(docs, "ConfigMap").stream()
                        .filter(c -> c.path("metadata").path("labels").has("grafana_dashboard"))
                        .toList();
        assertThat(dashboards)
                .extracting(c -> c.path("metadata").path("name").asText())
                .contains(
                        "tl-tuneline-dashboard-overview",
                        "tl-tuneline-dashboard-pipeline",
                        "tl-tuneline-dashboard-serving");
        assertThat(dashboards)
                .allSatisfy(
                        c -> {
                            assertThat(c.path("metadata").path("namespace").asText())
                                    .isEqualTo("monitoring");
                            assertThat(c.path("data").toString()).contains("${DS_PROMETHEUS}");
                        });
        assertThat(Chart.ofKind(docs, "PodDisruptionBudget")).hasSize(SERVICES.size());
        assertThat(Chart.ofKind(docs, "HorizontalPodAutoscaler")).hasSize(4);
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
        assertThatThrownBy(() -> Chart.template("minimal.yaml", Map.of("serving.gpu", 1)))
                .hasMessageContaining("gpu");
        assertThatThrownBy(() -> Chart.template("minimal.yaml", Map.of("serving.gpus", "one")))
                .hasMessageContaining("gpus");
        assertThatThrownBy(
                        () ->
                                Chart.template(
                                        "minimal.yaml", Map.of("serving.batch.maxWait", "soon")))
                .hasMessageContaining("maxWait");
        assertThatThrownBy(
                        () -> Chart.template("minimal.yaml", Map.of("serving.limits.maxQueue", 10)))
                .hasMessageContaining("maxQueue");
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

    /** What a GPU pod of the test values asks for: GPUs, memory limit, CPU request, priority. */
    private record GpuPod(String gpus, String memory, String cpu, String priorityClass) {}

    /** The GPU settings of gpu-training.yaml / gpu-serving.yaml as they reach a pod. */
    private static void assertScheduledOnGpus(
            PodSpec pod, String image, GpuPod expected, String... tolerationKeys) {
        Container c = pod.getContainers().get(0);
        assertThat(c.getImage()).isEqualTo(image);
        assertThat(c.getResources().getLimits())
                .containsEntry("nvidia.com/gpu", new Quantity(expected.gpus()))
                .containsEntry("memory", new Quantity(expected.memory()));
        assertThat(c.getResources().getRequests())
                .containsEntry("cpu", new Quantity(expected.cpu()));
        assertThat(pod.getNodeSelector())
                .containsEntry("nvidia.com/gpu.product", "NVIDIA-A100-SXM4-80GB");
        assertThat(pod.getTolerations())
                .extracting(Toleration::getKey)
                .containsExactly(tolerationKeys);
        assertThat(
                        pod.getAffinity()
                                .getNodeAffinity()
                                .getRequiredDuringSchedulingIgnoredDuringExecution()
                                .getNodeSelectorTerms())
                .hasSize(1);
        assertThat(pod.getRuntimeClassName()).isEqualTo("nvidia");
        assertThat(pod.getPriorityClassName()).isEqualTo(expected.priorityClass());
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
