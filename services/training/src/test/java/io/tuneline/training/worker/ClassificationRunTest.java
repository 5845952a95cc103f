package io.tuneline.training.worker;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tuneline.common.store.ArtifactStore;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.BaseModel;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.Hyperparameters;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.LayerFreezing;
import io.tuneline.proto.v1.LoraParams;
import io.tuneline.proto.v1.MethodSpec;
import io.tuneline.proto.v1.Task;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.proto.v1.TrainingProgress;
import io.tuneline.testing.InMemoryS3Server;
import io.tuneline.training.run.RunStore;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The worker's training of one attempt, on the real MiniLM, against a real S3 server. */
class ClassificationRunTest {
    private static InMemoryS3Server server;
    private static ArtifactStore store;
    @TempDir Path scratch;

    @BeforeAll
    static void start() {
        server = InMemoryS3Server.start();
        store = server.newStore("tuneline");
    }

    @AfterAll
    static void stop() {
        store.close();
        server.close();
    }

    private static DatasetPrepared prepare(String jobId, MethodSpec method) {
        return prepare(jobId, method, "minilm-l6");
    }

    private static DatasetPrepared prepare(String jobId, MethodSpec method, String baseModel) {
        ArtifactRef train =
                store.put(
                        store.uri("datasets/" + jobId + "/prepared/train.jsonl"),
                        io.tuneline.training.TrainingFixtures.tinySentimentJsonl(),
                        "application/jsonl");
        DatasetPrepared prepared =
                DatasetPrepared.newBuilder()
                        .setJobId(jobId)
                        .setJob(
                                JobRequested.newBuilder()
                                        .setJobId(jobId)
                                        .setBaseModel(BaseModel.newBuilder().setRef(baseModel))
                                        .setTask(Task.TASK_SEQUENCE_CLASSIFICATION)
                                        .setMethod(method)
                                        .setHyperparameters(
                                                Hyperparameters.newBuilder()
                                                        .setEpochs(2)
                                                        .setBatchSize(8)
                                                        .setLearningRate(2e-3)
                                                        .setMaxSeqLength(32)))
                        .setTrain(train)
                        // The training lines again: this test checks the wiring, not the model.
                        .setValidation(train)
                        .addLabels("neg")
                        .addLabels("pos")
                        .build();
        new RunStore(store).writeInput(prepared);
        return prepared;
    }

    @Test
    void theSameJobTrainsTheSameModelTwice() throws Exception {
        MethodSpec lora =
                MethodSpec.newBuilder().setLora(LoraParams.newBuilder().setRank(4)).build();
        prepare("same-a", lora);
        prepare("same-b", lora);
        TrainingCompleted a =
                new ClassificationRun(store, p -> {}, scratch.resolve("a")).run("same-a", 1);
        TrainingCompleted b =
                new ClassificationRun(store, p -> {}, scratch.resolve("b")).run("same-b", 1);
        assertThat(b.getFinalLoss()).isEqualTo(a.getFinalLoss());
        // The adapter (LoRA matrices, randomly initialised) is byte for byte the same.
        assertThat(b.getModelFiles(2).getUri()).endsWith("adapter/adapter_model.safetensors");
        assertThat(b.getModelFiles(2).getSha256()).isEqualTo(a.getModelFiles(2).getSha256());
    }

    @Test
    void aComparisonMethodsRunWritesUnderItsRunIdAndReportsUnderTheJob() throws Exception {
        DatasetPrepared prepared =
                prepare(
                        "cmp-run-1",
                        MethodSpec.newBuilder()
                                .setLora(LoraParams.newBuilder().setRank(4))
                                .build());
        RunStore runs = new RunStore(store);
        runs.writeInput(RunStore.comparisonRunId("cmp-run-1", "lora"), prepared);
        List<TrainingProgress> progress = new CopyOnWriteArrayList<>();

        TrainingCompleted result =
                new ClassificationRun(store, progress::add, scratch).run("cmp-run-1.lora", 1);

        assertThat(runs.result("cmp-run-1.lora")).contains(result);
        assertThat(runs.result("cmp-run-1")).isEmpty();
        assertThat(result.getJobId()).isEqualTo("cmp-run-1");
        assertThat(result.getModel().getUri())
                .isEqualTo("s3://tuneline/runs/cmp-run-1.lora/model/");
        assertThat(progress)
                .isNotEmpty()
                .allSatisfy(
                        p -> {
                            assertThat(p.getJobId()).isEqualTo("cmp-run-1");
                            assertThat(p.getRunId()).isEqualTo("cmp-run-1.lora-a1");
                        });
        assertThat(store.exists(store.uri("runs/cmp-run-1.lora/metrics.jsonl"))).isTrue();
    }

