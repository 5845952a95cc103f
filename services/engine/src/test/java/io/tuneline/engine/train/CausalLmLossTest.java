package io.tuneline.engine.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import io.tuneline.engine.runtime.EngineRuntime;
import java.nio.file.Files;
import java.nio.file.Path;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Next-token cross-entropy with -100 labels, against a computation by hand. */
class CausalLmLossTest {
    private static final int V = 4;
    // (B=2, T=3, V=4)
    private static final float[] LOGITS = {
        1.0f, 2.0f, 0.5f, -1.0f, //
        0.0f, 0.3f, 2.2f, 1.1f, //
        9.0f, -9.0f, 9.0f, -9.0f, // last position: predicts nothing
        -0.5f, 0.5f, 1.5f, 0.0f, //
        3.0f, 1.0f, 0.0f, 0.2f, //
        0.7f, 0.7f, 0.7f, 0.7f
    };
    // Row 0: labels at 1 and 2 scored. Row 1: the prompt (positions 0, 1) is -100.
    private static final long[] LABELS = {5, 1, 3, 2, -100, 0};

    private static EngineRuntime runtime;

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    /** -log softmax(row)[label], in doubles. */
    private static double nll(int offset, int label) {
        double max = Double.NEGATIVE_INFINITY;
        for (int v = 0; v < V; v++) {
            max = Math.max(max, LOGITS[offset + v]);
        }
        double sum = 0;
        for (int v = 0; v < V; v++) {
            sum += Math.exp(LOGITS[offset + v] - max);
        }
        return -(LOGITS[offset + label] - max - Math.log(sum));
    }

    @Test
    void scoresEachPositionAgainstTheNextLabelAndSkipsMinus100() {
        // Scored: row 0 t=0 -> label 1, t=1 -> label 3; row 1 t=1 -> label 0.
        double expected = (nll(0, 1) + nll(4, 3) + nll(3 * V + V, 0)) / 3;
        try (NDManager m = runtime.engine().newBaseManager(runtime.device())) {
            NDArray logits = m.create(LOGITS, new Shape(2, 3, V));
            NDArray labels = m.create(LABELS, new Shape(2, 3));
            assertThat((double) CausalLmLoss.mean(logits, labels).getFloat())
                    .isCloseTo(expected, Offset.offset(1e-6));
            NDArray[] sc = CausalLmLoss.sumAndCount(logits, labels);
            assertThat(sc[1].getFloat()).isEqualTo(3f);
            assertThat((double) sc[0].getFloat()).isCloseTo(3 * expected, Offset.offset(1e-5));
            assertThat(
                            CausalLmLoss.targets(new long[] {5, 1, 3})
                                    + CausalLmLoss.targets(new long[] {2, -100, 0}))
                    .isEqualTo(3);
        }
    }

    @Test
    void maskedPositionsContributeNeitherLossNorGradient() {
        try (NDManager m = runtime.engine().newBaseManager(runtime.device())) {
            NDArray logits = m.create(LOGITS, new Shape(2, 3, V));
            logits.setRequiresGradient(true);
            NDArray labels = m.create(LABELS, new Shape(2, 3));
            float loss;
            try (GradientCollector c = Engine.getInstance().newGradientCollector()) {
                NDArray l = CausalLmLoss.mean(logits, labels);
                loss = l.getFloat();
                c.backward(l);
            }
            float[] grad = logits.getGradient().toFloatArray();
            // Row 1 position 0 predicts label -100; every last position predicts nothing.
            for (int pos : new int[] {2, 3, 5}) {
                for (int v = 0; v < V; v++) {
                    assertThat(grad[pos * V + v]).as("position %d", pos).isZero();
                }
            }
            assertThat(grad[0 * V + 1]).isNegative(); // the scored label is pulled up

            // Changing the logits at unscored positions leaves the loss as it was.
            float[] changed = LOGITS.clone();
            for (int pos : new int[] {2, 3, 5}) {
                for (int v = 0; v < V; v++) {
                    changed[pos * V + v] = 5 * v - 7;
                }
            }
            assertThat(CausalLmLoss.mean(m.create(changed, new Shape(2, 3, V)), labels).getFloat())
                    .isEqualTo(loss);

            // All labels ignored: zero, not NaN.
            NDArray none = m.create(new long[] {-100, -100, -100, 7, -100, -100}, new Shape(2, 3));
            assertThat(CausalLmLoss.mean(logits, none).getFloat()).isZero();
            assertThatThrownBy(
                            () ->
                                    CausalLmLoss.mean(
                                            logits, m.create(new long[] {1, 2}, new Shape(1, 2))))
                    .isInstanceOf(IllegalArgumentException.class);
        }
    }

    @Test
    void readsPreprocessedJsonLines(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("train.jsonl");
        Files.writeString(
                f,
                "{\"input_ids\":[1,2,3],\"labels\":[-100,2,3],\"examples\":1}\n\n"
                        + "{\"input_ids\":[4,5]}\n");
        assertThat(LmExample.readJsonl(f))
                .containsExactly(
                        new LmExample(new long[] {1, 2, 3}, new long[] {-100, 2, 3}),
                        LmExample.of(4, 5));
        Files.writeString(f, "{\"input_ids\":[1,2,3],\"labels\":[1]}\n");
        assertThatThrownBy(() -> LmExample.readJsonl(f)).hasMessageContaining("line 1");
    }
}
