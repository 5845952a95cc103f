package io.tuneline.preprocessing.prepare;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.engine.model.gpt2.Gpt2Checkpoint;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.BaseModel;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.Hyperparameters;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.SplitSpec;
import io.tuneline.testing.InMemoryS3Server;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.LongStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Chat and instruction records tokenized with real tokenizers (Llama 3, Qwen3; fetched once by the
 * engine's {@code src/test/fetch-tokenizers.sh}) and their own chat templates: the text is the
 * model's format, only the answers and the tokens closing them are learned, and the special tokens
 * come from the model's files. The base models are directories in the store holding a config, the
 * tokenizer files and no weights (preprocessing fetches no weights; no Llama or Qwen3 weights exist
 * offline, and the catalogue reads a GPT-2 config until the Llama family joins it).
 */
class ChatTemplateTokenizationTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static InMemoryS3Server server;
    private static ArtifactStore store;
    private static DatasetPreparation preparation;

    @BeforeAll
    static void start() throws Exception {
        server = InMemoryS3Server.start();
        store = server.newStore("tuneline");
        preparation = new DatasetPreparation(store);
        publish(RealTokenizers.LLAMA3, 128256);
        publish(RealTokenizers.QWEN3, 151669);
    }

    @AfterAll
    static void stop() {
        preparation.close();
        store.close();
        server.close();
    }

    private static void publish(String name, int vocab) throws Exception {
        Path dir = RealTokenizers.dir(name);
        String prefix = "models/" + name + "/";
        store.put(
                store.uri(prefix + "config.json"),
                Gpt2Checkpoint.configJson(Gpt2Config.of(vocab, 512, 32, 2, 4))
                        .getBytes(StandardCharsets.UTF_8),
                "application/json");
        for (String f : List.of("tokenizer.json", "tokenizer_config.json")) {
            store.put(
                    store.uri(prefix + f), Files.readAllBytes(dir.resolve(f)), "application/json");
        }
    }

    private static DatasetIngested ingested(
            String jobId, String model, String shape, String records, String template) {
        ArtifactRef ref =
                store.put(
                        store.uri("datasets/" + jobId + "/records.jsonl"),
                        records.getBytes(StandardCharsets.UTF_8),
                        "application/jsonl");
        return DatasetIngested.newBuilder()
                .setJobId(jobId)
                .setJob(
                        JobRequested.newBuilder()
                                .setJobId(jobId)
                                .setBaseModel(
                                        BaseModel.newBuilder()
                                                .setRef("s3://tuneline/models/" + model + "/"))
                                .setHyperparameters(
                                        Hyperparameters.newBuilder().setMaxSeqLength(256))
                                .setDataset(
                                        DatasetSpec.newBuilder()
                                                .setUri("s3://x/y")
                                                .setChatTemplate(template))
                                .setSplit(
                                        SplitSpec.newBuilder()
                                                .setTrain(0.6)
                                                .setValidation(0.2)
                                                .setTest(0.2)
                                                .setSeed(5)))
                .setRaw(ref)
                .setRecords(ref)
                .setRecordShape(shape)
                .setValidRecords(records.lines().count())
                .build();
    }

    /** Distinct words per record, so the records are not near-duplicates of each other. */
    private static String word(int i) {
        return Long.toString(Math.abs(NearDuplicates.mix(i + 7)), 36);
    }

    private static String chats() {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < 20; i++) {
            b.append("{\"messages\":[{\"role\":\"system\",\"content\":\"You are terse.\"},")
                    .append("{\"role\":\"user\",\"content\":\"Spell ")
                    .append(word(i))
                    .append("\"},{\"role\":\"assistant\",\"content\":\"")
                    .append(String.join(" ", word(i).split("")))
                    .append("\"},{\"role\":\"user\",\"content\":\"Length?\"},")
                    .append("{\"role\":\"assistant\",\"content\":\"")
                    .append(word(i).length())
                    .append(" letters\"}]}\n");
        }
        return b.toString();
    }

    @Test
    void qwen3ChatsAreRenderedWithItsTemplateAndOnlyTheAnswersAreLearned() throws Exception {
        DatasetPrepared p =
                preparation.prepare(
                        ingested("qwen-chat", RealTokenizers.QWEN3, "chat", chats(), ""));
        List<JsonNode> validation = read(p.getValidation());
        assertThat(validation).isNotEmpty();
        try (HuggingFaceTokenizer qwen = reference(RealTokenizers.QWEN3)) {
            for (JsonNode n : validation) {
                JsonNode m = n.get("messages");
                String a1 = m.get(2).get("content").asText();
                String a2 = m.get(4).get("content").asText();
                assertThat(qwen.decode(ids(n.get("input_ids")), false))
                        .isEqualTo(
                                "<|im_start|>system\nYou are terse.<|im_end|>\n"
                                        + "<|im_start|>user\n"
                                        + m.get(1).get("content").asText()
                                        + "<|im_end|>\n<|im_start|>assistant\n"
                                        + a1
                                        + "<|im_end|>\n<|im_start|>user\nLength?<|im_end|>\n"
                                        + "<|im_start|>assistant\n<think>\n\n</think>\n\n"
                                        + a2
                                        + "<|im_end|>\n");
                assertThat(learned(qwen, n)).containsExactly(a1 + "<|im_end|>", a2 + "<|im_end|>");
            }
        }
        JsonNode manifest = manifest(p);
        assertThat(manifest.at("/tokenizer/eos_token").asText()).isEqualTo("<|im_end|>");
        assertThat(manifest.at("/tokenizer/pad_token").asText()).isEqualTo("<|endoftext|>");
        assertThat(manifest.at("/tokenizer/special_tokens_from").asText())
                .isEqualTo("tokenizer_config");
        assertThat(manifest.at("/tokenizer/chat_template/from").asText()).isEqualTo("model");
        // Packed training blocks carry the same masks: every learned token is an answer token.
        for (JsonNode n : read(p.getTrain())) {
            assertThat(n.get("input_ids").size()).isEqualTo(n.get("labels").size());
        }
    }

    @Test
    void llama3InstructionsBecomeAUserAndAnAssistantTurn() throws Exception {
        StringBuilder data = new StringBuilder();
        for (int i = 0; i < 20; i++) {
            data.append("{\"prompt\":\"Reverse ")
                    .append(word(i))
                    .append("\",\"completion\":\"")
                    .append(new StringBuilder(word(i)).reverse())
                    .append("\"}\n");
        }
        DatasetPrepared p =
                preparation.prepare(
                        ingested(
                                "llama-instr",
                                RealTokenizers.LLAMA3,
                                "instruction",
                                data.toString(),
                                ""));
        try (HuggingFaceTokenizer llama = reference(RealTokenizers.LLAMA3)) {
            for (JsonNode n : read(p.getValidation())) {
                String prompt = n.get("prompt").asText();
                String completion = n.get("completion").asText();
                // This template appends the assistant header after the last turn in every case.
                assertThat(llama.decode(ids(n.get("input_ids")), false))
                        .isEqualTo(
                                "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
                                        + prompt
                                        + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
                                        + completion
                                        + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
                assertThat(learned(llama, n)).containsExactly(completion + "<|eot_id|>");
            }
        }
        JsonNode manifest = manifest(p);
        assertThat(manifest.at("/tokenizer/bos_token").asText()).isEqualTo("<|begin_of_text|>");
        assertThat(manifest.at("/tokenizer/eos_token").asText()).isEqualTo("<|end_of_text|>");
    }

    @Test
    void aJobsOwnChatTemplateReplacesTheModels() throws Exception {
        String template =
                "{% for m in messages %}<{{ m.role }}>\n{{ m.content }}{{ eos_token }}{% endfor %}";
        DatasetPrepared p =
                preparation.prepare(
                        ingested("qwen-own", RealTokenizers.QWEN3, "chat", chats(), template));
        try (HuggingFaceTokenizer qwen = reference(RealTokenizers.QWEN3)) {
            for (JsonNode n : read(p.getValidation())) {
                JsonNode m = n.get("messages");
                assertThat(qwen.decode(ids(n.get("input_ids")), false))
                        .startsWith("<system>\nYou are terse.<|im_end|><user>\nSpell ");
                assertThat(learned(qwen, n))
                        .containsExactly(
                                m.get(2).get("content").asText() + "<|im_end|>",
                                m.get(4).get("content").asText() + "<|im_end|>");
            }
        }
        assertThat(manifest(p).at("/tokenizer/chat_template/from").asText()).isEqualTo("job");
    }

    private static HuggingFaceTokenizer reference(String name) throws Exception {
        return HuggingFaceTokenizer.newInstance(
                RealTokenizers.dir(name).resolve("tokenizer.json"),
                Map.of("truncation", "false", "padding", "false"));
    }

    /** Each run of learned tokens, decoded with its special tokens. */
    private static List<String> learned(HuggingFaceTokenizer tokenizer, JsonNode n) {
        long[] input = ids(n.get("input_ids"));
        long[] labels = ids(n.get("labels"));
        assertThat(input).hasSameSizeAs(labels);
        List<String> runs = new ArrayList<>();
        List<Long> run = new ArrayList<>();
        for (int i = 0; i <= labels.length; i++) {
            if (i < labels.length && labels[i] != -100) {
                assertThat(labels[i]).isEqualTo(input[i]);
                run.add(labels[i]);
            } else if (!run.isEmpty()) {
                runs.add(
                        tokenizer.decode(run.stream().mapToLong(Long::longValue).toArray(), false));
                run.clear();
            }
        }
        return runs;
    }

    private static JsonNode manifest(DatasetPrepared p) throws Exception {
        try (InputStream in = store.get(p.getManifest())) {
            return JSON.readTree(in);
        }
    }

    private static List<JsonNode> read(ArtifactRef ref) throws Exception {
        List<JsonNode> out = new ArrayList<>();
        try (InputStream in = store.get(ref)) {
            for (String line :
                    new String(in.readAllBytes(), StandardCharsets.UTF_8).lines().toList()) {
                out.add(JSON.readTree(line));
            }
        }
        return out;
    }

    private static long[] ids(JsonNode array) {
        return LongStream.range(0, array.size()).map(i -> array.get((int) i).asLong()).toArray();
    }
}
