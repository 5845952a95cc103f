package io.tuneline.engine.model.gpt2;

import com.fasterxml.jackson.databind.JsonNode;
import io.tuneline.engine.io.hf.ConfigJson;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The shape of a GPT-2 decoder, as in a Hugging Face {@code config.json} (GPT2Config). Only what
 * the engine implements is accepted: GELU "new" (the tanh approximation), tied input and output
 * embeddings, attention scaled by 1/sqrt(head size) and no cross-attention. Anything else fails
 * with a message naming the setting, rather than loading a model that computes something else.
 *
 * @param vocabSize {@code vocab_size}
 * @param maxPositions {@code n_positions}: the longest sequence the model takes
 * @param hiddenSize {@code n_embd}
 * @param layers {@code n_layer}
 * @param heads {@code n_head}
 * @param innerSize {@code n_inner}, 4 * n_embd when absent or null
 * @param layerNormEps {@code layer_norm_epsilon}, 1e-5 for the published GPT-2 models
 * @param embdPdrop {@code embd_pdrop}: dropout on token + position embeddings while training
 * @param attnPdrop {@code attn_pdrop}: dropout on the attention probabilities while training
 * @param residPdrop {@code resid_pdrop}: dropout on the attention's and the MLP's output before
 *     each residual sum while training (all three 0.1 in the published models and by default)
 */
public record Gpt2Config(
        int vocabSize,
        int maxPositions,
        int hiddenSize,
        int layers,
        int heads,
        int innerSize,
        float layerNormEps,
        float embdPdrop,
        float attnPdrop,
        float residPdrop) {

    /** Hugging Face's {@code GPT2Config} default for the three dropout rates. */
    public static final float DEFAULT_DROPOUT = 0.1f;

    /** The only activation implemented: GELU with the tanh approximation. */
    public static final String GELU_NEW = "gelu_new";

    public Gpt2Config {
        if (vocabSize < 1 || maxPositions < 1 || hiddenSize < 1 || layers < 1 || heads < 1) {
            throw new IllegalArgumentException(
                    "vocab_size, n_positions, n_embd, n_layer and n_head must be positive");
        }
        if (innerSize < 1) {
            throw new IllegalArgumentException("n_inner must be positive, was " + innerSize);
        }
        if (hiddenSize % heads != 0) {
            throw new IllegalArgumentException(
                    "n_embd " + hiddenSize + " is not divisible by n_head " + heads);
        }
        if (!(layerNormEps > 0)) {
            throw new IllegalArgumentException(
                    "layer_norm_epsilon must be positive, was " + layerNormEps);
        }
        for (float rate : new float[] {embdPdrop, attnPdrop, residPdrop}) {
            if (!(rate >= 0 && rate < 1)) {
                throw new IllegalArgumentException(
                        "embd_pdrop, attn_pdrop and resid_pdrop must be in [0, 1), were "
                                + embdPdrop
                                + ", "
                                + attnPdrop
                                + " and "
                                + residPdrop);
            }
        }
    }

    /** With Hugging Face's default dropout rates. */
    public Gpt2Config(
            int vocabSize,
            int maxPositions,
            int hiddenSize,
            int layers,
            int heads,
            int innerSize,
            float layerNormEps) {
        this(
                vocabSize,
                maxPositions,
                hiddenSize,
                layers,
                heads,
                innerSize,
                layerNormEps,
                DEFAULT_DROPOUT,
                DEFAULT_DROPOUT,
                DEFAULT_DROPOUT);
    }

    /**
     * The same shape with every dropout rate 0: training is then a deterministic function of the
     * data, for comparisons such as accumulated versus whole batches.
     */
    public Gpt2Config withoutDropout() {
        return withDropout(0f);
    }

    /**
     * The same shape with {@code embd_pdrop}, {@code attn_pdrop} and {@code resid_pdrop} at {@code
     * rate}: a job's override of the checkpoint's rates.
     */
    public Gpt2Config withDropout(float rate) {
        return new Gpt2Config(
                vocabSize,
                maxPositions,
                hiddenSize,
                layers,
                heads,
                innerSize,
                layerNormEps,
                rate,
                rate,
                rate);
    }

    /** A config with n_inner = 4 * n_embd and the published epsilon 1e-5. */
    public static Gpt2Config of(
            int vocabSize, int maxPositions, int hiddenSize, int layers, int heads) {
        return new Gpt2Config(
                vocabSize, maxPositions, hiddenSize, layers, heads, 4 * hiddenSize, 1e-5f);
    }

    public int headSize() {
        return hiddenSize / heads;
    }

    /** Reads {@code config.json} (a file, or a model directory containing one). */
    public static Gpt2Config read(Path path) throws IOException {
        return ConfigJson.read(path, Gpt2Config::parse);
    }

    /** Parses the text of a Hugging Face GPT-2 {@code config.json}. */
    public static Gpt2Config parse(String json) {
        JsonNode root = ConfigJson.object(json);
        List<String> unsupported = new ArrayList<>();
        String modelType = root.path("model_type").asText("gpt2");
        if (!modelType.equals("gpt2")) {
            unsupported.add("model_type '" + modelType + "' (only gpt2)");
        }
        String activation = root.path("activation_function").asText(GELU_NEW);
        if (!activation.equals(GELU_NEW)) {
            unsupported.add("activation_function '" + activation + "' (only " + GELU_NEW + ")");
        }
        expect(root, "tie_word_embeddings", true, unsupported, "an untied LM head");
        expect(root, "scale_attn_weights", true, unsupported, "unscaled attention");
        expect(
                root,
                "scale_attn_by_inverse_layer_idx",
                false,
                unsupported,
                "attention scaled by the inverse layer index");
        expect(root, "reorder_and_upcast_attn", false, unsupported, "reordered attention");
        expect(root, "add_cross_attention", false, unsupported, "cross-attention");
        if (!unsupported.isEmpty()) {
            throw new IllegalArgumentException(
                    "unsupported GPT-2 configuration: " + String.join("; ", unsupported));
        }
        int hidden = ConfigJson.required(root, "n_embd");
        int innerSize = ConfigJson.optional(root, "n_inner", 4 * hidden);
        JsonNode eps = root.path("layer_norm_epsilon");
        return new Gpt2Config(
                ConfigJson.required(root, "vocab_size"),
                ConfigJson.required(root, "n_positions"),
                hidden,
                ConfigJson.required(root, "n_layer"),
                ConfigJson.required(root, "n_head"),
                innerSize,
                eps.isMissingNode() ? 1e-5f : (float) eps.asDouble(),
                rate(root, "embd_pdrop"),
                rate(root, "attn_pdrop"),
                rate(root, "resid_pdrop"));
    }

    private static float rate(JsonNode root, String field) {
        JsonNode n = root.path(field);
        return n.isMissingNode() || n.isNull() ? DEFAULT_DROPOUT : (float) n.asDouble();
    }

    private static void expect(
            JsonNode root, String field, boolean wanted, List<String> unsupported, String what) {
        JsonNode n = root.path(field);
        if (!n.isMissingNode() && !n.isNull() && n.asBoolean(wanted) != wanted) {
            unsupported.add(field + " " + !wanted + " (" + what + " is not implemented)");
        }
    }
}
