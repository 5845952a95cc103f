package io.tuneline.engine.train;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import io.tuneline.engine.runtime.EngineRuntime;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The engine's AdamW against torch.optim.AdamW's update written out in double precision here
 * (PyTorch's {@code _single_tensor_adamw}: decay {@code w *= 1 - lr wd} first, moments, then {@code
 * w -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)}), sharing nothing with {@link AdamW}. Several
 * steps, so bias correction changes from step to step; gradients from 1e-7 to 1 in size, so where
 * eps sits matters; a changing learning rate and one clipped step.
 */
class AdamWTest {
    private static final int N = 96;
    private static final int STEPS = 4;
    private static final float WEIGHT_DECAY = 0.1f;

    @Test
    void stepsEqualTorchAdamWWithDecoupledWeightDecay() {
        compareWithReference(true);
    }

    @Test
    void stepsEqualTorchAdamWWithoutDecayWhereTheParameterIsNotDecayed() {
        compareWithReference(false);
    }

    /**
     * Checkpoints written before the fused kernel (format 1) hold DJL's moments, which took 1 -
     * beta in single precision; restored, they are PyTorch's again, so a run resumed across the
     * upgrade steps as the uninterrupted one would.
     */
    @Test
    void momentsOfAFormat1CheckpointAreRestoredAsPyTorchs() {
        EngineRuntime runtime = EngineRuntime.start(1);
        try (Model model = Model.newInstance("adamw", runtime.device(), EngineRuntime.ENGINE)) {
            AdamW adamW = new AdamW(WEIGHT_DECAY, model.getNDManager());
            float[] m = {0.5f, -2f};
            float[] v = {0.25f, 4f};
            // As DJL's kernel accumulated them: (1 - 0.9f) and (1 - 0.999f) per unit of gradient.
            double firstScale = (1 - (double) 0.9f) / 0.1;
            double secondScale = (1 - (double) 0.999f) / 0.001;
            Map<String, float[]> saved = new LinkedHashMap<>();
            saved.put(
                    "m.w", new float[] {(float) (m[0] * firstScale), (float) (m[1] * firstScale)});
            saved.put(
                    "v.w",
                    new float[] {(float) (v[0] * secondScale), (float) (v[1] * secondScale)});
            adamW.restore(7, saved, Map.of("m.w", new long[] {2}, "v.w", new long[] {2}), 1);
            assertThat(adamW.step()).isEqualTo(7);
            assertThat(adamW.state().get("m.w").toFloatArray())
                    .containsExactly(m, org.assertj.core.api.Assertions.within(1e-6f));
            assertThat(adamW.state().get("v.w").toFloatArray())
                    .containsExactly(v, org.assertj.core.api.Assertions.within(1e-6f));
        }
    }

    private static void compareWithReference(boolean decay) {
        EngineRuntime runtime = EngineRuntime.start(1);
        Random random = new Random(decay ? 11 : 12);
        float[] w0 = new float[N];
        for (int i = 0; i < N; i++) {
            // Away from zero, so a relative tolerance means something for every element.
            w0[i] = (float) ((0.1 + 0.9 * random.nextDouble()) * (random.nextBoolean() ? 1 : -1));
        }
        float[][] grads = new float[STEPS][N];
        for (float[] g : grads) {
            for (int i = 0; i < N; i++) {
                g[i] = (float) (Math.pow(10, -7 * random.nextDouble()) * random.nextGaussian());
            }
        }
        float[] lrs = {0.1f, 0.08f, 0.06f, 0.04f};
        float[] scales = {1f, 1f, 0.25f, 1f};

        double[] w = new double[N];
        double[] m = new double[N];
        double[] v = new double[N];
        // The first moment sums gradients of either sign; its rounding error is bounded by the sum
        // of the terms' sizes, not by the (possibly cancelled) result.
        double[] mSize = new double[N];
        for (int i = 0; i < N; i++) {
            w[i] = w0[i];
        }
        for (int t = 1; t <= STEPS; t++) {
            double lr = lrs[t - 1];
            double bc1 = 1 - Math.pow(0.9, t);
            double bc2 = 1 - Math.pow(0.999, t);
            for (int i = 0; i < N; i++) {
                double g = (double) grads[t - 1][i] * scales[t - 1];
                if (decay) {
                    w[i] *= 1 - lr * WEIGHT_DECAY;
                }
                m[i] = 0.9 * m[i] + 0.1 * g;
                mSize[i] = 0.9 * mSize[i] + 0.1 * Math.abs(g);
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                w[i] -= lr / bc1 * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + 1e-8);
            }
        }

        try (Model model = Model.newInstance("adamw", runtime.device(), EngineRuntime.ENGINE)) {
            NDManager manager = model.getNDManager();
            NDArray weight = manager.create(w0, new Shape(8, 12));
            weight.setRequiresGradient(true);
            AdamW adamW = new AdamW(WEIGHT_DECAY, manager);
            for (int t = 1; t <= STEPS; t++) {
                // The gradient arrives as in training: accumulated by backward into the weight's
                // own gradient, which the update must leave at zero for the next step.
                try (NDManager step = manager.newSubManager();
                        GradientCollector collector = Engine.getInstance().newGradientCollector()) {
                    NDArray g = step.create(grads[t - 1], new Shape(8, 12));
                    collector.backward(weight.mul(g).sum());
                }
                adamW.beginStep();
                adamW.update(Map.of("w", weight), name -> decay, lrs[t - 1], scales[t - 1]);
            }
            assertClose("weight", weight.toFloatArray(), w, w);
            // The kept moments are PyTorch's exp_avg and exp_avg_sq.
            assertClose("first moment", adamW.state().get("m.w").toFloatArray(), m, mSize);
            assertClose("second moment", adamW.state().get("v.w").toFloatArray(), v, v);
            try (NDArray gradient = weight.getGradient()) {
                assertThat(gradient.abs().max().getFloat()).as("gradient after the step").isZero();
            }
        }
    }

    /** Within 1e-6 of {@code size}, relative: {@code |actual - expected| <= 1e-6 |size|}. */
    private static void assertClose(String what, float[] actual, double[] expected, double[] size) {
        assertThat(actual).hasSize(expected.length);
        for (int i = 0; i < expected.length; i++) {
            assertThat(Math.abs(actual[i] - expected[i]))
                    .as("%s %d: %s, reference %s", what, i, actual[i], expected[i])
                    .isLessThanOrEqualTo(1e-6 * Math.abs(size[i]));
        }
    }
}
