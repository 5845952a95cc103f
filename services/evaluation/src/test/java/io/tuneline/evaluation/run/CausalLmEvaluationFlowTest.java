package io.tuneline.evaluation.run;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.tuneline.common.event.CloudEventHeaders;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.topic.Topics;
import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.model.CausalLmCheckpoint;
import io.tuneline.engine.model.gpt2.Gpt2Checkpoint;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.gpt2.Gpt2LmModel;
import io.tuneline.engine.model.llama.LlamaCheckpoint;
import io.tuneline.engine.model.llama.LlamaConfig;
import io.tuneline.engine.model.llama.LlamaLmModel;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.LmExample;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.BaseModel;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.EvaluationCompleted;
import io.tuneline.proto.v1.EvaluationSpec;
import io.tuneline.proto.v1.Hyperparameters;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.MetricValue;
import io.tuneline.proto.v1.QualityGate;
import io.tuneline.proto.v1.Task;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.KafkaTestClient;
import io.tuneline.testing.S3ProxyResource;
import jakarta.inject.Inject;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.LongStream;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The evaluation service on a causal LM job: a tiny random GPT-2 (vocab 30522, with MiniLM's
 * tokenizer.json standing in for a GPT-2 tokenizer, which does not exist offline) as the base, the
 * same model fine-tuned on eight instruction pairs as the tuned one, and those pairs as the test
 * split (memorised on purpose: this checks the wiring and the metrics' direction, not
 * generalisation).
 */