    @Test
    void aLoraRunWritesTheModelTheAdapterAndTheResultAndReportsProgress() throws Exception {
        prepare(
                "lora-run-1",
                MethodSpec.newBuilder().setLora(LoraParams.newBuilder().setRank(8)).build());
        List<TrainingProgress> progress = new CopyOnWriteArrayList<>();

        TrainingCompleted result =
                new ClassificationRun(store, progress::add, scratch).run("lora-run-1", 1);

        assertThat(new RunStore(store).result("lora-run-1")).contains(result);
        assertThat(result.getSteps()).isEqualTo(4);
        assertThat(result.getTrainableParameters())
                .isEqualTo(6 * 2 * (8 * 384 + 384 * 8) + 384 * 2 + 2);
        // What a method comparison reads: the worker's peak resident memory (this test JVM's,
        // libtorch and MiniLM included, so well above MiniLM's 90 MB of weights) and the run's
        // throughput.
        assertThat(result.getPeakMemoryBytes()).isGreaterThan(90L << 20);
        assertThat(result.getTokensPerSecond())
                .isPositive()
                .isEqualTo(progress.get(progress.size() - 1).getTokensPerSecond());
        assertThat(result.getModel().getUri()).isEqualTo("s3://tuneline/runs/lora-run-1/model/");
        assertThat(result.getModelFilesList())
                .extracting(ArtifactRef::getUri)
                .containsExactly(
                        "s3://tuneline/runs/lora-run-1/model/model.safetensors",
                        "s3://tuneline/runs/lora-run-1/model/adapter/adapter_config.json",
                        "s3://tuneline/runs/lora-run-1/model/adapter/adapter_model.safetensors",
                        "s3://tuneline/runs/lora-run-1/model/config.json",
                        "s3://tuneline/runs/lora-run-1/model/tokenizer.json");
        assertThat(progress).isNotEmpty();
        TrainingProgress last = progress.get(progress.size() - 1);
        assertThat(last.getStep()).isEqualTo(last.getTotalSteps()).isEqualTo(4);
        assertThat(last.getRunId()).isEqualTo("lora-run-1-a1");
        // One validation per epoch (2 steps each), both published despite the rate limit.
        assertThat(progress.stream().filter(TrainingProgress::hasValidationLoss))
                .extracting(TrainingProgress::getStep)
                .containsExactly(2L, 4L);
        assertThat(result.getFinalValidationLoss())
                .isEqualTo(last.getValidationLoss())
                .isPositive();

        Path weights = download(result.getModelFiles(0));
        try (SafetensorsFile f = SafetensorsFile.open(weights)) {
            assertThat(f.info("classifier.weight").shape()).containsExactly(2, 384);
            assertThat(f.names()).hasSize(101 + 2).noneMatch(n -> n.contains("lora_"));
        }
        // The adapter as PEFT saves it: its matrices and the head, under PEFT's names.
        Path adapter = download(result.getModelFiles(2));
        try (SafetensorsFile f = SafetensorsFile.open(adapter)) {
            assertThat(f.names())
                    .hasSize(6 * 2 * 2 + 2)
                    .allMatch(n -> n.startsWith("base_model.model."))
                    .filteredOn(n -> !n.contains("lora_"))
                    .containsExactlyInAnyOrder(
                            "base_model.model.classifier.weight",
                            "base_model.model.classifier.bias");
            assertThat(
                            f.info(
                                            "base_model.model.encoder.layer.5.attention.self.value.lora_B.weight")
                                    .shape())
                    .containsExactly(384, 8);
        }
        String config = Files.readString(download(result.getModelFiles(1)));
        assertThat(config).contains("\"peft_type\" : \"LORA\"").contains("\"r\" : 8");
    }

