package io.tuneline.engine.model;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import java.util.List;

/**
 * Class probabilities of texts from a {@link SequenceClassifier}, inference only: the texts in
 * batches, each padded to its longest text (at most {@code maxLength} tokens) with the attention
 * mask, softmax of the logits. What evaluation scores a split with and serving answers with, so
 * both give the same numbers for the same model.
 */
public final class ClassifierPredictions {
    private ClassifierPredictions() {}

    /** Token ids and attention mask of one batch, (B, T) each, padded with id 0. */
    public record Batch(long[] ids, long[] mask, int size, int length) {
        public NDList inputs(NDManager m) {
            return new NDList(
                    m.create(ids, new Shape(size, length)),
                    m.create(mask, new Shape(size, length)));
        }
    }

    /** {@code texts} encoded (the tokenizer truncates) and padded to the longest. */
    public static Batch batch(HuggingFaceTokenizer tokenizer, List<String> texts, int maxLength) {
        Encoding[] enc = tokenizer.batchEncode(texts);
        int length = 1;
        for (Encoding e : enc) {
            length = Math.max(length, Math.min(maxLength, e.getIds().length));
        }
        long[] ids = new long[texts.size() * length];
        long[] mask = new long[texts.size() * length];
        for (int i = 0; i < enc.length; i++) {
            long[] e = enc[i].getIds();
            // The tokenizer's own mask: a tokenizer built with padding pads the batch itself, and
            // those pads must not count as text (else a text's answer depends on its batch).
            long[] m = enc[i].getAttentionMask();
            for (int j = 0; j < Math.min(length, e.length); j++) {
                ids[i * length + j] = e[j];
                mask[i * length + j] = m[j];
            }
        }
        return new Batch(ids, mask, texts.size(), length);
    }

    /** Each text's class probabilities, in the head's label order. */
    public static double[][] probabilities(
            Model model,
            SequenceClassifier classifier,
            HuggingFaceTokenizer tokenizer,
            List<String> texts,
            int maxLength,
            int batchSize) {
        double[][] out = new double[texts.size()][];
        for (int from = 0; from < texts.size(); from += batchSize) {
            Batch b =
                    batch(
                            tokenizer,
                            texts.subList(from, Math.min(texts.size(), from + batchSize)),
                            maxLength);
            try (NDManager m = model.getNDManager().newSubManager()) {
                NDArray probs =
                        classifier
                                .forward(new ParameterStore(m, false), b.inputs(m), false)
                                .singletonOrThrow()
                                .softmax(-1);
                copyRows(probs, out, from);
            }
        }
        return out;
    }

    /** The rows of a (B, K) array into {@code out} from row {@code from}. */
    public static void copyRows(NDArray probs, double[][] out, int from) {
        int rows = (int) probs.getShape().get(0);
        int k = (int) probs.getShape().get(1);
        float[] flat = probs.toFloatArray();
        for (int i = 0; i < rows; i++) {
            double[] row = new double[k];
            for (int j = 0; j < k; j++) {
                row[j] = flat[i * k + j];
            }
            out[from + i] = row;
        }
    }
}
