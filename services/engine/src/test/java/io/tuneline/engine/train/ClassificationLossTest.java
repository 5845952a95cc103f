package io.tuneline.engine.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.data.Offset.offset;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.tuneline.engine.runtime.EngineRuntime;
import java.util.Optional;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Against PyTorch 1.13 (Debian's python3-torch):
 *
 * <pre>
 * logits = torch.tensor([[2.0,0.5,-1.0],[0.1,0.2,0.3],[-0.5,1.5,0.0],[1.0,1.0,1.0]])
 * y = torch.tensor([0,2,1,2]); w = torch.tensor([1.0,2.0,0.5])
 * F.cross_entropy(logits, y, weight=w, label_smoothing=0.1)
 * </pre>
 */
class ClassificationLossTest {
    @BeforeAll
    static void engine() {
        EngineRuntime.start(1);
    }

    private static double loss(ClassificationLoss loss) {
        try (NDManager m = NDManager.newBaseManager()) {
            NDArray logits =
                    m.create(
                            new float[] {
                                2f, 0.5f, -1f, 0.1f, 0.2f, 0.3f, -0.5f, 1.5f, 0f, 1f, 1f, 1f
                            },
                            new Shape(4, 3));
            NDArray labels = m.create(new float[] {0, 2, 1, 2});
            return loss.evaluate(logits, labels).getFloat();
        }
    }

    @Test
    void matchesPyTorchWithAndWithoutSmoothingAndWeights() {
        float[] w = {1f, 2f, 0.5f};
        assertThat(loss(ClassificationLoss.PLAIN)).isCloseTo(0.6620555520057678, offset(1e-6));
        assertThat(loss(new ClassificationLoss(0.1, Optional.empty())))
                .isCloseTo(0.7312222123146057, offset(1e-6));
        assertThat(loss(new ClassificationLoss(0, Optional.of(w))))
                .isCloseTo(0.47607508301734924, offset(1e-6));
        assertThat(loss(new ClassificationLoss(0.1, Optional.of(w))))
                .isCloseTo(0.5694574117660522, offset(1e-6));
    }
}
