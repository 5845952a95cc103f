package io.tuneline.serving.classify;

import io.tuneline.serving.load.EngineBatcher;
import io.tuneline.serving.load.ModelQueue;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Function;
import java.util.function.IntConsumer;

/**
 * Gathers concurrent classify requests to one version into engine batches ({@link EngineBatcher}):
 * a batch holds up to {@code max-size} texts, a request is never split, and each request gets its
 * own rows back.
 */
final class ClassifyBatcher implements AutoCloseable {
    private final EngineBatcher<List<String>, double[][]> batcher;

    /**
     * @param engine class probabilities of a list of texts, one row per text
     * @param batchInputs hears the number of texts of each batch the engine runs
     */
    ClassifyBatcher(
            String name,
            ModelQueue queue,
            int maxSize,
            Duration maxWait,
            Function<List<String>, double[][]> engine,
            IntConsumer batchInputs) {
        this.batcher =
                new EngineBatcher<>(
                        "classify-" + name,
                        queue,
                        maxSize,
                        maxWait,
                        List::size,
                        requests -> {
                            List<String> texts = new ArrayList<>();
                            requests.forEach(texts::addAll);
                            double[][] rows = engine.apply(texts);
                            List<double[][]> answers = new ArrayList<>();
                            int from = 0;
                            for (List<String> r : requests) {
                                answers.add(Arrays.copyOfRange(rows, from, from + r.size()));
                                from += r.size();
                            }
                            return answers;
                        },
                        batchInputs);
    }

    /**
     * The class probabilities of {@code texts}, computed in a batch with other requests' texts.
     *
     * @throws io.tuneline.serving.api.ServingException 429 when too many requests wait for this
     *     version already
     */
    double[][] classify(List<String> texts) {
        return batcher.submit(List.copyOf(texts));
    }

    @Override
    public void close() {
        batcher.close();
    }
}
