package io.tuneline.preprocessing.prepare;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.common.store.ArtifactStore;
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
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.LongStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Tokenization, masks, packing, truncation, a split named by the data, leakage and progress,
 * checked against DJL's tokenizer run directly on the MiniLM tokenizer file.
 */
class TokenizedSplitsTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static InMemoryS3Server server;
    private static ArtifactStore store;
    private static HuggingFaceTokenizer reference;
    private static DatasetPreparation preparation;

    @BeforeAll
    static void start() throws Exception {
        server = InMemoryS3Server.start();
        store = server.newStore("tuneline");
        Path file = Files.createTempFile("minilm-tokenizer", ".json");
        try (InputStream in =
                TokenizedSplitsTest.class
                        .getClassLoader()
                        .getResourceAsStream("all-minilm-l6-v2-tokenizer.json")) {
            Files.copy(in, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
        reference = HuggingFaceTokenizer.newInstance(file, Map.of("truncation", "false"));
        preparation = new DatasetPreparation(store);
    }

    @AfterAll
    static void stop() {
        preparation.close();
        reference.close();
        store.close();
        server.close();
    }

    private static DatasetIngested ingested(
            String jobId, String shape, String records, int maxSeqLength) {
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
                                .setBaseModel(BaseModel.newBuilder().setRef("minilm-l6"))
                                .setHyperparameters(
                                        Hyperparameters.newBuilder().setMaxSeqLength(maxSeqLength))
                                .setDataset(DatasetSpec.newBuilder().setUri("s3://x/y"))
                                .setSplit(
                                        SplitSpec.newBuilder()
                                                .setTrain(0.8)
                                                .setValidation(0.1)
                                                .setTest(0.1)
                                                .setSeed(3)))
                .setRaw(ref)
                .setRecords(ref)
                .setRecordShape(shape)
                .setValidRecords(records.lines().count())
                .build();
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

    private static long[] tokens(String text) {
        return reference.encode(text, false, false).getIds();
    }

    /** A distinct word per number, so the examples are not near-duplicates of each other. */
    private static String code(int i) {
        return Long.toString(Math.abs(NearDuplicates.mix(i + 1)), 36);
    }

    private static final long SEP = 102; // MiniLM's [SEP], its end-of-sequence token here

    @Test
    void instructionExamplesLearnOnlyTheAnswerAndEndWithTheEndOfSequenceToken() throws Exception {
        StringBuilder data = new StringBuilder();
        for (int i = 0; i < 40; i++) {
            data.append(
                    JSON.writeValueAsString(
                            Map.of(
                                    "prompt",
                                    "Spell " + code(i) + " backwards",
                                    "completion",
                                    new StringBuilder(code(i)).reverse() + " " + code(i + 100))));
            data.append('\n');
        }
        DatasetPrepared p =
                preparation.prepare(ingested("instr-1", "instruction", data.toString(), 64));
        assertThat(
                        p.getCounts().getTrain()
                                + p.getCounts().getValidation()
                                + p.getCounts().getTest())
                .isEqualTo(40);
        assertThat(p.getLabelsList()).isEmpty();

        // Test examples are written one per line, with the text and the masked tokens.
        for (JsonNode n : read(p.getTest())) {
            long[] prompt = tokens(n.get("prompt").asText() + "\n");
            long[] answer = tokens(n.get("completion").asText());
            long[] expected = concat(prompt, answer, new long[] {SEP});
            assertThat(ids(n.get("input_ids"))).containsExactly(expected);
            long[] labels = ids(n.get("labels"));
            assertThat(Arrays.copyOf(labels, prompt.length)).containsOnly(-100L);
            assertThat(Arrays.copyOfRange(labels, prompt.length, labels.length))
                    .containsExactly(concat(answer, new long[] {SEP}));
        }

        // Training examples are packed: whole examples, each ending in [SEP], up to 64 tokens.
        List<JsonNode> blocks = read(p.getTrain());
        long packed = 0;
        for (JsonNode b : blocks) {
            long[] blockIds = ids(b.get("input_ids"));
            assertThat(blockIds.length).isLessThanOrEqualTo(64);
            assertThat(blockIds[blockIds.length - 1]).isEqualTo(SEP);
            assertThat(Arrays.stream(blockIds).filter(id -> id == SEP).count())
                    .isEqualTo(b.get("examples").asLong());
            assertThat(b.get("labels").size()).isEqualTo(blockIds.length);
            packed += b.get("examples").asLong();
        }
        assertThat(packed).isEqualTo(p.getCounts().getTrain());
        assertThat(blocks.size())
                .as("packing puts several examples in a block")
                .isLessThan((int) packed);
    }

    @Test
    void anS3ModelDirectoryLendsItsTokenizerWithoutItsWeights() throws Exception {
        // A GPT-2 directory in the store with MiniLM's tokenizer.json (no GPT-2 tokenizer exists
        // offline) and no weights at all: preprocessing needs the config and the tokenizer only.
        String base = "s3://tuneline/models/gpt2-tokenizer-only/";
        store.put(
                store.uri("models/gpt2-tokenizer-only/config.json"),
                io.tuneline.engine.model.gpt2.Gpt2Checkpoint.configJson(
                                io.tuneline.engine.model.gpt2.Gpt2Config.of(30522, 64, 32, 2, 4))
                        .getBytes(StandardCharsets.UTF_8),
                "application/json");
        try (InputStream in =
                getClass()
                        .getClassLoader()
                        .getResourceAsStream("all-minilm-l6-v2-tokenizer.json")) {
            store.put(
                    store.uri("models/gpt2-tokenizer-only/tokenizer.json"),
                    in.readAllBytes(),
                    "application/json");
        }
        StringBuilder data = new StringBuilder();
        for (int i = 0; i < 20; i++) {
            data.append("{\"text\":\"story ").append(code(i)).append(" ends\"}\n");
        }
        DatasetIngested in = ingested("s3-tok-1", "text", data.toString(), 64);
        in =
                in.toBuilder()
                        .setJob(
                                in.getJob().toBuilder()
                                        .setBaseModel(BaseModel.newBuilder().setRef(base)))
                        .build();
        DatasetPrepared p = preparation.prepare(in);
        for (JsonNode n : read(p.getValidation())) {
            assertThat(ids(n.get("input_ids")))
                    .containsExactly(concat(tokens(n.get("text").asText()), new long[] {SEP}));
        }
        assertThat(store.exists(store.uri("models/gpt2-tokenizer-only/model.safetensors")))
                .isFalse();
    }

    @Test
    void chatLearnsOnlyTheAssistantTurns() throws Exception {
        StringBuilder data = new StringBuilder();
        for (int i = 0; i < 20; i++) {
            data.append(
                            "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                                    + "{\"role\":\"user\",\"content\":\"What is ")
                    .append(i)
                    .append(" squared?\"},{\"role\":\"assistant\",\"content\":\"")
                    .append(i * i)
                    .append(" exactly\"}]}\n");
        }
        DatasetPrepared p = preparation.prepare(ingested("chat-1", "chat", data.toString(), 128));
        for (JsonNode n : read(p.getValidation())) {
            long[] input = ids(n.get("input_ids"));
            long[] labels = ids(n.get("labels"));
            String answer = n.get("messages").get(2).get("content").asText();
            long[] learned = Arrays.stream(labels).filter(l -> l != -100).toArray();
            assertThat(learned).containsExactly(concat(tokens(answer), new long[] {SEP}));
            assertThat(input).hasSameSizeAs(labels);
        }
    }

    @Test
    void truncationIsCountedAndLengthsAreMeasuredBeforeIt() throws Exception {
        StringBuilder data = new StringBuilder();
        List<Integer> lengths = new ArrayList<>();
        for (int i = 0; i < 50; i++) {
            // Not ASCII: the manifest's byte count must count bytes, not characters.
            String text = ("wörd" + i + " ").repeat(1 + i % 25);
            data.append(
                            JSON.writeValueAsString(
                                    Map.of("text", text, "label", i % 2 == 0 ? "a" : "b")))
                    .append('\n');
        }
        DatasetPrepared p =
                preparation.prepare(ingested("trunc-1", "classification", data.toString(), 16));
        long truncated = 0;
        Set<String> texts = new HashSet<>();
        for (ArtifactRef split : List.of(p.getTrain(), p.getValidation(), p.getTest())) {
            for (JsonNode n : read(split)) {
                long[] full = reference.encode(n.get("text").asText()).getIds();
                long[] written = ids(n.get("input_ids"));
                assertThat(written).containsExactly(Arrays.copyOf(full, Math.min(16, full.length)));
                if (full.length > 16) {
                    truncated++;
                }
                if (split == p.getTrain()) {
                    lengths.add(full.length);
                }
                texts.add(n.get("text").asText());
            }
        }
        assertThat(texts).hasSize(50);
        assertThat(truncated).isPositive();
        assertThat(p.getStats().getTruncatedExamples()).isEqualTo(truncated);
        lengths.sort(Integer::compare);
        assertThat(p.getStats().getTokenLengths().getMax())
                .isEqualTo((long) lengths.get(lengths.size() - 1));
        assertThat(p.getStats().getTokenLengths().getMin()).isEqualTo((long) lengths.get(0));
        // Nearest rank: the ceil(0.5 n)-th smallest.
        assertThat(p.getStats().getTokenLengths().getP50())
                .isEqualTo((long) lengths.get((int) Math.ceil(0.5 * lengths.size()) - 1));

        JsonNode manifest;
        try (InputStream in = store.get(p.getManifest())) {
            manifest = JSON.readTree(in);
        }
        for (var e :
                Map.of("train", p.getTrain(), "validation", p.getValidation(), "test", p.getTest())
                        .entrySet()) {
            try (InputStream in = store.get(e.getValue())) {
                String sha =
                        java.util.HexFormat.of()
                                .formatHex(
                                        java.security.MessageDigest.getInstance("SHA-256")
                                                .digest(in.readAllBytes()));
                assertThat(manifest.at("/files/" + e.getKey() + "/sha256").asText()).isEqualTo(sha);
            }
        }
        assertThat(manifest.at("/tokenizer/base_model").asText()).isEqualTo("minilm-l6");
        assertThat(manifest.at("/tokenizer/sha256").asText()).hasSize(64);
        assertThat(manifest.at("/tokenizer/lowercase").asBoolean()).isTrue();
        assertThat(
                        manifest.at("/truncated/train").asLong()
                                + manifest.at("/truncated/validation").asLong()
                                + manifest.at("/truncated/test").asLong())
                .isEqualTo(truncated);
        assertThat(manifest.at("/token_lengths/train/p99").asInt()).isPositive();
        assertThat(manifest.at("/input/bytes").asLong())
                .isEqualTo(data.toString().getBytes(StandardCharsets.UTF_8).length);
    }

    @Test
    void aSplitNamedInTheDataIsKeptAndTestCopiesLeaveTrain() throws Exception {
        StringBuilder data = new StringBuilder();
        for (int i = 0; i < 30; i++) {
            String split = i < 20 ? "train" : i < 25 ? "validation" : "test";
            data.append(
                            JSON.writeValueAsString(
                                    Map.of(
                                            "text",
                                            "unique sentence "
                                                    + Long.toString(NearDuplicates.mix(i), 36),
                                            "label",
                                            i % 2 == 0 ? "x" : "y",
                                            "split",
                                            split)))
                    .append('\n');
        }
        // The test split's first sentence also appears in train (exactly, and as a casing and
        // punctuation variant), and a train sentence twice within train.
        String leaked = "unique sentence " + Long.toString(NearDuplicates.mix(25), 36);
        data.append(JSON.writeValueAsString(Map.of("text", leaked, "label", "y", "split", "train")))
                .append('\n');
        data.append(
                        JSON.writeValueAsString(
                                Map.of(
                                        "text",
                                        leaked.toUpperCase() + "!!",
                                        "label",
                                        "y",
                                        "split",
                                        "train")))
                .append('\n');
        String trainText = "unique sentence " + Long.toString(NearDuplicates.mix(0), 36);
        data.append(
                        JSON.writeValueAsString(
                                Map.of("text", trainText, "label", "x", "split", "train")))
                .append('\n');

        DatasetPrepared p =
                preparation.prepare(ingested("given-1", "classification", data.toString(), 32));
        assertThat(p.getCounts().getTrain()).isEqualTo(20);
        assertThat(p.getCounts().getValidation()).isEqualTo(5);
        assertThat(p.getCounts().getTest()).isEqualTo(5);
        assertThat(p.getStats().getLeakageRemoved()).isEqualTo(2);
        assertThat(p.getStats().getExactDuplicatesRemoved()).isEqualTo(1);
        Set<String> train = new HashSet<>();
        read(p.getTrain()).forEach(n -> train.add(n.get("text").asText()));
        Set<String> test = new HashSet<>();
        read(p.getTest()).forEach(n -> test.add(n.get("text").asText()));
        assertThat(test).contains(leaked);
        assertThat(train).doesNotContainAnyElementsOf(test);
    }

    @Test
    void anUnknownSplitNameFailsNamingTheRecord() {
        String data =
                "{\"text\":\"a\",\"label\":\"x\",\"split\":\"train\"}\n"
                        + "{\"text\":\"b\",\"label\":\"y\",\"split\":\"holdout\"}\n";
        assertThatThrownBy(
                        () -> preparation.prepare(ingested("given-2", "classification", data, 32)))
                .hasMessageContaining("record 2")
                .hasMessageContaining("'holdout'");
    }

    @Test
    void progressIsReportedThroughBothPassesAndADatasetTooBigForTheHeapIsRefusedUpFront()
            throws Exception {
        StringBuilder data = new StringBuilder();
        for (int i = 0; i < 40_000; i++) {
            data.append("{\"text\":\"t").append(i).append("\"}\n");
        }
        List<Double> seen = new ArrayList<>();
        DatasetIngested ingested = ingested("progress-1", "text", data.toString(), 32);
        preparation.prepare(ingested, (percent, message) -> seen.add(percent));
        assertThat(seen).isSorted();
        // Pass 1 (read, deduplicate, tokenize) is 0-90%, pass 2 (write the splits) 90-100%.
        assertThat(seen).anyMatch(x -> x > 0 && x < 90).anyMatch(x -> x > 90 && x < 100);

        DatasetIngested huge =
                ingested.toBuilder().setJobId("huge").setValidRecords(4_000_000_000L).build();
        assertThatThrownBy(() -> preparation.prepare(huge))
                .hasMessageContaining("4,000,000,000 records")
                .hasMessageContaining("near-duplicates.enabled=false");
    }

    private static long[] concat(long[]... parts) {
        return Arrays.stream(parts).flatMapToLong(Arrays::stream).toArray();
    }
}