    /**
     * A QLoRA job reads the built-in MiniLM's linear weights straight into NF4 before the
     * classifier is initialized (so it never holds them in fp32), trains with activation
     * checkpointing (the QLoRA default) and writes the merged model and the LoRA adapter.
     */
    @Test
    void aQloraRunStreamsTheBaseIntoNf4TrainsAndWritesTheMergedModel() throws Exception {
        prepare(
                "qlora-run-1",
                MethodSpec.newBuilder()
                        .setQlora(
                                io.tuneline.proto.v1.QloraParams.newBuilder()
                                        .setLora(LoraParams.newBuilder().setRank(8)))
                        .build());
        TrainingCompleted result =
                new ClassificationRun(store, p -> {}, scratch.resolve("qlora"))
                        .run("qlora-run-1", 1);

        assertThat(result.getSteps()).isEqualTo(4);
        assertThat(result.getFinalLoss()).isPositive();
        // LoRA r 8 on query and value and the head train; the NF4 base does not.
        assertThat(result.getTrainableParameters())
                .isEqualTo(6 * 2 * (8 * 384 + 384 * 8) + 384 * 2 + 2);
        Path weights = download(result.getModelFiles(0));
        try (SafetensorsFile f = SafetensorsFile.open(weights)) {
            // The merged model holds every linear weight again, dequantized, in fp32.
            assertThat(f.info("encoder.layer.0.attention.self.query.weight").shape())
                    .containsExactly(384, 384);
            assertThat(f.names()).hasSize(101 + 2).noneMatch(n -> n.contains("lora_"));
        }
    }

    /**
     * A tuned model is a Hugging Face directory in the store, and the worker takes that s3:// URI
     * as the base of the next job: with everything but the head frozen, the second model's encoder
     * is the first one's merged weights, bit for bit (the built-in MiniLM's would differ by the
     * merged LoRA update).
     */
    @Test
    void aTunedModelInTheStoreIsTheBaseOfTheNextJob() throws Exception {
        prepare(
                "chain-1",
                MethodSpec.newBuilder().setLora(LoraParams.newBuilder().setRank(4)).build());
        TrainingCompleted first =
                new ClassificationRun(store, p -> {}, scratch.resolve("first")).run("chain-1", 1);
        String firstModel = first.getModel().getUri();
        prepare(
                "chain-2",
                MethodSpec.newBuilder()
                        .setFreeze(LayerFreezing.newBuilder().setHeadOnly(true))
                        .build(),
                firstModel);
        TrainingCompleted second =
                new ClassificationRun(store, p -> {}, scratch.resolve("second")).run("chain-2", 1);

        assertThat(second.getTrainableParameters()).isEqualTo(384 * 2 + 2);
        Path a = download(first.getModelFiles(0));
        Path b = download(second.getModelFiles(0));
        try (SafetensorsFile fa = SafetensorsFile.open(a);
                SafetensorsFile fb = SafetensorsFile.open(b)) {
            List<String> encoder =
                    fa.names().stream().filter(n -> !n.startsWith("classifier.")).toList();
            assertThat(encoder).hasSize(101);
            for (String name : encoder) {
                assertThat(fb.floats(name)).as(name).isEqualTo(fa.floats(name));
            }
            assertThat(fb.floats("classifier.weight")).isNotEqualTo(fa.floats("classifier.weight"));
        }
        String config =
                Files.readString(
                        download(
                                second.getModelFilesList().stream()
                                        .filter(f -> f.getUri().endsWith("/config.json"))
                                        .findFirst()
                                        .orElseThrow()));
        assertThat(config)
                .contains("\"model_type\" : \"bert\"")
                .contains("\"base_model\" : \"" + firstModel + "\"")
                .contains("\"1\" : \"pos\"");

        prepare(
                "chain-3",
                MethodSpec.newBuilder().setLora(LoraParams.getDefaultInstance()).build(),
                "s3://tuneline/runs/no-such-run/model/");
        assertThatThrownBy(
                        () ->
                                new ClassificationRun(store, p -> {}, scratch.resolve("third"))
                                        .run("chain-3", 1))
                .hasMessageContaining("s3://tuneline/runs/no-such-run/model/")
                .hasMessageContaining("config.json");
    }

