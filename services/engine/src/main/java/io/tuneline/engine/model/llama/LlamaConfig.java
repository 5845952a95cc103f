package io.tuneline.engine.model.llama;

import com.fasterxml.jackson.databind.JsonNode;
import io.tuneline.engine.io.hf.ConfigJson;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * The shape of a Llama-family decoder as a Hugging Face {@code config.json} describes it: Llama
 * (and SmolLM, which is Llama with tied embeddings), Mistral, Qwen2 and Qwen3. The variants differ
 * only in flags (transformers' {@code modeling_llama.py}, {@code modeling_mistral.py}, {@code
 * modeling_qwen2.py}, {@code modeling_qwen3.py}):
 *
 * <ul>
 *   <li>Llama: {@code attention_bias} on q/k/v/o, {@code mlp_bias} on gate/up/down.
 *   <li>Mistral: no biases; {@code sliding_window} on every layer when set.
 *   <li>Qwen2: q/k/v always carry a bias, o_proj never; a sliding window only with {@code
 *       use_sliding_window}, on layers from {@code max_window_layers} on.
 *   <li>Qwen3: {@code attention_bias} on q/k/v/o; RMSNorm over each head's query and key ({@code
 *       q_norm}, {@code k_norm}) before RoPE; sliding window as Qwen2.
 * </ul>
 *
 * <p>Only what the engine implements is accepted: {@code hidden_act} silu, the rope types in {@link
 * RopeScaling}; anything else fails naming the field.
 *
 * @param modelType {@code model_type}: llama, mistral, qwen2 or qwen3
 * @param headDim {@code head_dim}, hidden_size / num_attention_heads when absent or null
 * @param kvHeads {@code num_key_value_heads}, num_attention_heads when absent (no GQA)
 * @param qkvBias whether q/k/v projections have a bias
 * @param outputBias whether o_proj has a bias
 * @param mlpBias whether gate/up/down have a bias
 * @param qkNorm Qwen3's per-head RMSNorm of queries and keys
 * @param slidingWindow the window in tokens, 0 for none
 * @param slidingLayers per layer, whether it attends through the sliding window
 * @param attentionDropout {@code attention_dropout}: dropout on the attention probabilities while
 *     training ({@code LlamaAttention}: {@code dropout=0.0 if not self.training else
 *     self.attention_dropout}); 0 when absent, every family's default
 */
