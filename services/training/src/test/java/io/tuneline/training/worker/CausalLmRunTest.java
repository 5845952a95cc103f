package io.tuneline.training.worker;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.model.gpt2.Gpt2Checkpoint;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.llama.LlamaCheckpoint;
import io.tuneline.engine.model.llama.LlamaConfig;
import io.tuneline.engine.model.llama.LlamaLmModel;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.BaseModel;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.Hyperparameters;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.LoraParams;
import io.tuneline.proto.v1.MethodSpec;
import io.tuneline.proto.v1.Task;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.proto.v1.TrainingProgress;
import io.tuneline.testing.InMemoryS3Server;
import io.tuneline.training.run.RunStore;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.LongStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The worker's causal LM training: a tiny random GPT-2 (vocab 30522 so MiniLM's tokenizer.json can
 * stand in for a GPT-2 tokenizer, which does not exist offline) in the object store, and
 * instruction data prepared as preprocessing writes it (packed train blocks, one example per
 * validation line, prompt tokens at -100, [SEP] as the end-of-sequence token).
 */
class CausalLmRunTest {
    static final Gpt2Config TINY = Gpt2Config.of(30522, 64, 32, 2, 4);
    static final ObjectMapper JSON = new ObjectMapper();

    /**
     * A tiny Llama (8 query heads on 2 key/value heads, own lm_head, attention dropout 0.1) with
     * MiniLM's vocabulary size, so the same tokenizer stands in.
     */
    static final LlamaConfig TINY_LLAMA =
            LlamaConfig.parse(
                    "{\"model_type\": \"llama\", \"vocab_size\": 30522, \"hidden_size\": 32,"
                            + " \"intermediate_size\": 64, \"num_hidden_layers\": 2,"
                            + " \"num_attention_heads\": 8, \"num_key_value_heads\": 2,"
                            + " \"max_position_embeddings\": 64, \"rope_theta\": 10000.0,"
                            + " \"tie_word_embeddings\": false, \"attention_dropout\": 0.1,"
                            + " \"bos_token_id\": 101, \"eos_token_id\": 102}");

    static final String[][] PAIRS = {
        {"capital of france?", "paris"},
        {"capital of italy?", "rome"},
        {"capital of spain?", "madrid"},
        {"capital of germany?", "berlin"},
        {"opposite of hot?", "cold"},
        {"opposite of up?", "down"},
        {"opposite of big?", "small"},
        {"opposite of day?", "night"},
    };

    private static InMemoryS3Server server;
    private static ArtifactStore store;
    private static String baseUri;
    @TempDir static Path tmp;
    @TempDir Path scratch;

    @BeforeAll
    static void start() throws Exception {
        server = InMemoryS3Server.start();
        store = server.newStore("tuneline");
        Path dir = tmp.resolve("tiny-gpt2");
        Gpt2Checkpoint.saveRandom(TINY, 3, dir);
        try (InputStream in =
                CausalLmRunTest.class
                        .getClassLoader()
                        .getResourceAsStream("all-minilm-l6-v2-tokenizer.json")) {
            Files.copy(in, dir.resolve("tokenizer.json"));
        }
        for (String f : List.of("config.json", "model.safetensors", "tokenizer.json")) {
            store.put(
                    store.uri("models/tiny-gpt2/" + f),
                    Files.readAllBytes(dir.resolve(f)),
                    "application/octet-stream");
        }
        baseUri = "s3://tuneline/models/tiny-gpt2/";

        // A Llama of the same vocabulary stored in BF16, as published Llama checkpoints are.
        Path f32 = tmp.resolve("tiny-llama-f32");
        // Weights of std 0.5, not HF's 0.02: with the head and the final norm frozen under LoRA, a
        // 0.02 head's logits cannot move more than about 0.6 over 30522 tokens.
        LlamaCheckpoint.saveRandom(TINY_LLAMA, f32, 5, 0.5);
        Path llama = tmp.resolve("tiny-llama");
        try (EngineRuntimeHolder h = new EngineRuntimeHolder();
                ai.djl.Model m = LlamaCheckpoint.load(f32, h.runtime.device())) {
            LlamaCheckpoint.save((LlamaLmModel) m.getBlock(), llama, Dtype.BF16);
        }
        Files.copy(dir.resolve("tokenizer.json"), llama.resolve("tokenizer.json"));
        for (String f : List.of("config.json", "model.safetensors", "tokenizer.json")) {
            store.put(
                    store.uri("models/tiny-llama/" + f),
                    Files.readAllBytes(llama.resolve(f)),
                    "application/octet-stream");
        }
    }