    /**
     * Prompt tuning cannot be merged: the model directory holds the base's weights with the trained
     * head, the method's state beside them (which the engine restores) and PEFT's prompt-learning
     * adapter; such a model is not the base of a next job.
     */
    @Test
    void aPromptTuningRunWritesTheMethodStateAndThePeftAdapterAndIsNoBaseForAnotherJob()
            throws Exception {
        prepare(
                "prompt-run-1",
                MethodSpec.newBuilder()
                        .setPrompt(
                                io.tuneline.proto.v1.PromptTuningParams.newBuilder()
                                        .setNumVirtualTokens(4)
                                        .setInitText("Is this review positive?"))
                        .build());
        TrainingCompleted result =
                new ClassificationRun(store, p -> {}, scratch.resolve("prompt"))
                        .run("prompt-run-1", 1);

        assertThat(result.getTrainableParameters()).isEqualTo(4 * 384 + 384 * 2 + 2);
        String prefix = "s3://tuneline/runs/prompt-run-1/model/";
        assertThat(result.getModelFilesList())
                .extracting(ArtifactRef::getUri)
                .containsExactly(
                        prefix + "model.safetensors",
                        prefix + "adapter/adapter_config.json",
                        prefix + "adapter/adapter_model.safetensors",
                        prefix + "config.json",
                        prefix + "tokenizer.json",
                        prefix + io.tuneline.engine.method.MethodState.CONFIG,
                        prefix + io.tuneline.engine.method.MethodState.WEIGHTS);
        String state = Files.readString(download(result.getModelFiles(5)));
        assertThat(state).contains("\"method\" : \"PROMPT\"").contains("\"init\" : \"TEXT\"");
        try (SafetensorsFile f = SafetensorsFile.open(download(result.getModelFiles(6)))) {
            assertThat(f.info("prompt_encoder.embedding.weight").shape()).containsExactly(4, 384);
        }
        try (SafetensorsFile f = SafetensorsFile.open(download(result.getModelFiles(2)))) {
            assertThat(f.info("prompt_embeddings").shape()).containsExactly(4, 384);
        }
        assertThat(Files.readString(download(result.getModelFiles(1))))
                .contains("\"peft_type\" : \"PROMPT_TUNING\"")
                .contains("Is this review positive?");

        prepare("after-prompt", MethodSpec.getDefaultInstance(), prefix);
        assertThatThrownBy(
                        () ->
                                new ClassificationRun(store, p -> {}, scratch.resolve("after"))
                                        .run("after-prompt", 1))
                .hasMessageContaining("was tuned with PROMPT, which cannot be merged");
    }

    /**
     * Bottleneck adapters have no PEFT layout: the adapter directory is the {@code adapters}
     * library's (config, weights, and the classification head's config and weights), beside the
     * method's state.
     */
    @Test
    void anAdapterRunWritesTheAdaptersLibrarysLayoutAndTheMethodState() throws Exception {
        prepare(
                "adapter-run-1",
                MethodSpec.newBuilder()
                        .setAdapter(
                                io.tuneline.proto.v1.AdapterParams.newBuilder()
                                        .setPlacement("houlsby"))
                        .build());
        TrainingCompleted result =
                new ClassificationRun(store, p -> {}, scratch.resolve("adapter"))
                        .run("adapter-run-1", 1);

        // Houlsby: two adapters per layer, 384 -> 24 -> 384 each, and the head.
        assertThat(result.getTrainableParameters())
                .isEqualTo(6 * 2 * (2 * 384 * 24 + 24 + 384) + 384 * 2 + 2);
        String prefix = "s3://tuneline/runs/adapter-run-1/model/";
        assertThat(result.getModelFilesList())
                .extracting(ArtifactRef::getUri)
                .contains(
                        prefix + "adapter/adapter_config.json",
                        prefix + "adapter/adapter.safetensors",
                        prefix + "adapter/head_config.json",
                        prefix + "adapter/model_head.safetensors",
                        prefix + io.tuneline.engine.method.MethodState.CONFIG,
                        prefix + io.tuneline.engine.method.MethodState.WEIGHTS);
        ArtifactRef config =
                result.getModelFilesList().stream()
                        .filter(f -> f.getUri().endsWith("adapter/adapter_config.json"))
                        .findFirst()
                        .orElseThrow();
        // Houlsby's adapters after attention too (the library's DoubleSeqBnConfig).
        assertThat(Files.readString(download(config))).contains("\"mh_adapter\" : true");
    }

    private Path download(ArtifactRef ref) throws Exception {
        Path file = Files.createTempFile(scratch, "download", ".safetensors");
        try (InputStream in = store.get(ref)) {
            Files.copy(in, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
        return file;
    }
}
