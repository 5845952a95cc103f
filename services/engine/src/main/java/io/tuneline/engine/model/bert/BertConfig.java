package io.tuneline.engine.model.bert;

/**
 * The shape of a BERT-family encoder, as in a Hugging Face {@code config.json} (BertConfig).
 *
 * @param layerNormEps {@code layer_norm_eps}; BERT and MiniLM use 1e-12
 */
public record BertConfig(
        int vocabSize,
        int hiddenSize,
        int layers,
        int heads,
        int intermediateSize,
        int maxPositions,
        int typeVocabSize,
        float layerNormEps) {

    public BertConfig {
        if (hiddenSize % heads != 0) {
            throw new IllegalArgumentException(
                    "hidden size " + hiddenSize + " is not divisible by " + heads + " heads");
        }
    }

    /** sentence-transformers/all-MiniLM-L6-v2 (its config.json). */
    public static BertConfig miniLmL6() {
        return new BertConfig(30522, 384, 6, 12, 1536, 512, 2, 1e-12f);
    }
}
