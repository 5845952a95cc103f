package io.tuneline.preprocessing.prepare;

import io.tuneline.preprocessing.prepare.Example.Shape;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * Pass 2's tokenizing: batches examples through the tokenizer (one call per batch, which uses every
 * core) and hands each one's tokens, and for causal examples its labels, to its split's file.
 * Classification text gets the model's special tokens ({@code [CLS] ... [SEP]}); causal examples
 * are formatted and masked by {@link CausalEncoder}.
 */
final class Tokenization {
    private final ModelTokenizer tokenizer;
    private final Shape shape;
    private final List<SplitFile> files;
    private final CausalEncoder causal;
    private final List<Example> batch = new ArrayList<>();
    private final List<Byte> splits = new ArrayList<>();

    Tokenization(
            ModelTokenizer tokenizer, Shape shape, List<SplitFile> files, CausalEncoder causal) {
        this.tokenizer = tokenizer;
        this.shape = shape;
        this.files = files;
        this.causal = causal;
    }

    void add(Example example, byte split, int batchSize) throws IOException {
        batch.add(example);
        splits.add(split);
        if (batch.size() >= batchSize) {
            flush();
        }
    }

    void flush() throws IOException {
        if (batch.isEmpty()) {
            return;
        }
        if (shape == Shape.CLASSIFICATION) {
            long[][] ids =
                    tokenizer.encode(
                            batch.stream().map(e -> ((Example.Classification) e).text()).toList(),
                            true);
            for (int i = 0; i < ids.length; i++) {
                files.get(splits.get(i)).add(batch.get(i), ids[i], null);
            }
        } else {
            List<CausalEncoder.Encoded> encoded = causal.encode(batch);
            for (int i = 0; i < batch.size(); i++) {
                files.get(splits.get(i))
                        .add(batch.get(i), encoded.get(i).inputIds(), encoded.get(i).labels());
            }
        }
        batch.clear();
        splits.clear();
    }
}