@QuarkusTest
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class CausalLmEvaluationFlowTest {
    private static final Duration WAIT = Duration.ofSeconds(180);
    private static final EventCodec CODEC = new EventCodec("/test");
    private static final ObjectMapper JSON = new ObjectMapper();
    static final Gpt2Config TINY = Gpt2Config.of(30522, 64, 32, 2, 4);

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

    @Inject ArtifactStore store;
    private KafkaTestClient kafka;

    @BeforeEach
    void connect() {
        kafka = KafkaTestClient.forApplication();
    }

    @AfterEach
    void disconnect() {
        kafka.close();
    }

    @Test
    void perplexityTokenAccuracyAndAnswersOfTheTunedAndTheBaseModel() throws Exception {
        String jobId = "causal-eval-1";
        Path dir = Files.createTempDirectory(jobId);
        Path base = dir.resolve("base");
        Gpt2Checkpoint.saveRandom(TINY, 3, base);
        try (InputStream in =
                getClass()
                        .getClassLoader()
                        .getResourceAsStream("all-minilm-l6-v2-tokenizer.json")) {
            Files.copy(in, base.resolve("tokenizer.json"));
        }
        List<long[][]> examples = tokenized(base.resolve("tokenizer.json"));

        Path tuned = dir.resolve("tuned");
        EngineRuntime runtime = EngineRuntime.start(2);
        try (Model model = Gpt2Checkpoint.load(base, runtime.device())) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            new FineTuningMethod.Full().apply(lm, model.getNDManager());
            List<LmExample> train = new ArrayList<>();
            for (long[][] e : examples) {
                train.add(new LmExample(e[0], e[1]));
            }
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            train,
                            new TrainingSettings(20, 4, 1e-2f, 0f, 0.1f, 1f, 32, 42),
                            r -> {
                                if (r.step() % 10 == 0) {
                                    System.out.printf(
                                            "tuning the tiny GPT-2: step %d loss %.3f%n",
                                            r.step(), r.loss());
                                }
                            });
            Gpt2Checkpoint.save(lm, tuned);
        }
        Files.copy(base.resolve("tokenizer.json"), tuned.resolve("tokenizer.json"));

        EvaluationCompleted done =
                evaluate(
                        jobId,
                        "tiny-gpt2",
                        base,
                        tuned,
                        examples,
                        QualityGate.newBuilder()
                                .putMinMetrics("perplexity", 50)
                                .putMaxRegression("perplexity", 0.0)
                                .build());
        MetricValue tunedPpl = done.getTunedMetricsOrThrow("perplexity");
        MetricValue basePpl = done.getBaseMetricsOrThrow("perplexity");
        System.out.printf(
                "causal LM evaluation: perplexity %.2f tuned vs %.1f base; token accuracy %.3f vs"
                        + " %.3f; exact match %.3f vs %.3f; token F1 %.3f vs %.3f%n",
                tunedPpl.getValue(),
                basePpl.getValue(),
                done.getTunedMetricsOrThrow("token_accuracy").getValue(),
                done.getBaseMetricsOrThrow("token_accuracy").getValue(),
                done.getTunedMetricsOrThrow("exact_match").getValue(),
                done.getBaseMetricsOrThrow("exact_match").getValue(),
                done.getTunedMetricsOrThrow("token_f1").getValue(),
                done.getBaseMetricsOrThrow("token_f1").getValue());
        assertThat(done.getPrimaryMetric()).isEqualTo("perplexity");
        assertThat(done.getTestExamples()).isEqualTo(PAIRS.length);
        // A random model is close to uniform over 30522 tokens.
        assertThat(basePpl.getValue()).isGreaterThan(10_000);
        assertThat(tunedPpl.getValue()).isLessThan(50);
        assertThat(tunedPpl.getCiLower()).isLessThanOrEqualTo(tunedPpl.getValue());
        assertThat(tunedPpl.getCiUpper()).isGreaterThanOrEqualTo(tunedPpl.getValue());
        assertThat(done.getTunedMetricsOrThrow("token_accuracy").getValue())
                .isGreaterThan(done.getBaseMetricsOrThrow("token_accuracy").getValue());
        assertThat(done.getTunedMetricsOrThrow("token_f1").getValue())
                .isGreaterThanOrEqualTo(done.getBaseMetricsOrThrow("token_f1").getValue());
        assertThat(done.getBaseMetricsOrThrow("exact_match").getValue()).isZero();
        assertThat(done.getGate().getPassed())
                .as(done.getGate().getReasonsList().toString())
                .isTrue();
        try (InputStream in = store.get(done.getReportMarkdown())) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8))
                    .contains("**perplexity**")
                    .contains("Greedy answers")
                    .contains("capital of france?")
                    .doesNotContain("Confusion matrix");
        }
        try (InputStream in = store.get(done.getReportJson())) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8))
                    .contains("\"generations\"")
                    .doesNotContain("\"confusion_matrix\"");
        }
    }

    /**
     * A Llama-family base (random, llama with 8 query heads on 2 key/value heads) and the same
     * model tuned with LoRA on every projection (the weights merged as the worker writes them): the
     * evaluator loads both by their model_type and answers greedily with the key/value cache.
     */
    @Test
    void aLlamaLoraModelIsScoredAgainstItsBase() throws Exception {
        String jobId = "causal-eval-llama";
        Path dir = Files.createTempDirectory(jobId);
        Path base = dir.resolve("base");
        LlamaCheckpoint.saveRandom(
                LlamaConfig.parse(
                        "{\"model_type\": \"llama\", \"vocab_size\": 30522,"
                                + " \"hidden_size\": 32, \"intermediate_size\": 64,"
                                + " \"num_hidden_layers\": 2, \"num_attention_heads\": 8,"
                                + " \"num_key_value_heads\": 2, \"max_position_embeddings\": 64,"
                                + " \"tie_word_embeddings\": false, \"eos_token_id\": 102}"),
                base,
                3,
                // Weights of std 0.5, not HF's 0.02: with the head and the final norm frozen under
                // LoRA, a 0.02 head's logits cannot move more than about 0.6 over 30522 tokens.
                0.5);
        try (InputStream in =
                getClass()
                        .getClassLoader()
                        .getResourceAsStream("all-minilm-l6-v2-tokenizer.json")) {
            Files.copy(in, base.resolve("tokenizer.json"));
        }
        List<long[][]> examples = tokenized(base.resolve("tokenizer.json"));
        Path tuned = dir.resolve("tuned");
        EngineRuntime runtime = EngineRuntime.start(2);
        try (Model model = LlamaCheckpoint.load(base, runtime.device())) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            ai.djl.engine.Engine.getInstance().setRandomSeed(7);
            new FineTuningMethod.Lora(
                            16,
                            32f,
                            0f,
                            List.of(
                                    "q_proj",
                                    "k_proj",
                                    "v_proj",
                                    "o_proj",
                                    "gate_proj",
                                    "up_proj",
                                    "down_proj"))
                    .apply(lm, model.getNDManager());
            List<LmExample> train = new ArrayList<>();
            for (long[][] e : examples) {
                train.add(new LmExample(e[0], e[1]));
            }
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            train,
                            new TrainingSettings(30, 4, 1e-2f, 0f, 0.1f, 1f, 32, 42),
                            r -> {
                                if (r.step() % 20 == 0) {
                                    System.out.printf(
                                            "tuning the tiny Llama (LoRA): step %d loss %.3f%n",
                                            r.step(), r.loss());
                                }
                            });
            // In shards, as a model above the shard size comes from training.
            LlamaCheckpoint.save(
                    lm, tuned, Dtype.F32, Files.size(base.resolve("model.safetensors")) / 4);
        }
        assertThat(CausalLmCheckpoint.weightFiles(tuned))
                .hasSizeGreaterThan(2)
                .contains(CausalLmCheckpoint.INDEX)
                .doesNotContain(CausalLmCheckpoint.WEIGHTS);
        Files.copy(base.resolve("tokenizer.json"), tuned.resolve("tokenizer.json"));

        EvaluationCompleted done =
                evaluate(
                        jobId,
                        "tiny-llama",
                        base,
                        tuned,
                        examples,
                        QualityGate.newBuilder().putMaxRegression("perplexity", 0.0).build());
        System.out.printf(
                "causal LM evaluation, Llama LoRA: perplexity %.2f tuned vs %.1f base; token"
                        + " accuracy %.3f vs %.3f; exact match %.3f vs %.3f; token F1 %.3f vs"
                        + " %.3f%n",
                done.getTunedMetricsOrThrow("perplexity").getValue(),
                done.getBaseMetricsOrThrow("perplexity").getValue(),
                done.getTunedMetricsOrThrow("token_accuracy").getValue(),
                done.getBaseMetricsOrThrow("token_accuracy").getValue(),
                done.getTunedMetricsOrThrow("exact_match").getValue(),
                done.getBaseMetricsOrThrow("exact_match").getValue(),
                done.getTunedMetricsOrThrow("token_f1").getValue(),
                done.getBaseMetricsOrThrow("token_f1").getValue());
        assertThat(done.getTestExamples()).isEqualTo(PAIRS.length);
        assertThat(done.getBaseMetricsOrThrow("perplexity").getValue()).isGreaterThan(10_000);
        assertThat(done.getTunedMetricsOrThrow("perplexity").getValue())
                .isLessThan(done.getBaseMetricsOrThrow("perplexity").getValue() / 10);
        assertThat(done.getTunedMetricsOrThrow("token_accuracy").getValue())
                .isGreaterThan(done.getBaseMetricsOrThrow("token_accuracy").getValue());
        // Greedy answers (key/value cache, stopping at [SEP]) of the memorised pairs.
        assertThat(done.getTunedMetricsOrThrow("exact_match").getValue()).isGreaterThan(0.5);
        assertThat(done.getBaseMetricsOrThrow("exact_match").getValue()).isZero();
        assertThat(done.getGate().getPassed())
                .as(done.getGate().getReasonsList().toString())
                .isTrue();
        try (InputStream in = store.get(done.getReportMarkdown())) {
            assertThat(new String(in.readAllBytes(), StandardCharsets.UTF_8))
                    .contains("Greedy answers")
                    .contains("capital of france?");
        }
    }

    /**
     * Publishes the TrainingCompleted of {@code tuned} over the base {@code base} and awaits the
     * result.
     */
    private EvaluationCompleted evaluate(
            String jobId,
            String name,
            Path base,
            Path tuned,
            List<long[][]> examples,
            QualityGate gate)
            throws Exception {
        for (String f : List.of("config.json", "model.safetensors", "tokenizer.json")) {
            store.put(
                    store.uri("models/" + name + "/" + f),
                    Files.readAllBytes(base.resolve(f)),
                    "application/octet-stream");
        }
        List<ArtifactRef> files = new ArrayList<>();
        List<String> uploaded = new ArrayList<>(CausalLmCheckpoint.weightFiles(tuned));
        uploaded.addAll(List.of("config.json", "tokenizer.json"));
        for (String f : uploaded) {
            files.add(
                    store.put(
                            store.uri("runs/" + jobId + "/model/" + f),
                            Files.readAllBytes(tuned.resolve(f)),
                            "application/octet-stream"));
        }
        StringBuilder test = new StringBuilder();
        for (int i = 0; i < PAIRS.length; i++) {
            ObjectNode line = JSON.createObjectNode();
            line.put("prompt", PAIRS[i][0]);
            line.put("completion", PAIRS[i][1]);
            line.putPOJO("input_ids", examples.get(i)[0]);
            line.putPOJO("labels", examples.get(i)[1]);
            test.append(JSON.writeValueAsString(line)).append('\n');
        }
        JobRequested job =
                JobRequested.newBuilder()
                        .setJobId(jobId)
                        .setBaseModel(
                                BaseModel.newBuilder()
                                        .setRef(store.uri("models/" + name + "/").toString()))
                        .setTask(Task.TASK_CAUSAL_LM)
                        .setHyperparameters(Hyperparameters.newBuilder().setMaxSeqLength(32))
                        .setEvaluation(
                                EvaluationSpec.newBuilder().setBootstrapSamples(200).setGate(gate))
                        .build();
        DatasetPrepared dataset =
                DatasetPrepared.newBuilder()
                        .setJobId(jobId)
                        .setJob(job)
                        .setTest(
                                store.put(
                                        store.uri("datasets/" + jobId + "/prepared/test.jsonl"),
                                        test.toString().getBytes(StandardCharsets.UTF_8),
                                        "application/jsonl"))
                        .build();
        TrainingCompleted training =
                TrainingCompleted.newBuilder()
                        .setJobId(jobId)
                        .setJob(job)
                        .setDataset(dataset)
                        .setRunId(jobId + "-a1")
                        .setModel(
                                ArtifactRef.newBuilder()
                                        .setUri(store.uri("runs/" + jobId + "/model/").toString()))
                        .addAllModelFiles(files)
                        .build();
        var out = CODEC.encode(training);
        kafka.publish(Topics.TRAINING_COMPLETED, out.key(), out.value(), out.headers());

        return CODEC.decode(
                        await(
                                Topics.EVALUATIONS_COMPLETED,
                                jobId,
                                "tuneline.v1.EvaluationCompleted"),
                        EvaluationCompleted.getDefaultInstance())
                .payload();
    }

    /** Each pair as preprocessing tokenizes it: prompt ids at -100, completion + [SEP] learned. */
    static List<long[][]> tokenized(Path tokenizerJson) throws Exception {
        List<long[][]> out = new ArrayList<>();
        try (HuggingFaceTokenizer t =
                HuggingFaceTokenizer.newInstance(
                        tokenizerJson,
                        Map.of(
                                "truncation",
                                "false",
                                "padding",
                                "false",
                                "addSpecialTokens",
                                "false"))) {
            for (String[] pair : PAIRS) {
                long[] prompt = t.encode(pair[0] + "\n").getIds();
                long[] completion = t.encode(pair[1]).getIds();
                long[] ids =
                        LongStream.concat(
                                        LongStream.concat(
                                                Arrays.stream(prompt), Arrays.stream(completion)),
                                        LongStream.of(102))
                                .toArray();
                long[] labels = ids.clone();
                Arrays.fill(labels, 0, prompt.length, -100);
                out.add(new long[][] {ids, labels});
            }
        }
        return out;
    }

    private ConsumerRecord<String, byte[]> await(String topic, String jobId, String type) {
        java.util.function.Predicate<ConsumerRecord<String, byte[]>> match =
                r ->
                        jobId.equals(r.key())
                                && type.equals(KafkaTestClient.header(r, CloudEventHeaders.TYPE));
        return kafka.readUntil(topic, rs -> rs.stream().anyMatch(match), WAIT).stream()
                .filter(match)
                .findFirst()
                .orElseThrow();
    }
}
