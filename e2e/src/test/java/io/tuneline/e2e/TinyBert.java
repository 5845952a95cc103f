package io.tuneline.e2e;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/**
 * A Hugging Face BERT directory with random weights and MiniLM's real tokenizer, small enough (2
 * layers of width 32) that a job on it spends its time in the platform, not in the model: the load
 * test's small job. Written here as plain bytes, as any tool writes {@code model.safetensors}.
 */
final class TinyBert {
    static final int HIDDEN = 32;
    static final int LAYERS = 2;
    static final int INTERMEDIATE = 64;
    static final int POSITIONS = 64;
    static final int VOCAB = 30522;

    private TinyBert() {}

    /** {@code config.json}, {@code model.safetensors} and {@code tokenizer.json}, by file name. */
    static Map<String, byte[]> files(long seed) throws IOException {
        Map<String, byte[]> files = new LinkedHashMap<>();
        files.put(
                "config.json",
                ("{\"model_type\": \"bert\", \"architectures\": [\"BertModel\"], \"vocab_size\": "
                                + VOCAB
                                + ", \"hidden_size\": "
                                + HIDDEN
                                + ", \"num_hidden_layers\": "
                                + LAYERS
                                + ", \"num_attention_heads\": 2, \"intermediate_size\": "
                                + INTERMEDIATE
                                + ", \"max_position_embeddings\": "
                                + POSITIONS
                                + ", \"type_vocab_size\": 2, \"layer_norm_eps\": 1e-12,"
                                + " \"hidden_act\": \"gelu\", \"hidden_dropout_prob\": 0.1,"
                                + " \"attention_probs_dropout_prob\": 0.1, \"pad_token_id\": 0}")
                        .getBytes(StandardCharsets.UTF_8));
        files.put("model.safetensors", weights(seed));
        try (InputStream in =
                TinyBert.class
                        .getClassLoader()
                        .getResourceAsStream("all-minilm-l6-v2-tokenizer.json")) {
            if (in == null) {
                throw new IOException("MiniLM's tokenizer.json is not on the test classpath");
            }
            files.put("tokenizer.json", in.readAllBytes());
        }
        return files;
    }

    private static byte[] weights(long seed) throws IOException {
        Map<String, int[]> shapes = new LinkedHashMap<>();
        shapes.put("embeddings.word_embeddings.weight", new int[] {VOCAB, HIDDEN});
        shapes.put("embeddings.position_embeddings.weight", new int[] {POSITIONS, HIDDEN});
        shapes.put("embeddings.token_type_embeddings.weight", new int[] {2, HIDDEN});
        shapes.put("embeddings.LayerNorm.weight", new int[] {HIDDEN});
        shapes.put("embeddings.LayerNorm.bias", new int[] {HIDDEN});
        for (int l = 0; l < LAYERS; l++) {
            String p = "encoder.layer." + l + ".";
            for (String m : new String[] {"query", "key", "value"}) {
                shapes.put(p + "attention.self." + m + ".weight", new int[] {HIDDEN, HIDDEN});
                shapes.put(p + "attention.self." + m + ".bias", new int[] {HIDDEN});
            }
            shapes.put(p + "attention.output.dense.weight", new int[] {HIDDEN, HIDDEN});
            shapes.put(p + "attention.output.dense.bias", new int[] {HIDDEN});
            shapes.put(p + "attention.output.LayerNorm.weight", new int[] {HIDDEN});
            shapes.put(p + "attention.output.LayerNorm.bias", new int[] {HIDDEN});
            shapes.put(p + "intermediate.dense.weight", new int[] {INTERMEDIATE, HIDDEN});
            shapes.put(p + "intermediate.dense.bias", new int[] {INTERMEDIATE});
            shapes.put(p + "output.dense.weight", new int[] {HIDDEN, INTERMEDIATE});
            shapes.put(p + "output.dense.bias", new int[] {HIDDEN});
            shapes.put(p + "output.LayerNorm.weight", new int[] {HIDDEN});
            shapes.put(p + "output.LayerNorm.bias", new int[] {HIDDEN});
        }
        shapes.put("pooler.dense.weight", new int[] {HIDDEN, HIDDEN});
        shapes.put("pooler.dense.bias", new int[] {HIDDEN});

        // safetensors: an 8-byte little-endian header length, the JSON header (padded with spaces
        // to 8 bytes), then each tensor's little-endian bytes at its data_offsets.
        StringBuilder header = new StringBuilder("{");
        long offset = 0;
        for (Map.Entry<String, int[]> e : shapes.entrySet()) {
            long bytes = 4L * count(e.getValue());
            if (header.length() > 1) {
                header.append(',');
            }
            header.append('"')
                    .append(e.getKey())
                    .append("\":{\"dtype\":\"F32\",\"shape\":[")
                    .append(join(e.getValue()))
                    .append("],\"data_offsets\":[")
                    .append(offset)
                    .append(',')
                    .append(offset + bytes)
                    .append("]}");
            offset += bytes;
        }
        header.append('}');
        while ((header.length() + 8) % 8 != 0) {
            header.append(' ');
        }
        byte[] json = header.toString().getBytes(StandardCharsets.UTF_8);
        ByteArrayOutputStream out = new ByteArrayOutputStream((int) (8 + json.length + offset));
        out.write(
                ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(json.length).array());
        out.write(json);
        Random r = new Random(seed);
        for (Map.Entry<String, int[]> e : shapes.entrySet()) {
            boolean norm = e.getKey().endsWith("LayerNorm.weight");
            boolean bias = e.getKey().endsWith(".bias");
            ByteBuffer b =
                    ByteBuffer.allocate(4 * count(e.getValue())).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < count(e.getValue()); i++) {
                b.putFloat(norm ? 1f : bias ? 0f : (float) (0.05 * r.nextGaussian()));
            }
            out.write(b.array());
        }
        return out.toByteArray();
    }

    private static int count(int[] shape) {
        int n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }

    private static String join(int[] shape) {
        StringBuilder s = new StringBuilder();
        for (int d : shape) {
            s.append(s.length() == 0 ? "" : ",").append(d);
        }
        return s.toString();
    }
}
