package io.tuneline.engine.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.runtime.EngineRuntime;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Global-norm clipping as {@code torch.nn.utils.clip_grad_norm_}: the norm over every trained
 * gradient together, and the factor {@code max_norm / (norm + 1e-6)} only when the norm exceeds
 * {@code max_norm}.
 */
class GradientClippingTest {

    @Test
    void theNormSpansEveryTrainedGradientAndTheFactorFollowsClipGradNorm() {
        EngineRuntime runtime = EngineRuntime.start(1);
        try (Model model = Model.newInstance("clip", runtime.device(), EngineRuntime.ENGINE)) {
            NDManager manager = model.getNDManager();
            Dense dense = new Dense(2, 1);
            dense.initialize(manager, DataType.FLOAT32, new Shape(1, 2));
            NDArray w = dense.weight().getArray();
            NDArray b = dense.bias().getArray();
            w.setRequiresGradient(true);
            b.setRequiresGradient(true);
            // Gradients (3, 4) for the weight and 12 for the bias: norm sqrt(9 + 16 + 144) = 13.
            try (NDManager step = manager.newSubManager();
                    GradientCollector collector = Engine.getInstance().newGradientCollector()) {
                NDArray loss =
                        w.mul(step.create(new float[] {3f, 4f}, new Shape(1, 2)))
                                .sum()
                                .add(b.mul(step.create(new float[] {12f})).sum());
                collector.backward(loss);
            }

            double norm = TrainingLoop.gradientNorm(List.of(dense.weight(), dense.bias()), 1f);
            assertThat(norm).isCloseTo(13.0, within(1e-5));
            assertThat(TrainingLoop.gradientNorm(List.of(dense.weight()), 1f))
                    .isCloseTo(5.0, within(1e-5));
            assertThat(TrainingLoop.gradientNorm(List.of(dense.weight()), 0f))
                    .as("clipping off")
                    .isEqualTo(-1);

            assertThat(TrainingLoop.clipScale(norm, 1f))
                    .isCloseTo((float) (1 / (13 + 1e-6)), within(1e-7f));
            assertThat(TrainingLoop.clipScale(norm, 20f)).as("norm below max").isEqualTo(1f);
            assertThat(TrainingLoop.clipScale(-1, 0f)).as("clipping off").isEqualTo(1f);
            try (NDArray g = w.getGradient()) {
                assertThat(g.toFloatArray())
                        .as("the gradients themselves are not scaled")
                        .containsExactly(3f, 4f);
            }
        }
    }
}
