package io.tuneline.preprocessing.prepare;

import io.tuneline.preprocessing.prepare.Example.Shape;
import java.util.ArrayList;
import java.util.List;

/**
 * Pass 1's tokenizing: one batch of examples through the tokenizer (one call per batch), each one's
 * tokens and, for causal examples, its labels. Classification text gets the model's special tokens
 * ({@code [CLS] ... [SEP]}); causal examples are formatted and masked by {@link CausalEncoder}.
 * Batches are encoded on several threads at once (the reader's workers); writing them to their
 * split's file stays in record order.
 */
final class Tokenization {
    /** One example's tokens; {@code labels} only for causal examples. */
    record Encoded(Example example, long[] inputIds, long[] labels) {}

    private final ModelTokenizer tokenizer;
    private final Shape shape;
    private final CausalEncoder causal;

    Tokenization(ModelTokenizer tokenizer, Shape shape, CausalEncoder causal) {
        this.tokenizer = tokenizer;
        this.shape = shape;
        this.causal = causal;
    }

    /** The batch's tokens, in its order; safe to call from several threads. */
    List<Encoded> encode(List<Example> batch) {
        List<Encoded> out = new ArrayList<>(batch.size());
        if (batch.isEmpty()) {
            return out;
        }
        if (shape == Shape.CLASSIFICATION) {
            long[][] ids =
                    tokenizer.encode(
                            batch.stream().map(e -> ((Example.Classification) e).text()).toList(),
                            true);
            for (int i = 0; i < ids.length; i++) {
                out.add(new Encoded(batch.get(i), ids[i], null));
            }
        } else {
            List<CausalEncoder.Encoded> encoded = causal.encode(batch);
            for (int i = 0; i < batch.size(); i++) {
                out.add(
                        new Encoded(
                                batch.get(i), encoded.get(i).inputIds(), encoded.get(i).labels()));
            }
        }
        return out;
    }
}
