package io.tuneline.engine.model.gpt2;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
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
 */
public record Gpt2Config(
        int vocabSize,
        int maxPositions,
        int hiddenSize,
        int layers,
        int heads,
        int innerSize,
        float layerNormEps) {

    /** The only activation implemented: GELU with the tanh approximation. */
    public static final String GELU_NEW = "gelu_new";

    private static final ObjectMapper JSON = new ObjectMapper();

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
        Path file = Files.isDirectory(path) ? path.resolve("config.json") : path;
        String text;
        try {
            text = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new NoSuchFileException(file + " (a GPT-2 model directory needs config.json)");
        }
        try {
            return parse(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
        }
    }

    /** Parses the text of a Hugging Face GPT-2 {@code config.json}. */
    public static Gpt2Config parse(String json) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (IOException e) {
            throw new IllegalArgumentException("config.json is not valid JSON: " + e.getMessage());
        }
        if (root == null || !root.isObject()) {
            throw new IllegalArgumentException("config.json is not a JSON object");
        }
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
        int hidden = required(root, "n_embd");
        JsonNode inner = root.path("n_inner");
        int innerSize =
                inner.isMissingNode() || inner.isNull() ? 4 * hidden : integer("n_inner", inner);
        JsonNode eps = root.path("layer_norm_epsilon");
        return new Gpt2Config(
                required(root, "vocab_size"),
                required(root, "n_positions"),
                hidden,
                required(root, "n_layer"),
                required(root, "n_head"),
                innerSize,
                eps.isMissingNode() ? 1e-5f : (float) eps.asDouble());
    }

    private static void expect(
            JsonNode root, String field, boolean wanted, List<String> unsupported, String what) {
        JsonNode n = root.path(field);
        if (!n.isMissingNode() && !n.isNull() && n.asBoolean(wanted) != wanted) {
            unsupported.add(field + " " + !wanted + " (" + what + " is not implemented)");
        }
    }

    private static int required(JsonNode root, String field) {
        JsonNode n = root.path(field);
        if (n.isMissingNode() || n.isNull()) {
            throw new IllegalArgumentException("config.json lacks '" + field + "'");
        }
        return integer(field, n);
    }

    private static int integer(String field, JsonNode n) {
        if (!n.canConvertToInt() || !n.isIntegralNumber()) {
            throw new IllegalArgumentException("'" + field + "' must be an integer, was " + n);
        }
        return n.intValue();
    }
}