    /** Starts the engine for the test's own use. */
    private static final class EngineRuntimeHolder implements AutoCloseable {
        final io.tuneline.engine.runtime.EngineRuntime runtime =
                io.tuneline.engine.runtime.EngineRuntime.start(2);

        @Override
        public void close() {}
    }

    @AfterAll
    static void stop() {
        store.close();
        server.close();
    }

    /** Each pair as preprocessing tokenizes it: prompt ids at -100, completion + [SEP] learned. */
    static List<long[][]> examples() throws Exception {
        List<long[][]> out = new ArrayList<>();
        try (InputStream in =
                CausalLmRunTest.class
                        .getClassLoader()
                        .getResourceAsStream("all-minilm-l6-v2-tokenizer.json")) {
            Path file = Files.createTempFile(tmp, "tok", ".json");
            Files.copy(in, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            try (HuggingFaceTokenizer t =
                    HuggingFaceTokenizer.newInstance(
                            file,
                            Map.of(
                                    "truncation", "false",
                                    "padding", "false",
                                    "addSpecialTokens", "false"))) {
                for (String[] pair : PAIRS) {
                    long[] prompt = t.encode(pair[0] + "\n").getIds();
                    long[] completion = t.encode(pair[1]).getIds();
                    long[] ids =
                            LongStream.concat(
                                            LongStream.concat(
                                                    Arrays.stream(prompt),
                                                    Arrays.stream(completion)),
                                            LongStream.of(102))
                                    .toArray();
                    long[] labels = ids.clone();
                    Arrays.fill(labels, 0, prompt.length, -100);
                    out.add(new long[][] {ids, labels});
                }
            }
        }
        return out;
    }

    static DatasetPrepared prepare(String jobId, MethodSpec method) throws Exception {
        return prepare(jobId, method, baseUri);
    }

    static DatasetPrepared prepare(String jobId, MethodSpec method, String base) throws Exception {
        return prepare(jobId, method, base, "");
    }

    static DatasetPrepared prepare(String jobId, MethodSpec method, String base, String precision)
            throws Exception {
        List<long[][]> examples = examples();
        // Packed training blocks of at most 32 tokens, whole examples end to end, twice over.
        StringBuilder train = new StringBuilder();
        List<Long> ids = new ArrayList<>();
        List<Long> labels = new ArrayList<>();
        int inBlock = 0;
        for (int copy = 0; copy < 2; copy++) {
            for (long[][] e : examples) {
                if (ids.size() + e[0].length > 32) {
                    train.append(block(ids, labels, inBlock));
                    ids.clear();
                    labels.clear();
                    inBlock = 0;
                }
                for (int i = 0; i < e[0].length; i++) {
                    ids.add(e[0][i]);
                    labels.add(e[1][i]);
                }
                inBlock++;
            }
        }
        train.append(block(ids, labels, inBlock));
        StringBuilder validation = new StringBuilder();
        for (int i = 0; i < PAIRS.length; i++) {
            ObjectNode line = JSON.createObjectNode();
            line.put("prompt", PAIRS[i][0]);
            line.put("completion", PAIRS[i][1]);
            line.putPOJO("input_ids", examples.get(i)[0]);
            line.putPOJO("labels", examples.get(i)[1]);
            validation.append(JSON.writeValueAsString(line)).append('\n');
        }
        ArtifactRef trainRef =
                store.put(
                        store.uri("datasets/" + jobId + "/prepared/train.jsonl"),
                        train.toString().getBytes(StandardCharsets.UTF_8),
                        "application/jsonl");
        ArtifactRef validationRef =
                store.put(
                        store.uri("datasets/" + jobId + "/prepared/validation.jsonl"),
                        validation.toString().getBytes(StandardCharsets.UTF_8),
                        "application/jsonl");
        DatasetPrepared prepared =
                DatasetPrepared.newBuilder()
                        .setJobId(jobId)
                        .setJob(
                                JobRequested.newBuilder()
                                        .setJobId(jobId)
                                        .setBaseModel(BaseModel.newBuilder().setRef(base))
                                        .setTask(Task.TASK_CAUSAL_LM)
                                        .setMethod(method)
                                        .setHyperparameters(
                                                Hyperparameters.newBuilder()
                                                        .setEpochs(12)
                                                        .setBatchSize(2)
                                                        .setLearningRate(2e-2)
                                                        .setMaxSeqLength(32)
                                                        .setPrecision(precision)))
                        .setTrain(trainRef)
                        .setValidation(validationRef)
                        .build();
        new RunStore(store).writeInput(prepared);
        return prepared;
    }

    private static String block(List<Long> ids, List<Long> labels, int examples) throws Exception {
        ObjectNode line = JSON.createObjectNode();
        line.putPOJO("input_ids", ids);
        line.putPOJO("labels", labels);
        line.put("examples", examples);
        return JSON.writeValueAsString(line) + "\n";
    }

    @Test
    void fullFineTuningLowersTheLossAndWritesAHuggingFaceDirectory() throws Exception {
        prepare(
                "causal-full",
                MethodSpec.newBuilder()
                        .setFull(io.tuneline.proto.v1.FullFineTuning.getDefaultInstance())
                        .build());
        List<TrainingProgress> progress = new CopyOnWriteArrayList<>();
        TrainingCompleted result =
                TrainingWorker.runAttempt(store, progress::add, scratch, "causal-full", 1);

        assertThat(new RunStore(store).result("causal-full")).contains(result);
        assertThat(result.getModelFilesList())
                .extracting(ArtifactRef::getUri)
                .containsExactly(
                        "s3://tuneline/runs/causal-full/model/model.safetensors",
                        "s3://tuneline/runs/causal-full/model/config.json",
                        "s3://tuneline/runs/causal-full/model/tokenizer.json");
        assertThat(result.getTrainableParameters()).isEqualTo(result.getTotalParameters());
        List<TrainingProgress> validations =
                progress.stream().filter(TrainingProgress::hasValidationLoss).toList();
        assertThat(validations).hasSizeGreaterThanOrEqualTo(12);
        double firstValidation = validations.get(0).getValidationLoss();
        double lastValidation = result.getFinalValidationLoss();
        System.out.printf(
                "causal LM worker, full: %d steps, final train loss %.3f, validation %.3f -> %.3f%n",
                result.getSteps(), result.getFinalLoss(), firstValidation, lastValidation);
        // A random model starts near ln(30522) = 10.3; the trained one knows the answers' tokens.
        assertThat(lastValidation).isLessThan(firstValidation).isLessThan(4.0);
        assertThat(progress.get(progress.size() - 1).getStep()).isEqualTo(result.getSteps());

        Path model = scratch.resolve("downloaded");
        for (ArtifactRef f : result.getModelFilesList()) {
            String name = f.getUri().substring(f.getUri().lastIndexOf('/') + 1);
            Files.createDirectories(model);
            try (InputStream in = store.get(f)) {
                Files.copy(in, model.resolve(name));
            }
        }
        // The tuned directory is a base model the catalogue resolves again.
        assertThat(io.tuneline.engine.catalog.ModelCatalog.resolve(model.toString()).gpt2Config())
                .isEqualTo(TINY);
        try (SafetensorsFile f = SafetensorsFile.open(model.resolve("model.safetensors"))) {
            assertThat(f.info("transformer.h.0.attn.c_attn.weight").shape())
                    .containsExactly(32, 96);
        }
    }

    @Test
    void loraWritesThePeftAdapterBesideTheMergedModel() throws Exception {
        prepare(
                "causal-lora",
                MethodSpec.newBuilder().setLora(LoraParams.newBuilder().setRank(4)).build());
        TrainingCompleted result =
                TrainingWorker.runAttempt(store, p -> {}, scratch, "causal-lora", 1);
        // c_attn in 2 layers: A (4, 32) + B (96, 4).
        assertThat(result.getTrainableParameters()).isEqualTo(2 * (4 * 32 + 96 * 4));
        assertThat(result.getModelFilesList())
                .extracting(ArtifactRef::getUri)
                .contains(
                        "s3://tuneline/runs/causal-lora/model/adapter/adapter_config.json",
                        "s3://tuneline/runs/causal-lora/model/adapter/adapter_model.safetensors");
        String config;
        try (InputStream in = store.get(result.getModelFiles(1))) {
            config = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        assertThat(JSON.readTree(config).path("task_type").asText()).isEqualTo("CAUSAL_LM");
        assertThat(JSON.readTree(config).path("target_modules").get(0).asText())
                .isEqualTo("c_attn");
        assertThat(result.getFinalValidationLoss()).isPositive();
    }

    /**
     * A QLoRA job: GPT-2's projections in NF4, LoRA on c_attn; the worker writes the merged
     * full-precision model (dequantized base + LoRA) and the adapter as PEFT saves it.
     */
    /**
     * Precision fp16 through the worker: the frozen GPT-2 projections held in float16 (widened per
     * matmul on this CPU), the loss scaled from 2^16; the run learns, no step overflows, and the
     * completed event names the precision.
     */
    @Test
    void anFp16LoraJobTrainsWithLossScalingAndReportsItsPrecision() throws Exception {
        prepare(
                "causal-lora-fp16",
                MethodSpec.newBuilder().setLora(LoraParams.newBuilder().setRank(4)).build(),
                baseUri,
                "fp16");
        List<TrainingProgress> progress = new CopyOnWriteArrayList<>();
        TrainingCompleted result =
                TrainingWorker.runAttempt(store, progress::add, scratch, "causal-lora-fp16", 1);
        List<TrainingProgress> validations =
                progress.stream().filter(TrainingProgress::hasValidationLoss).toList();
        assertThat(result.getPrecision()).isEqualTo("fp16");
        assertThat(result.getSkippedSteps()).isZero();
        assertThat(result.getFinalValidationLoss())
                .isLessThan(validations.get(0).getValidationLoss());
    }

    @Test
    void qloraTrainsOnAnNf4BaseAndWritesTheMergedModelAndTheAdapter() throws Exception {
        prepare(
                "causal-qlora",
                MethodSpec.newBuilder()
                        .setQlora(
                                io.tuneline.proto.v1.QloraParams.newBuilder()
                                        .setLora(LoraParams.newBuilder().setRank(4)))
                        .build());
        TrainingCompleted result =
                TrainingWorker.runAttempt(store, p -> {}, scratch, "causal-qlora", 1);
        assertThat(result.getTrainableParameters()).isEqualTo(2 * (4 * 32 + 96 * 4));
        assertThat(result.getTotalParameters()).isGreaterThan(result.getTrainableParameters());
        assertThat(result.getModelFilesList())
                .extracting(ArtifactRef::getUri)
                .contains(
                        "s3://tuneline/runs/causal-qlora/model/adapter/adapter_config.json",
                        "s3://tuneline/runs/causal-qlora/model/adapter/adapter_model.safetensors");
        assertThat(result.getFinalValidationLoss()).isPositive();
    }

    @Test
    void anEncoderBaseModelIsRefusedForCausalLm() throws Exception {
        DatasetPrepared p = prepare("causal-bert", MethodSpec.getDefaultInstance());
        new RunStore(store)
                .writeInput(
                        p.toBuilder()
                                .setJob(
                                        p.getJob().toBuilder()
                                                .setBaseModel(
                                                        BaseModel.newBuilder().setRef("minilm-l6")))
                                .build());
        assertThatThrownBy(
                        () -> TrainingWorker.runAttempt(store, x -> {}, scratch, "causal-bert", 1))
                .hasMessageContaining(
                        "causal language modelling needs a GPT-2 or Llama-family (llama, mistral,"
                                + " qwen2, qwen3) model directory");
    }

    /**
     * A Llama LoRA job end to end, in precision bf16: PEFT's default targets (q_proj, v_proj), the
     * adapter under Llama module names, the merged model in BF16 as the base was, and the tuned
     * directory in the store the base of the next job (precision auto: fp32 on a CPU).
     */
    @Test
    void aLlamaLoraJobTrainsEndToEndAndItsModelIsTheNextJobsBase() throws Exception {
        prepare(
                "causal-llama-lora",
                MethodSpec.newBuilder().setLora(LoraParams.newBuilder().setRank(4)).build(),
                "s3://tuneline/models/tiny-llama/",
                "bf16");
        List<TrainingProgress> progress = new CopyOnWriteArrayList<>();
        TrainingCompleted result =
                TrainingWorker.runAttempt(store, progress::add, scratch, "causal-llama-lora", 1);
        // Per layer: q_proj A (4, 32) + B (32, 4); v_proj A (4, 32) + B (8, 4).
        assertThat(result.getTrainableParameters())
                .isEqualTo(2 * (4 * 32 + 32 * 4 + 4 * 32 + 8 * 4));
        List<TrainingProgress> validations =
                progress.stream().filter(TrainingProgress::hasValidationLoss).toList();
        double first = validations.get(0).getValidationLoss();
        double last = result.getFinalValidationLoss();
        System.out.printf(
                "causal LM worker, Llama LoRA r=4: %d steps, final train loss %.3f, validation"
                        + " %.3f -> %.3f%n",
                result.getSteps(), result.getFinalLoss(), first, last);
        assertThat(last).isLessThan(first);
        assertThat(result.getPrecision()).isEqualTo("bf16");
        assertThat(result.getModelFilesList())
                .extracting(ArtifactRef::getUri)
                .contains(
                        "s3://tuneline/runs/causal-llama-lora/model/model.safetensors",
                        "s3://tuneline/runs/causal-llama-lora/model/config.json",
                        "s3://tuneline/runs/causal-llama-lora/model/tokenizer.json",
                        "s3://tuneline/runs/causal-llama-lora/model/adapter/adapter_config.json",
                        "s3://tuneline/runs/causal-llama-lora/model/adapter/adapter_model.safetensors");
        Path model = scratch.resolve("downloaded");
        Files.createDirectories(model.resolve("adapter"));
        for (ArtifactRef f : result.getModelFilesList()) {
            String rel =
                    f.getUri().substring("s3://tuneline/runs/causal-llama-lora/model/".length());
            try (InputStream in = store.get(f)) {
                Files.copy(in, model.resolve(rel));
            }
        }
        JsonNode adapterConfig =
                JSON.readTree(model.resolve("adapter/adapter_config.json").toFile());
        assertThat(adapterConfig.path("task_type").asText()).isEqualTo("CAUSAL_LM");
        assertThat(adapterConfig.path("target_modules").toString())
                .isEqualTo("[\"q_proj\",\"v_proj\"]");
        try (SafetensorsFile f =
                SafetensorsFile.open(model.resolve("adapter/adapter_model.safetensors"))) {
            assertThat(f.names())
                    .hasSize(8)
                    .contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
        }
        try (SafetensorsFile f = SafetensorsFile.open(model.resolve("model.safetensors"))) {
            assertThat(f.info("model.layers.0.self_attn.q_proj.weight").dtype())
                    .isEqualTo(Dtype.BF16);
            assertThat(f.names()).noneMatch(n -> n.contains("lora_"));
        }
        assertThat(LlamaConfig.read(model)).isEqualTo(TINY_LLAMA);

        // The tuned directory in the store is the base of a next (freeze) job.
        prepare(
                "causal-llama-next",
                MethodSpec.newBuilder()
                        .setFreeze(
                                io.tuneline.proto.v1.LayerFreezing.newBuilder()
                                        .setTrainTopLayers(1))
                        .build(),
                "s3://tuneline/runs/causal-llama-lora/model/");
        TrainingCompleted next =
                TrainingWorker.runAttempt(store, p -> {}, scratch, "causal-llama-next", 1);
        System.out.printf(
                "causal LM worker, next job (freeze top layer) on the tuned Llama: trainable %d of"
                        + " %d, validation %.3f%n",
                next.getTrainableParameters(),
                next.getTotalParameters(),
                next.getFinalValidationLoss());
        assertThat(next.getTrainableParameters())
                .isPositive()
                .isLessThan(next.getTotalParameters());
        assertThat(next.getFinalValidationLoss()).isLessThan(last);
        assertThat(next.getPrecision()).isEqualTo("fp32");
    }
}
