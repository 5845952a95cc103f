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
 * RMSNorm and SwiGLU's {@code silu(g) * u}, values and gradients, against their formulas written
 * out here in double precision: {@code y = w x r} with {@code r = (mean(x^2) + eps)^(-1/2)}, so
 * {@code dx_j = r w_j g_j - x_j r^3 / H sum_i g_i w_i x_i} and {@code dw_i = sum over rows of g_i
 * x_i r}; {@code y = g s u} with {@code s = sigmoid(g)}, so {@code dg = u (s + g s (1 - s))} and
 * {@code du = g s}.
 */
class FusedOpsTest {
    private final EngineRuntime runtime = EngineRuntime.start(2);

    @Test
    void rmsNormAndSiluTimesHaveTheirFormulasValuesAndGradients() {
        int rows = 4;
        int h = 6;
        float eps = 1e-5f;
        Random random = new Random(5);
        float[] x = values(random, rows * h, 2);
        float[] w = values(random, h, 1);
        float[] g = values(random, rows * h, 3);
        float[] u = values(random, rows * h, 1);
        float[] upN = values(random, rows * h, 1); // the loss's weights on the norm's output
        float[] upS = values(random, rows * h, 1); // and on silu(g) * u
        try (NDManager m = NDManager.newBaseManager(runtime.device(), EngineRuntime.ENGINE)) {
            Shape s = new Shape(rows, h);
            NDArray xv = m.create(x, s);
            NDArray wv = m.create(w, new Shape(h));
            NDArray gv = m.create(g, s);
            NDArray uv = m.create(u, s);
            for (NDArray a : new NDArray[] {xv, wv, gv, uv}) {
                a.setRequiresGradient(true);
            }
            float[] norm;
            float[] swiglu;
            try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
                NDArray n = FusedOps.rmsNorm(xv, wv, eps);
                NDArray y = FusedOps.siluTimes(gv, uv);
                norm = n.toFloatArray();
                swiglu = y.toFloatArray();
                gc.backward(n.mul(m.create(upN, s)).sum().add(y.mul(m.create(upS, s)).sum()));
            }
            double[] dx = new double[rows * h];
            double[] dw = new double[h];
            for (int r = 0; r < rows; r++) {
                double ms = 0;
                for (int j = 0; j < h; j++) {
                    ms += (double) x[r * h + j] * x[r * h + j] / h;
                }
                double inv = 1 / Math.sqrt(ms + eps);
                double dot = 0;
                for (int i = 0; i < h; i++) {
                    dot += (double) upN[r * h + i] * w[i] * x[r * h + i];
                }
                for (int j = 0; j < h; j++) {
                    int k = r * h + j;
                    assertThat((double) norm[k])
                            .as("norm [%d]", k)
                            .isCloseTo(w[j] * x[k] * inv, within(1e-5));
                    dx[k] = inv * w[j] * upN[k] - x[k] * inv * inv * inv / h * dot;
                    dw[j] += upN[k] * x[k] * inv;
                }
            }
            close(xv.getGradient().toFloatArray(), dx, "gradient of x");
            close(wv.getGradient().toFloatArray(), dw, "gradient of the weight");
            float[] dg = gv.getGradient().toFloatArray();
            float[] du = uv.getGradient().toFloatArray();
            for (int k = 0; k < rows * h; k++) {
                double sig = 1 / (1 + Math.exp(-g[k]));
                assertThat((double) swiglu[k])
                        .as("silu(g) u [%d]", k)
                        .isCloseTo(g[k] * sig * u[k], within(1e-5));
                assertThat((double) dg[k])
                        .as("gradient of g [%d]", k)
                        .isCloseTo(upS[k] * u[k] * (sig + g[k] * sig * (1 - sig)), within(1e-5));
                assertThat((double) du[k])
                        .as("gradient of u [%d]", k)
                        .isCloseTo(upS[k] * g[k] * sig, within(1e-5));
            }
        }
    }

    private static float[] values(Random random, int n, double scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (random.nextGaussian() * scale);
        }
        return v;
    }

    private static void close(float[] actual, double[] expected, String what) {
        for (int i = 0; i < expected.length; i++) {
            assertThat((double) actual[i])
                    .as("%s [%d]", what, i)
                    .isCloseTo(expected[i], within(1e-4 * Math.max(1, Math.abs(expected[i]))));
        }
    }
}
