package io.tuneline.engine.model.llama;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.Model;
import ai.djl.nn.Parameter;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import io.tuneline.engine.runtime.EngineRuntime;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Loading checkpoints: names, layouts, and failures that name the tensor. */
class LlamaCheckpointTest {
    private static EngineRuntime runtime;

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    @Test
    void parametersAndLinearsCarryHuggingFaceNamesAndOnlyTheBiasesTheVariantHas(@TempDir Path dir)
            throws Exception {
        Path qwen2 = TinyLlamas.write("qwen2-bias", dir, 1);
        try (Model model = LlamaCheckpoint.load(qwen2, runtime.device());
                SafetensorsFile f = SafetensorsFile.open(qwen2.resolve("model.safetensors"))) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            // Every stored tensor is a parameter and vice versa (tied: no lm_head.weight).
            assertThat(lm.namedParameters().keySet())
                    .containsExactlyInAnyOrderElementsOf(f.names());
            assertThat(lm.namedParameters())
                    .containsKey("model.layers.1.self_attn.q_proj.bias")
                    .doesNotContainKey("model.layers.1.self_attn.o_proj.bias")
                    .doesNotContainKey("model.layers.1.mlp.up_proj.bias")
                    .doesNotContainKey("lm_head.weight");
            assertThat(lm.linears().keySet())
                    .hasSize(14)
                    .startsWith(
                            "model.layers.0.self_attn.q_proj",
                            "model.layers.0.self_attn.k_proj",
                            "model.layers.0.self_attn.v_proj",
                            "model.layers.0.self_attn.o_proj",
                            "model.layers.0.mlp.gate_proj",
                            "model.layers.0.mlp.up_proj",
                            "model.layers.0.mlp.down_proj");
            assertThat(
                            lm.linears()
                                    .get("model.layers.0.self_attn.k_proj")
                                    .weight()
                                    .getArray()
                                    .getShape()
                                    .getShape())
                    .containsExactly(16, 32); // 2 kv heads x head_dim 8
            // A bias the architecture lacks stays zero and frozen.
            Parameter oBias = lm.linears().get("model.layers.0.self_attn.o_proj").bias();
            assertThat(oBias.requiresGradient()).isFalse();
            assertThat(oBias.getArray().abs().sum().getFloat()).isZero();
        }
        Path untied = TinyLlamas.write("llama-untied", dir.resolve("untied"), 2);
        try (Model model = LlamaCheckpoint.load(untied, runtime.device())) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            assertThat(lm.namedParameters()).containsKey("lm_head.weight");
            assertThat(lm.namedParameters())
                    .doesNotContainKey("model.layers.0.self_attn.q_proj.bias");
        }
    }

    @Test
    void namesWithoutTheModelPrefixAndATiedHeadStoredAsACopyLoadTheSameLogits(@TempDir Path dir)
            throws Exception {
        Path original = TinyLlamas.write("llama-tied", dir.resolve("a"), 3);
        Path bare = dir.resolve("b");
        rewrite(
                original,
                bare,
                n -> n.startsWith("model.") ? n.substring("model.".length()) : n,
                "embed_tokens.weight",
                "lm_head.weight");
        long[][] ids = {{1, 5, 9, 13, 2}};
        float[] expected;
        try (Model model = LlamaCheckpoint.load(original, runtime.device())) {
            expected = LlamaReferenceTest.forward(model, ids, null);
        }
        try (Model model = LlamaCheckpoint.load(bare, runtime.device())) {
            assertThat(LlamaReferenceTest.forward(model, ids, null)).containsExactly(expected);
        }
    }

    @Test
    void aModelAboveTheShardSizeIsWrittenInTransformersShardsThatLoadTheSameLogits(
            @TempDir Path dir) throws Exception {
        Path original = TinyLlamas.write("llama-untied", dir.resolve("original"), 5);
        Path saved = dir.resolve("saved");
        long[][] ids = {{1, 5, 9, 13, 2}};
        float[] expected;
        long tensorBytes = 0;
        try (SafetensorsFile f = SafetensorsFile.open(original.resolve("model.safetensors"))) {
            for (String n : f.names()) {
                tensorBytes +=
                        4 * java.util.Arrays.stream(f.info(n).shape()).reduce(1, (a, b) -> a * b);
            }
        }
        long max = tensorBytes / 4;
        try (Model model = LlamaCheckpoint.load(original, runtime.device())) {
            expected = LlamaReferenceTest.forward(model, ids, null);
            // A stale single file from an earlier export must not sit beside the shards.
            Files.createDirectories(saved);
            Files.writeString(saved.resolve("model.safetensors"), "stale");
            LlamaCheckpoint.save(
                    (LlamaLmModel) model.getBlock(),
                    saved,
                    io.tuneline.engine.io.safetensors.Dtype.F32,
                    max);
        }
        var index =
                new com.fasterxml.jackson.databind.ObjectMapper()
                        .readTree(saved.resolve(LlamaCheckpoint.INDEX).toFile());
        java.util.Set<String> shards = new java.util.TreeSet<>();
        index.path("weight_map").forEach(v -> shards.add(v.asText()));
        int n = shards.size();
        assertThat(n).as("shards of at most a quarter of the weights").isGreaterThanOrEqualTo(4);
        assertThat(shards.iterator().next())
                .isEqualTo(String.format("model-00001-of-%05d.safetensors", n));
        assertThat(saved.resolve("model.safetensors")).doesNotExist();
        long stored = 0;
        int mapped = 0;
        for (String shard : shards) {
            assertThat(shard)
                    .matches("model-\\d{5}-of-" + String.format("%05d", n) + "\\.safetensors");
            try (SafetensorsFile f = SafetensorsFile.open(saved.resolve(shard))) {
                long bytes = 0;
                for (String name : f.names()) {
                    assertThat(index.path("weight_map").path(name).asText())
                            .as(name)
                            .isEqualTo(shard);
                    bytes +=
                            4
                                    * java.util.Arrays.stream(f.info(name).shape())
                                            .reduce(1, (a, b) -> a * b);
                    mapped++;
                }
                assertThat(f.names().size() == 1 || bytes <= max)
                        .as(shard + " within the limit")
                        .isTrue();
                stored += bytes;
            }
        }
        assertThat(mapped).isEqualTo(index.path("weight_map").size());
        assertThat(index.path("metadata").path("total_size").asLong())
                .isEqualTo(stored)
                .isEqualTo(tensorBytes);
        try (Model model = LlamaCheckpoint.load(saved, runtime.device())) {
            assertThat(LlamaReferenceTest.forward(model, ids, null)).containsExactly(expected);
            // Written again under a limit it fits: one file, and the shards and index are gone.
            LlamaCheckpoint.save(
                    (LlamaLmModel) model.getBlock(),
                    saved,
                    io.tuneline.engine.io.safetensors.Dtype.F32,
                    LlamaCheckpoint.MAX_SHARD_BYTES);
        }
        try (var files = Files.list(saved)) {
            assertThat(files.map(f -> f.getFileName().toString()).sorted().toList())
                    .containsExactly("config.json", "model.safetensors");
        }
    }

    @Test
    void aMissingWronglyShapedOrUnknownTensorFailsNamingIt(@TempDir Path dir) throws Exception {
        Path good = TinyLlamas.write("llama-untied", dir.resolve("good"), 4);
        Path missing = dir.resolve("missing");
        rewrite(
                good,
                missing,
                n -> n.equals("model.layers.1.mlp.up_proj.weight") ? null : n,
                null,
                null);
        assertThatThrownBy(() -> LlamaCheckpoint.load(missing, runtime.device()))
                .hasMessageContaining("'model.layers.1.mlp.up_proj.weight'")
                .hasMessageContaining("missing");

        Path noHead = dir.resolve("nohead");
        rewrite(good, noHead, n -> n.equals("lm_head.weight") ? null : n, null, null);
        assertThatThrownBy(() -> LlamaCheckpoint.load(noHead, runtime.device()))
                .hasMessageContaining("'lm_head.weight'");

        Path extra = dir.resolve("extra");
        rewrite(good, extra, n -> n, "model.norm.weight", "model.layers.0.self_attn.o_proj.bias");
        assertThatThrownBy(() -> LlamaCheckpoint.load(extra, runtime.device()))
                .hasMessageContaining("does not have")
                .hasMessageContaining("model.layers.0.self_attn.o_proj.bias");

        // A config whose intermediate_size disagrees with the stored MLP weights.
        Path shape = dir.resolve("shape");
        rewrite(good, shape, n -> n, null, null);
        Files.writeString(
                shape.resolve("config.json"),
                Files.readString(shape.resolve("config.json"))
                        .replace("\"intermediate_size\" : 48", "\"intermediate_size\" : 40"));
        assertThatThrownBy(() -> LlamaCheckpoint.load(shape, runtime.device()))
                .hasMessageContaining("model.layers.0.mlp.gate_proj.weight")
                .hasMessageContaining("[48, 32]");

        Path sharded = dir.resolve("sharded");
        rewrite(good, sharded, n -> n, null, null);
        TinyLlamas.shard(sharded);
        Files.delete(sharded.resolve("model-00002-of-00002.safetensors"));
        assertThatThrownBy(() -> LlamaCheckpoint.load(sharded, runtime.device()))
                .hasMessageContaining("model-00002-of-00002.safetensors");
    }

    /**
     * Copies a checkpoint renaming tensors ({@code rename} returns null to drop one) and adding a
     * copy of {@code copyFrom} under {@code copyTo}.
     */
    private static void rewrite(
            Path from, Path to, UnaryOperator<String> rename, String copyFrom, String copyTo)
            throws Exception {
        Files.createDirectories(to);
        Files.copy(from.resolve("config.json"), to.resolve("config.json"));
        SafetensorsWriter w = new SafetensorsWriter();
        Map<String, float[]> values = new LinkedHashMap<>();
        try (SafetensorsFile f = SafetensorsFile.open(from.resolve("model.safetensors"))) {
            for (String n : f.names()) {
                String name = rename.apply(n);
                values.put(n, f.floats(n));
                if (name != null) {
                    w.addF32(name, f.info(n).shape(), values.get(n));
                }
            }
            if (copyFrom != null) {
                String source = values.containsKey(copyFrom) ? copyFrom : "model." + copyFrom;
                w.addF32(copyTo, f.info(source).shape(), values.get(source));
            }
        }
        w.write(to.resolve("model.safetensors"));
    }
}
