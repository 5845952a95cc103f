package io.tuneline.engine.nn;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import io.tuneline.engine.runtime.EngineRuntime;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The LM head's logits and both gradients are those of {@code h W^T}, written out here in double
 * precision, whichever product computes them: the transposed one for a wide vocabulary on a CPU,
 * the plain one for a narrow vocabulary.
 */
class LmHeadTest {
    private final EngineRuntime runtime = EngineRuntime.start(2);

    @Test
    void logitsAndGradientsAreThoseOfTheProductWideOrNarrow() {
        int n = 3;
        int hidden = 5;
        int wide = (int) LmHead.WIDE + 3;
        int narrow = 7;
        Random random = new Random(11);
        float[] h = values(random, n * hidden);
        float[] wWide = values(random, wide * hidden);
        float[] wNarrow = values(random, narrow * hidden);
        // The loss sum(logits * g): its gradient with respect to the logits is g.
        float[] gWide = values(random, n * wide);
        float[] gNarrow = values(random, n * narrow);
        try (NDManager m = NDManager.newBaseManager(runtime.device(), EngineRuntime.ENGINE)) {
            NDArray hv = m.create(h, new Shape(n, hidden));
            NDArray wideW = m.create(wWide, new Shape(wide, hidden));
            NDArray narrowW = m.create(wNarrow, new Shape(narrow, hidden));
            hv.setRequiresGradient(true);
            wideW.setRequiresGradient(true);
            narrowW.setRequiresGradient(true);
            assertThat(LmHead.transposed(hv, wideW)).isEqualTo(!runtime.device().isGpu());
            assertThat(LmHead.transposed(hv, narrowW)).isFalse();
            float[] logitsWide;
            float[] logitsNarrow;
            try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
                NDArray a = LmHead.logits(hv, wideW);
                NDArray b = LmHead.logits(hv, narrowW);
                assertThat(a.getShape()).isEqualTo(new Shape(n, wide));
                logitsWide = a.toFloatArray();
                logitsNarrow = b.toFloatArray();
                gc.backward(
                        a.mul(m.create(gWide, new Shape(n, wide)))
                                .sum()
                                .add(b.mul(m.create(gNarrow, new Shape(n, narrow))).sum()));
            }
            assertClose(logitsWide, product(h, wWide, n, hidden, wide), "wide logits");
            assertClose(logitsNarrow, product(h, wNarrow, n, hidden, narrow), "narrow logits");
            // d/dh = g W summed over both heads; d/dW = g^T h.
            double[] dh =
                    add(
                            backInput(gWide, wWide, n, hidden, wide),
                            backInput(gNarrow, wNarrow, n, hidden, narrow));
            assertClose(hv.getGradient().toFloatArray(), dh, "gradient of h");
            assertClose(
                    wideW.getGradient().toFloatArray(),
                    backWeight(gWide, h, n, hidden, wide),
                    "gradient of the wide W");
            assertClose(
                    narrowW.getGradient().toFloatArray(),
                    backWeight(gNarrow, h, n, hidden, narrow),
                    "gradient of the narrow W");
            assertThat(LmHead.logits(hv, wideW).toFloatArray()).containsExactly(logitsWide);
        }
    }

    private static float[] values(Random random, int size) {
        float[] v = new float[size];
        for (int i = 0; i < size; i++) {
            v[i] = (float) random.nextGaussian();
        }
        return v;
    }

    private static double[] product(float[] h, float[] w, int n, int hidden, int vocab) {
        double[] out = new double[n * vocab];
        for (int i = 0; i < n; i++) {
            for (int v = 0; v < vocab; v++) {
                double s = 0;
                for (int k = 0; k < hidden; k++) {
                    s += (double) h[i * hidden + k] * w[v * hidden + k];
                }
                out[i * vocab + v] = s;
            }
        }
        return out;
    }

    private static double[] backInput(float[] g, float[] w, int n, int hidden, int vocab) {
        double[] out = new double[n * hidden];
        for (int i = 0; i < n; i++) {
            for (int v = 0; v < vocab; v++) {
                for (int k = 0; k < hidden; k++) {
                    out[i * hidden + k] += (double) g[i * vocab + v] * w[v * hidden + k];
                }
            }
        }
        return out;
    }

    private static double[] backWeight(float[] g, float[] h, int n, int hidden, int vocab) {
        double[] out = new double[vocab * hidden];
        for (int i = 0; i < n; i++) {
            for (int v = 0; v < vocab; v++) {
                for (int k = 0; k < hidden; k++) {
                    out[v * hidden + k] += (double) g[i * vocab + v] * h[i * hidden + k];
                }
            }
        }
        return out;
    }

    private static double[] add(double[] a, double[] b) {
        double[] out = a.clone();
        for (int i = 0; i < out.length; i++) {
            out[i] += b[i];
        }
        return out;
    }

    private static void assertClose(float[] actual, double[] expected, String what) {
        assertThat(actual).as(what).hasSize(expected.length);
        for (int i = 0; i < expected.length; i++) {
            // float32 sums of 3 to 16k products of unit normals (the gradient of h sums 16k)
            double tolerance = 1e-4 * Math.abs(expected[i]) + 1e-3;
            assertThat((double) actual[i])
                    .as("%s [%d]", what, i)
                    .isCloseTo(expected[i], within(tolerance));
        }
    }
}
