package io.tuneline.engine.model.gpt2;

import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

/**
 * A small random GPT-2 written as a Hugging Face model directory (vocab 50, 2 layers, 4 heads,
 * n_embd 32, 16 positions) with the project's own safetensors writer.
 */
final class TinyGpt2 {
    static final Gpt2Config CONFIG = Gpt2Config.of(50, 16, 32, 2, 4);

    static final String CONFIG_JSON =
            """
            {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50,
             "n_positions": 16, "n_ctx": 16, "n_embd": 32, "n_layer": 2, "n_head": 4,
             "n_inner": null, "layer_norm_epsilon": 1e-05, "activation_function": "gelu_new",
             "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1,
             "initializer_range": 0.02, "scale_attn_weights": true, "use_cache": true,
             "bos_token_id": 49, "eos_token_id": 49, "tie_word_embeddings": true}
            """;

    private TinyGpt2() {}

    /** Random weights in the HF layout (Conv1D (in, out)), by name without "transformer.". */
    static Map<String, float[]> randomWeights(long seed) {
        Gpt2Config c = CONFIG;
        int h = c.hiddenSize();
        Random r = new Random(seed);
        Map<String, float[]> w = new LinkedHashMap<>();
        w.put("wte.weight", normal(r, c.vocabSize() * h, 0.3, 0));
        w.put("wpe.weight", normal(r, c.maxPositions() * h, 0.1, 0));
        for (int l = 0; l < c.layers(); l++) {
            String p = "h." + l + ".";
            w.put(p + "ln_1.weight", normal(r, h, 0.1, 1));
            w.put(p + "ln_1.bias", normal(r, h, 0.1, 0));
            w.put(p + "attn.c_attn.weight", normal(r, h * 3 * h, 0.2, 0));
            w.put(p + "attn.c_attn.bias", normal(r, 3 * h, 0.1, 0));
            w.put(p + "attn.c_proj.weight", normal(r, h * h, 0.2, 0));
            w.put(p + "attn.c_proj.bias", normal(r, h, 0.1, 0));
            w.put(p + "ln_2.weight", normal(r, h, 0.1, 1));
            w.put(p + "ln_2.bias", normal(r, h, 0.1, 0));
            w.put(p + "mlp.c_fc.weight", normal(r, h * c.innerSize(), 0.2, 0));
            w.put(p + "mlp.c_fc.bias", normal(r, c.innerSize(), 0.1, 0));
            w.put(p + "mlp.c_proj.weight", normal(r, c.innerSize() * h, 0.1, 0));
            w.put(p + "mlp.c_proj.bias", normal(r, h, 0.1, 0));
        }
        w.put("ln_f.weight", normal(r, h, 0.1, 1));
        w.put("ln_f.bias", normal(r, h, 0.1, 0));
        return w;
    }

    static long[] shape(String name) {
        Gpt2Config c = CONFIG;
        int h = c.hiddenSize();
        if (name.equals("wte.weight")) {
            return new long[] {c.vocabSize(), h};
        }
        if (name.equals("wpe.weight")) {
            return new long[] {c.maxPositions(), h};
        }
        if (name.endsWith("attn.c_attn.weight")) {
            return new long[] {h, 3 * h};
        }
        if (name.endsWith("attn.c_proj.weight")) {
            return new long[] {h, h};
        }
        if (name.endsWith("mlp.c_fc.weight")) {
            return new long[] {h, c.innerSize()};
        }
        if (name.endsWith("mlp.c_proj.weight")) {
            return new long[] {c.innerSize(), h};
        }
        if (name.endsWith("attn.c_attn.bias")) {
            return new long[] {3 * h};
        }
        if (name.endsWith("mlp.c_fc.bias")) {
            return new long[] {c.innerSize()};
        }
        return new long[] {h};
    }

    /**
     * Writes config.json and model.safetensors. {@code prefixed}: names as GPT2LMHeadModel saves
     * them ({@code transformer.h.0...} plus {@code lm_head.weight}); otherwise as GPT2Model saves
     * them ({@code h.0...}) with the old causal-mask buffers {@code h.N.attn.bias}.
     */
    static Path write(Path dir, Map<String, float[]> weights, boolean prefixed) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), CONFIG_JSON);
        SafetensorsWriter writer = new SafetensorsWriter().metadata("format", "pt");
        for (Map.Entry<String, float[]> e : weights.entrySet()) {
            writer.addF32(
                    (prefixed ? "transformer." : "") + e.getKey(), shape(e.getKey()), e.getValue());
        }
        if (prefixed) {
            writer.addF32("lm_head.weight", shape("wte.weight"), weights.get("wte.weight"));
        } else {
            int t = CONFIG.maxPositions();
            for (int l = 0; l < CONFIG.layers(); l++) {
                float[] tril = new float[t * t];
                for (int i = 0; i < t; i++) {
                    for (int j = 0; j <= i; j++) {
                        tril[i * t + j] = 1;
                    }
                }
                writer.addF32("h." + l + ".attn.bias", new long[] {1, 1, t, t}, tril);
            }
        }
        writer.write(dir.resolve("model.safetensors"));
        return dir;
    }

    private static float[] normal(Random r, int n, double std, double mean) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (mean + std * r.nextGaussian());
        }
        return v;
    }
}
