package io.tuneline.engine.model.llama;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Small Llama-family configurations, one per variant the engine implements, and the checkpoint
 * layouts real models come in (F32, BF16, sharded), written with the project's own writer.
 */
public final class TinyLlamas {
    private static final ObjectMapper JSON = new ObjectMapper();

    private TinyLlamas() {}

    private static final String BASE =
            "\"vocab_size\": 61, \"hidden_size\": 32, \"intermediate_size\": 48,"
                    + " \"num_hidden_layers\": 2, \"max_position_embeddings\": 64,"
                    + " \"rms_norm_eps\": 1e-6, \"hidden_act\": \"silu\", \"bos_token_id\": 1,"
                    + " \"eos_token_id\": 2, ";

    /** Variant name to config.json text. */
    public static Map<String, String> variants() {
        Map<String, String> v = new LinkedHashMap<>();
        v.put(
                "llama-untied",
                "{\"model_type\": \"llama\", "
                        + BASE
                        + "\"num_attention_heads\": 4, \"rope_theta\": 10000.0,"
                        + " \"tie_word_embeddings\": false}");
        v.put(
                "llama-tied",
                "{\"model_type\": \"llama\", "
                        + BASE
                        + "\"num_attention_heads\": 4, \"num_key_value_heads\": 4,"
                        + " \"rope_theta\": 100000.0, \"tie_word_embeddings\": true}");
        v.put(
                "llama-gqa",
                "{\"model_type\": \"llama\", "
                        + BASE
                        + "\"num_attention_heads\": 8, \"num_key_value_heads\": 2,"
                        + " \"head_dim\": 8, \"rope_theta\": 10000.0, \"attention_bias\": true,"
                        + " \"mlp_bias\": true, \"tie_word_embeddings\": false}");
        v.put(
                "mistral-sliding",
                "{\"model_type\": \"mistral\", "
                        + BASE
                        + "\"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
                        + " \"sliding_window\": 4, \"rope_theta\": 10000.0,"
                        + " \"tie_word_embeddings\": false}");
        v.put(
                "qwen2-bias",
                "{\"model_type\": \"qwen2\", "
                        + BASE
                        + "\"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
                        + " \"rope_theta\": 1000000.0, \"use_sliding_window\": true,"
                        + " \"sliding_window\": 3, \"max_window_layers\": 1,"
                        + " \"tie_word_embeddings\": true}");
        v.put(
                "qwen3-qknorm",
                "{\"model_type\": \"qwen3\", "
                        + BASE
                        + "\"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
                        + " \"head_dim\": 16, \"rope_theta\": 1000000.0,"
                        + " \"attention_bias\": false, \"use_sliding_window\": false,"
                        + " \"sliding_window\": null, \"tie_word_embeddings\": true}");
        v.put(
                "rope-llama3",
                "{\"model_type\": \"llama\", "
                        + BASE
                        + "\"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
                        + " \"rope_theta\": 100.0, \"tie_word_embeddings\": true,"
                        // head_dim 8, theta 100: wavelengths 6.3, 19.9, 62.8, 199 against 8 and
                        // 32 -- one kept, one smoothed, two divided by the factor.
                        + " \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0,"
                        + " \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
                        + " \"original_max_position_embeddings\": 32}}");
        v.put(
                "rope-linear",
                "{\"model_type\": \"llama\", "
                        + BASE
                        + "\"num_attention_heads\": 4, \"rope_theta\": 10000.0,"
                        + " \"tie_word_embeddings\": false,"
                        + " \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.5}}");
        v.put(
                "rope-yarn",
                "{\"model_type\": \"qwen2\", "
                        + BASE
                        + "\"num_attention_heads\": 2, \"num_key_value_heads\": 1,"
                        // head_dim 16, theta 100: the ramp runs over dims 0..2, so the
                        // frequencies are extrapolated, blended and interpolated.
                        + " \"rope_theta\": 100.0, \"tie_word_embeddings\": false,"
                        + " \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0,"
                        + " \"original_max_position_embeddings\": 16}}");
        v.put(
                "rope-dynamic",
                "{\"model_type\": \"llama\", \"vocab_size\": 61, \"hidden_size\": 32,"
                        + " \"intermediate_size\": 48, \"num_hidden_layers\": 2,"
                        // Shorter than the test sequences: the NTK base grows with them.
                        + " \"max_position_embeddings\": 6, \"rms_norm_eps\": 1e-5,"
                        + " \"num_attention_heads\": 4, \"rope_theta\": 10000.0,"
                        + " \"tie_word_embeddings\": true,"
                        + " \"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 2.0}}");
        return v;
    }