public record LlamaConfig(
        String modelType,
        int vocabSize,
        int hiddenSize,
        int intermediateSize,
        int layers,
        int heads,
        int kvHeads,
        int headDim,
        float rmsNormEps,
        double ropeTheta,
        RopeScaling ropeScaling,
        int maxPositionEmbeddings,
        boolean tieWordEmbeddings,
        boolean qkvBias,
        boolean outputBias,
        boolean mlpBias,
        boolean qkNorm,
        int slidingWindow,
        List<Boolean> slidingLayers,
        OptionalInt bosTokenId,
        List<Integer> eosTokenIds,
        OptionalInt padTokenId,
        float attentionDropout) {

    /** The model types this family reads. */
    public static final List<String> MODEL_TYPES = List.of("llama", "mistral", "qwen2", "qwen3");

    public LlamaConfig {
        if (!MODEL_TYPES.contains(modelType)) {
            throw new IllegalArgumentException(
                    "model_type '" + modelType + "' is not one of " + MODEL_TYPES);
        }
        if (vocabSize < 1
                || hiddenSize < 1
                || intermediateSize < 1
                || layers < 1
                || heads < 1
                || kvHeads < 1
                || headDim < 1
                || maxPositionEmbeddings < 1) {
            throw new IllegalArgumentException(
                    "vocab_size, hidden_size, intermediate_size, num_hidden_layers,"
                            + " num_attention_heads, num_key_value_heads, head_dim and"
                            + " max_position_embeddings must be positive");
        }
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException(
                    "num_attention_heads "
                            + heads
                            + " is not a multiple of num_key_value_heads "
                            + kvHeads);
        }
        if (headDim % 2 != 0) {
            // rotate_half splits each head into two halves.
            throw new IllegalArgumentException("head_dim " + headDim + " must be even for RoPE");
        }
        if (!(rmsNormEps > 0) || !(ropeTheta > 0)) {
            throw new IllegalArgumentException("rms_norm_eps and rope_theta must be positive");
        }
        if (slidingWindow < 0) {
            throw new IllegalArgumentException("sliding_window must be positive or null");
        }
        slidingLayers = List.copyOf(slidingLayers);
        if (slidingLayers.size() != layers) {
            throw new IllegalArgumentException(
                    slidingLayers.size() + " layer types for " + layers + " layers");
        }
        if (slidingWindow == 0 && slidingLayers.contains(true)) {
            throw new IllegalArgumentException("sliding layers without a sliding_window");
        }
        eosTokenIds = List.copyOf(eosTokenIds);
        if (!(attentionDropout >= 0 && attentionDropout < 1)) {
            throw new IllegalArgumentException(
                    "attention_dropout " + attentionDropout + " must be in [0, 1)");
        }
    }

    /** The same model without attention dropout, for runs that must be a function of the data. */
    public LlamaConfig withoutDropout() {
        return withAttentionDropout(0f);
    }

    /**
     * The same model with attention dropout at {@code rate}, the only dropout the Llama family has:
     * a job's override of {@code attention_dropout}.
     */
    public LlamaConfig withAttentionDropout(float rate) {
        return new LlamaConfig(
                modelType,
                vocabSize,
                hiddenSize,
                intermediateSize,
                layers,
                heads,
                kvHeads,
                headDim,
                rmsNormEps,
                ropeTheta,
                ropeScaling,
                maxPositionEmbeddings,
                tieWordEmbeddings,
                qkvBias,
                outputBias,
                mlpBias,
                qkNorm,
                slidingWindow,
                slidingLayers,
                bosTokenId,
                eosTokenIds,
                padTokenId,
                rate);
    }

    /** Query heads per key/value head (1 without grouped-query attention). */
    public int groups() {
        return heads / kvHeads;
    }

    /** Whether layer {@code layer} attends through the sliding window. */
    public boolean sliding(int layer) {
        return slidingLayers.get(layer);
    }

    /** Reads {@code config.json} (a file, or a model directory containing one). */
    public static LlamaConfig read(Path path) throws IOException {
        return ConfigJson.read(path, LlamaConfig::parse);
    }

    /** Parses the text of a Hugging Face Llama/Mistral/Qwen2/Qwen3 {@code config.json}. */
    public static LlamaConfig parse(String json) {
        JsonNode root = ConfigJson.object(json);
        JsonNode typeNode = root.path("model_type");
        if (typeNode.isMissingNode() || typeNode.isNull()) {
            throw new IllegalArgumentException("config.json lacks 'model_type'");
        }
        String modelType = typeNode.asText();
        if (!MODEL_TYPES.contains(modelType)) {
            throw new IllegalArgumentException(
                    "model_type '" + modelType + "' is not a Llama-family decoder " + MODEL_TYPES);
        }
        List<String> unsupported = new ArrayList<>();
        String act = root.path("hidden_act").asText("silu");
        if (!act.equals("silu")) {
            unsupported.add("hidden_act '" + act + "' (only silu)");
        }
        int hidden = ConfigJson.required(root, "hidden_size");
        int layers = ConfigJson.required(root, "num_hidden_layers");
        int heads = ConfigJson.required(root, "num_attention_heads");
        int kvHeads = ConfigJson.optional(root, "num_key_value_heads", heads);
        if (!root.has("head_dim") || root.path("head_dim").isNull()) {
            if (hidden % heads != 0) {
                throw new IllegalArgumentException(
                        "hidden_size "
                                + hidden
                                + " is not divisible by num_attention_heads "
                                + heads
                                + " and there is no head_dim");
            }
        }
        int headDim = ConfigJson.optional(root, "head_dim", hidden / heads);
        int maxPositions = ConfigJson.optional(root, "max_position_embeddings", 2048);
        double partialRotary = number(root, "partial_rotary_factor", 1.0);
        if (partialRotary != 1.0) {
            unsupported.add("partial_rotary_factor " + partialRotary + " (only 1.0)");
        }

        // transformers v5 folds rope_theta and rope_scaling into rope_parameters; read either.
        JsonNode ropeParameters = root.path("rope_parameters");
        JsonNode ropeNode = ropeParameters.isObject() ? ropeParameters : root.path("rope_scaling");
        double theta =
                number(
                        ropeParameters.isObject() && ropeParameters.has("rope_theta")
                                ? ropeParameters
                                : root,
                        "rope_theta",
                        10000.0);
        RopeScaling rope = ropeScaling(ropeNode, maxPositions, unsupported);

        boolean attentionBias = bool(root, "attention_bias", false);
        boolean qkvBias;
        boolean outputBias;
        boolean mlpBias = false;
        boolean qkNorm = false;
        switch (modelType) {
            case "llama" -> {
                qkvBias = attentionBias;
                outputBias = attentionBias;
                mlpBias = bool(root, "mlp_bias", false);
            }
            case "mistral" -> {
                // MistralAttention's projections have no bias whatever the config says.
                qkvBias = false;
                outputBias = false;
            }
            case "qwen2" -> {
                // Qwen2Attention: q/k/v with bias=True, o_proj with bias=False, always.
                qkvBias = true;
                outputBias = false;
            }
            default -> {
                qkvBias = attentionBias;
                outputBias = attentionBias;
                qkNorm = true;
            }
        }
        int window = 0;
        List<Boolean> sliding = new ArrayList<>();
        Integer configuredWindow =
                root.path("sliding_window").isNull() || !root.has("sliding_window")
                        ? null
                        : ConfigJson.required(root, "sliding_window");
        if (modelType.equals("mistral")) {
            window = configuredWindow == null ? 0 : configuredWindow;
            for (int i = 0; i < layers; i++) {
                sliding.add(window > 0);
            }
        } else if (modelType.startsWith("qwen")) {
            // Qwen2Config / Qwen3Config: sliding_window only with use_sliding_window; layer_types
            // when given, else sliding from max_window_layers on.
            boolean use = bool(root, "use_sliding_window", false);
            window = use && configuredWindow != null ? configuredWindow : 0;
            JsonNode layerTypes = root.path("layer_types");
            if (layerTypes.isArray()) {
                if (layerTypes.size() != layers) {
                    throw new IllegalArgumentException(
                            "layer_types has "
                                    + layerTypes.size()
                                    + " entries for "
                                    + layers
                                    + " layers");
                }
                for (JsonNode t : layerTypes) {
                    String type = t.asText();
                    if (!type.equals("full_attention") && !type.equals("sliding_attention")) {
                        unsupported.add("layer_types entry '" + type + "'");
                    }
                    sliding.add(window > 0 && type.equals("sliding_attention"));
                }
            } else {
                int from = ConfigJson.optional(root, "max_window_layers", 28);
                for (int i = 0; i < layers; i++) {
                    sliding.add(window > 0 && i >= from);
                }
            }
        } else {
            for (int i = 0; i < layers; i++) {
                sliding.add(false);
            }
        }
        if (!unsupported.isEmpty()) {
            throw new IllegalArgumentException(
                    "unsupported "
                            + modelType
                            + " configuration: "
                            + String.join("; ", unsupported));
        }
        return new LlamaConfig(
                modelType,
                ConfigJson.required(root, "vocab_size"),
                hidden,
                ConfigJson.required(root, "intermediate_size"),
                layers,
                heads,
                kvHeads,
                headDim,
                (float) number(root, "rms_norm_eps", 1e-6),
                theta,
                rope,
                maxPositions,
                bool(root, "tie_word_embeddings", false),
                qkvBias,
                outputBias,
                mlpBias,
                qkNorm,
                window,
                sliding,
                optionalInt(root, "bos_token_id"),
                tokenIds(root, "eos_token_id"),
                optionalInt(root, "pad_token_id"),
                (float) number(root, "attention_dropout", 0.0));
    }

    private static RopeScaling ropeScaling(
            JsonNode node, int maxPositions, List<String> unsupported) {
        if (node.isMissingNode() || node.isNull()) {
            return new RopeScaling.Default();
        }
        if (!node.isObject()) {
            throw new IllegalArgumentException(
                    "rope_scaling must be an object or null, was " + node);
        }
        JsonNode typeNode = node.has("rope_type") ? node.path("rope_type") : node.path("type");
        String type = typeNode.asText("default").toLowerCase(Locale.ROOT);
        switch (type) {
            case "default":
                return new RopeScaling.Default();
            case "linear":
                return new RopeScaling.Linear(requiredNumber(node, "factor"));
            case "dynamic":
                return new RopeScaling.Dynamic(requiredNumber(node, "factor"));
            case "llama3":
                return new RopeScaling.Llama3(
                        requiredNumber(node, "factor"),
                        requiredNumber(node, "low_freq_factor"),
                        requiredNumber(node, "high_freq_factor"),
                        (int) requiredNumber(node, "original_max_position_embeddings"));
            case "yarn":
                int original =
                        node.hasNonNull("original_max_position_embeddings")
                                ? (int) requiredNumber(node, "original_max_position_embeddings")
                                : maxPositions;
                // transformers v5 takes factor as given and derives it from the two lengths only
                // when absent (some v4.5x releases overrode it with that ratio whenever
                // original_max_position_embeddings was set, which turned Qwen2.5's recommended
                // yarn block into factor 1).
                return new RopeScaling.Yarn(
                        optionalNumber(node, "factor").orElse((double) maxPositions / original),
                        optionalNumber(node, "attention_factor"),
                        // `or 32` / `or 1` in transformers: absent, null or 0 take the default.
                        nonZero(optionalNumber(node, "beta_fast"), 32),
                        nonZero(optionalNumber(node, "beta_slow"), 1),
                        optionalNumber(node, "mscale"),
                        optionalNumber(node, "mscale_all_dim"),
                        original,
                        bool(node, "truncate", true));
            default:
                unsupported.add(
                        "rope_scaling type '"
                                + typeNode.asText()
                                + "' (only linear, dynamic, llama3, yarn)");
                return new RopeScaling.Default();
        }
    }

    private static double nonZero(OptionalDouble value, double fallback) {
        return value.isPresent() && value.getAsDouble() != 0 ? value.getAsDouble() : fallback;
    }

    private static double requiredNumber(JsonNode node, String field) {
        JsonNode n = node.path(field);
        if (!n.isNumber()) {
            throw new IllegalArgumentException(
                    "rope_scaling lacks the number '" + field + "' (was " + n + ")");
        }
        return n.asDouble();
    }

    private static OptionalDouble optionalNumber(JsonNode node, String field) {
        JsonNode n = node.path(field);
        if (n.isMissingNode() || n.isNull()) {
            return OptionalDouble.empty();
        }
        if (!n.isNumber()) {
            throw new IllegalArgumentException("'" + field + "' must be a number, was " + n);
        }
        return OptionalDouble.of(n.asDouble());
    }

    private static double number(JsonNode root, String field, double fallback) {
        return optionalNumber(root, field).orElse(fallback);
    }

    private static boolean bool(JsonNode root, String field, boolean fallback) {
        JsonNode n = root.path(field);
        if (n.isMissingNode() || n.isNull()) {
            return fallback;
        }
        if (!n.isBoolean()) {
            throw new IllegalArgumentException("'" + field + "' must be true or false, was " + n);
        }
        return n.asBoolean();
    }

    private static OptionalInt optionalInt(JsonNode root, String field) {
        JsonNode n = root.path(field);
        return n.isMissingNode() || n.isNull()
                ? OptionalInt.empty()
                : OptionalInt.of(ConfigJson.required(root, field));
    }

    /** {@code eos_token_id}: absent, one id, or a list of ids (Llama 3 instruct models). */
    private static List<Integer> tokenIds(JsonNode root, String field) {
        JsonNode n = root.path(field);
        if (n.isMissingNode() || n.isNull()) {
            return List.of();
        }
        List<Integer> ids = new ArrayList<>();
        if (n.isArray()) {
            for (JsonNode e : n) {
                if (!e.isIntegralNumber() || !e.canConvertToInt()) {
                    throw new IllegalArgumentException(
                            "'" + field + "' must hold integers, was " + n);
                }
                ids.add(e.intValue());
            }
        } else {
            ids.add(ConfigJson.required(root, field));
        }
        return ids;
    }
}
