package io.tuneline.engine.nn;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import io.tuneline.engine.runtime.EngineRuntime;
import org.junit.jupiter.api.Test;

/**
 * The engine's dropout is inverted dropout as {@code torch.nn.functional.dropout} defines it: each
 * element kept with probability 1 - p and then scaled by 1 / (1 - p), zero otherwise; the gradient
 * is the same mask; the seeded generator gives the same mask again; inference is the identity.
 */
class TrainingDropoutTest {
    private final EngineRuntime runtime = EngineRuntime.start(2);

    @Test
    void keepsOneMinusPScaledAndPassesTheGradientThroughTheSameMask() {
        float p = 0.1f;
        int n = 200_000;
        try (NDManager m = NDManager.newBaseManager(runtime.device(), EngineRuntime.ENGINE)) {
            float[] in = new float[n];
            for (int i = 0; i < n; i++) {
                in[i] = 1 + (i % 97) / 10f;
            }
            NDArray x = m.create(in, new Shape(n / 400, 400));
            x.setRequiresGradient(true);
            float[] y;
            try (GradientCollector gc = Engine.getInstance().newGradientCollector()) {
                Engine.getInstance().setRandomSeed(7);
                NDArray out = TrainingDropout.apply(x, p, true);
                y = out.toFloatArray();
                gc.backward(out.sum());
            }
            float[] grad = x.getGradient().toFloatArray();
            float scale = 1 / (1 - p);
            int kept = 0;
            for (int i = 0; i < n; i++) {
                if (y[i] == 0) {
                    assertThat(grad[i]).as("gradient of dropped element %d", i).isZero();
                } else {
                    kept++;
                    assertThat(y[i])
                            .as("kept element %d", i)
                            .isCloseTo(in[i] * scale, within(1e-5f));
                    assertThat(grad[i]).as("gradient of kept element %d", i).isEqualTo(scale);
                }
            }
            // Binomial(n, 0.9): standard deviation sqrt(n p (1 - p)) = 134; 5 of them.
            assertThat((double) kept).isCloseTo(0.9 * n, within(670.0));

            Engine.getInstance().setRandomSeed(7);
            assertThat(TrainingDropout.apply(x, p, true).toFloatArray()).containsExactly(y);
            Engine.getInstance().setRandomSeed(8);
            assertThat(TrainingDropout.apply(x, p, true).toFloatArray()).isNotEqualTo(y);
            assertThat(TrainingDropout.apply(x, p, false)).isSameAs(x);
            assertThat(TrainingDropout.apply(x, 0f, true)).isSameAs(x);
        }
    }
}