    /** Writes {@code variant} as a random F32 checkpoint (weights std 0.2) into {@code dir}. */
    public static Path write(String variant, Path dir, long seed) throws IOException {
        LlamaConfig config = LlamaConfig.parse(variants().get(variant));
        LlamaCheckpoint.saveRandom(config, dir, seed, 0.2);
        return dir;
    }

    /** Rewrites the directory's model.safetensors with every tensor in BF16 (truncated). */
    public static void toBf16(Path dir) throws IOException {
        Path file = dir.resolve("model.safetensors");
        Map<String, long[]> shapes = new LinkedHashMap<>();
        Map<String, float[]> values = new LinkedHashMap<>();
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            for (String n : f.names()) {
                shapes.put(n, f.info(n).shape());
                values.put(n, f.floats(n));
            }
        }
        ObjectNode header = JSON.createObjectNode();
        long offset = 0;
        for (String n : shapes.keySet()) {
            ObjectNode t = header.putObject(n);
            t.put("dtype", "BF16");
            var shape = t.putArray("shape");
            for (long d : shapes.get(n)) {
                shape.add(d);
            }
            long bytes = 2L * values.get(n).length;
            t.putArray("data_offsets").add(offset).add(offset + bytes);
            offset += bytes;
        }
        byte[] headerBytes = JSON.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        int padded = (headerBytes.length + 7) / 8 * 8;
        ByteBuffer out =
                ByteBuffer.allocate((int) (8 + padded + offset)).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(padded);
        out.put(headerBytes);
        for (int i = headerBytes.length; i < padded; i++) {
            out.put((byte) ' ');
        }
        for (float[] v : values.values()) {
            for (float x : v) {
                out.putShort((short) (Float.floatToRawIntBits(x) >>> 16));
            }
        }
        try (OutputStream os = Files.newOutputStream(file)) {
            os.write(out.array());
        }
    }

    /**
     * Splits the directory's model.safetensors into two shards and an index, as {@code
     * save_pretrained} does above its shard size, and removes the single file.
     */
    public static void shard(Path dir) throws IOException {
        Path file = dir.resolve("model.safetensors");
        List<String> shardNames =
                List.of("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors");
        SafetensorsWriter[] writers = {new SafetensorsWriter(), new SafetensorsWriter()};
        ObjectNode index = JSON.createObjectNode();
        ObjectNode map = index.putObject("weight_map");
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            List<String> names = f.names();
            // transformers' total_size: the tensors' bytes, headers not counted.
            long total = 0;
            for (String n : names) {
                total += 4 * java.util.Arrays.stream(f.info(n).shape()).reduce(1, (a, b) -> a * b);
            }
            index.putObject("metadata").put("total_size", total);
            for (int i = 0; i < names.size(); i++) {
                int s = i < names.size() / 2 ? 0 : 1;
                writers[s].addF32(
                        names.get(i), f.info(names.get(i)).shape(), f.floats(names.get(i)));
                map.put(names.get(i), shardNames.get(s));
            }
        }
        for (int s = 0; s < 2; s++) {
            writers[s].metadata("format", "pt").write(dir.resolve(shardNames.get(s)));
        }
        Files.writeString(
                dir.resolve("model.safetensors.index.json"),
                JSON.writerWithDefaultPrettyPrinter().writeValueAsString(index));
        Files.delete(file);
    }
}
