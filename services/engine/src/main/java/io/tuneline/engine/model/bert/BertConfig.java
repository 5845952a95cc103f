package io.tuneline.engine.model.bert;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.io.hf.ConfigJson;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The shape of a BERT-family encoder, as in a Hugging Face {@code config.json} (BertConfig,
 * RobertaConfig). Only what the engine implements is accepted: exact (erf) GELU, absolute position
 * embeddings, an encoder without cross-attention. Anything else fails with a message naming the
 * setting, rather than loading a model that computes something else.
 *
 * @param layerNormEps {@code layer_norm_eps}; BERT and MiniLM use 1e-12, RoBERTa 1e-5
 * @param modelType {@code bert} or {@code roberta}
 * @param positionOffset the first position embedding row a sequence uses: 0 for BERT; RoBERTa
 *     numbers positions from {@code pad_token_id + 1} (fairseq's convention), so its table has
 *     {@code pad_token_id + 1} rows more than the longest sequence it takes
 * @param hiddenDropout {@code hidden_dropout_prob}: on the embeddings and on each attention and
 *     feed-forward output before its residual sum, while training (Hugging Face's default 0.1)
 * @param attentionDropout {@code attention_probs_dropout_prob}: on the attention probabilities,
 *     while training (default 0.1)
 */
public record BertConfig(
        int vocabSize,
        int hiddenSize,
        int layers,
        int heads,
        int intermediateSize,
        int maxPositions,
        int typeVocabSize,
        float layerNormEps,
        String modelType,
        int positionOffset,
        float hiddenDropout,
        float attentionDropout) {

    /** Hugging Face's {@code BertConfig} default for both dropout rates. */
    public static final float DEFAULT_DROPOUT = 0.1f;

    public static final String BERT = "bert";
    public static final String ROBERTA = "roberta";

    private static final ObjectMapper JSON = new ObjectMapper();

    public BertConfig {
        if (vocabSize < 1
                || hiddenSize < 1
                || layers < 1
                || heads < 1
                || intermediateSize < 1
                || maxPositions < 1
                || typeVocabSize < 1) {
            throw new IllegalArgumentException(
                    "vocab_size, hidden_size, num_hidden_layers, num_attention_heads,"
                            + " intermediate_size, max_position_embeddings and type_vocab_size"
                            + " must be positive");
        }
        if (hiddenSize % heads != 0) {
            throw new IllegalArgumentException(
                    "hidden size " + hiddenSize + " is not divisible by " + heads + " heads");
        }
        if (!(layerNormEps > 0)) {
            throw new IllegalArgumentException(
                    "layer_norm_eps must be positive, was " + layerNormEps);
        }
        if (!modelType.equals(BERT) && !modelType.equals(ROBERTA)) {
            throw new IllegalArgumentException(
                    "model_type '" + modelType + "' is not a BERT-family encoder");
        }
        if (!(hiddenDropout >= 0 && hiddenDropout < 1)
                || !(attentionDropout >= 0 && attentionDropout < 1)) {
            throw new IllegalArgumentException(
                    "hidden_dropout_prob and attention_probs_dropout_prob must be in [0, 1), were "
                            + hiddenDropout
                            + " and "
                            + attentionDropout);
        }
        if (positionOffset < 0 || positionOffset >= maxPositions) {
            throw new IllegalArgumentException(
                    "position offset "
                            + positionOffset
                            + " leaves none of the "
                            + maxPositions
                            + " position embeddings");
        }
    }

    /** With Hugging Face's default dropout rates. */
    public BertConfig(
            int vocabSize,
            int hiddenSize,
            int layers,
            int heads,
            int intermediateSize,
            int maxPositions,
            int typeVocabSize,
            float layerNormEps,
            String modelType,
            int positionOffset) {
        this(
                vocabSize,
                hiddenSize,
                layers,
                heads,
                intermediateSize,
                maxPositions,
                typeVocabSize,
                layerNormEps,
                modelType,
                positionOffset,
                DEFAULT_DROPOUT,
                DEFAULT_DROPOUT);
    }

    /** A BERT layout (positions from 0), Hugging Face's default dropout rates. */
    public BertConfig(
            int vocabSize,
            int hiddenSize,
            int layers,
            int heads,
            int intermediateSize,
            int maxPositions,
            int typeVocabSize,
            float layerNormEps) {
        this(
                vocabSize,
                hiddenSize,
                layers,
                heads,
                intermediateSize,
                maxPositions,
                typeVocabSize,
                layerNormEps,
                BERT,
                0);
    }

    /** sentence-transformers/all-MiniLM-L6-v2 (its config.json). */
    public static BertConfig miniLmL6() {
        return new BertConfig(30522, 384, 6, 12, 1536, 512, 2, 1e-12f);
    }

    /**
     * The same shape with every dropout rate 0: training is then a deterministic function of the
     * data, for comparisons such as accumulated versus whole batches.
     */
    public BertConfig withoutDropout() {
        return withDropout(0f);
    }

    /**
     * The same shape with every dropout rate inside the encoder ({@code hidden_dropout_prob} and
     * {@code attention_probs_dropout_prob}) at {@code rate}: a job's override of the checkpoint's
     * rates.
     */
    public BertConfig withDropout(float rate) {
        return new BertConfig(
                vocabSize,
                hiddenSize,
                layers,
                heads,
                intermediateSize,
                maxPositions,
                typeVocabSize,
                layerNormEps,
                modelType,
                positionOffset,
                rate,
                rate);
    }

    /** The longest sequence the position embeddings cover. */
    public int maxSequenceLength() {
        return maxPositions - positionOffset;
    }

    /** Reads {@code config.json} (a file, or a model directory containing one). */
    public static BertConfig read(Path path) throws IOException {
        return ConfigJson.read(path, BertConfig::parse);
    }

    /** Parses the text of a Hugging Face BERT or RoBERTa {@code config.json}. */
    public static BertConfig parse(String json) {
        JsonNode root = ConfigJson.object(json);
        List<String> unsupported = new ArrayList<>();
        String modelType = root.path("model_type").asText(BERT);
        if (!modelType.equals(BERT) && !modelType.equals(ROBERTA)) {
            unsupported.add("model_type '" + modelType + "' (only bert and roberta)");
        }
        String activation = root.path("hidden_act").asText("gelu");
        if (!activation.equals("gelu")) {
            unsupported.add("hidden_act '" + activation + "' (only gelu, the exact erf form)");
        }
        String positions = root.path("position_embedding_type").asText("absolute");
        if (!positions.equals("absolute")) {
            unsupported.add(
                    "position_embedding_type '" + positions + "' (only absolute positions)");
        }
        if (root.path("is_decoder").asBoolean(false)) {
            unsupported.add("is_decoder true (a decoder is not a BERT-family encoder)");
        }
        if (root.path("add_cross_attention").asBoolean(false)) {
            unsupported.add("add_cross_attention true (cross-attention is not implemented)");
        }
        if (!unsupported.isEmpty()) {
            throw new IllegalArgumentException(
                    "unsupported encoder configuration: " + String.join("; ", unsupported));
        }
        boolean roberta = modelType.equals(ROBERTA);
        JsonNode eps = root.path("layer_norm_eps");
        int padId = ConfigJson.optional(root, "pad_token_id", 1);
        return new BertConfig(
                ConfigJson.required(root, "vocab_size"),
                ConfigJson.required(root, "hidden_size"),
                ConfigJson.required(root, "num_hidden_layers"),
                ConfigJson.required(root, "num_attention_heads"),
                ConfigJson.required(root, "intermediate_size"),
                ConfigJson.required(root, "max_position_embeddings"),
                ConfigJson.optional(root, "type_vocab_size", 2),
                eps.isMissingNode() || eps.isNull() ? 1e-12f : (float) eps.asDouble(),
                modelType,
                roberta ? padId + 1 : 0,
                rate(root, "hidden_dropout_prob"),
                rate(root, "attention_probs_dropout_prob"));
    }

    private static float rate(JsonNode root, String field) {
        JsonNode n = root.path(field);
        return n.isMissingNode() || n.isNull() ? DEFAULT_DROPOUT : (float) n.asDouble();
    }

    /**
     * A Hugging Face {@code config.json} object for this shape ({@code BertModel} or {@code
     * RobertaModel}); callers add their own fields (labels, provenance) before writing it.
     */
    public ObjectNode toJson() {
        ObjectNode c = JSON.createObjectNode();
        boolean roberta = modelType.equals(ROBERTA);
        c.putArray("architectures").add(roberta ? "RobertaModel" : "BertModel");
        c.put("model_type", modelType);
        c.put("vocab_size", vocabSize);
        c.put("hidden_size", hiddenSize);
        c.put("num_hidden_layers", layers);
        c.put("num_attention_heads", heads);
        c.put("intermediate_size", intermediateSize);
        c.put("max_position_embeddings", maxPositions);
        c.put("type_vocab_size", typeVocabSize);
        c.put("layer_norm_eps", layerNormEps);
        c.put("hidden_act", "gelu");
        c.put("position_embedding_type", "absolute");
        c.put("hidden_dropout_prob", hiddenDropout);
        c.put("attention_probs_dropout_prob", attentionDropout);
        if (roberta) {
            c.put("pad_token_id", positionOffset - 1);
        }
        return c;
    }
}
