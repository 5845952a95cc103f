package io.tuneline.engine.train;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.runtime.EngineRuntime;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The shared loop's handling of a step whose loss is not a number. */
class TrainingLoopTest {
    /**
     * One NaN batch in the middle of a run is not applied (the weights stay numbers, its gradients
     * do not leak into the next step) and the run takes its other steps; only several in a row
     * count as divergence (tested with GPT-2 in {@code Gpt2TrainingTest}).
     */
    @Test
    void aSingleNonFiniteStepIsSkippedAndTheRunGoesOn() throws Exception {
        EngineRuntime runtime = EngineRuntime.start(1);
        try (Model model = Model.newInstance("loop", runtime.device(), EngineRuntime.ENGINE)) {
            Dense dense = new Dense(2, 1);
            dense.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(1, 2));
            model.setBlock(dense);
            int[] calls = {0};
            TrainingLoop.Task<Integer> task = task(dense, calls, 3);
            List<TrainingListener.StepReport> reports = new ArrayList<>();
            TrainingOutcome outcome =
                    TrainingLoop.run(
                            model,
                            task,
                            List.of(0, 1, 2, 3, 4, 5),
                            new TrainingSettings(1, 1, 0.05f, 0f, 0f, 1f, 8, 1),
                            Validation.none(),
                            reports::add,
                            Checkpointing.none());

            assertThat(calls[0]).isEqualTo(6);
            assertThat(outcome.steps()).isEqualTo(5);
            assertThat(outcome.skippedSteps()).isEqualTo(1);
            assertThat(reports).hasSize(5).allMatch(r -> Double.isFinite(r.loss()));
            // The skipped step's NaN gradients reached neither the weights nor the next step.
            for (float w : dense.weight().getArray().toFloatArray()) {
                assertThat(Float.isFinite(w)).isTrue();
            }
            assertThat(reports.get(4).loss()).isLessThan(reports.get(0).loss());
        }
    }

    /**
     * {@code max_steps} ends a run of 3 epochs of 6 steps after 4 steps, with the learning-rate
     * schedule over those 4 (linear decay to 0 at the last, as Hugging Face's Trainer), and no
     * batch is read past the limit.
     */
    @Test
    void maxStepsEndsTheRunWithTheScheduleOverItsSteps() throws Exception {
        EngineRuntime runtime = EngineRuntime.start(1);
        try (Model model = Model.newInstance("loop", runtime.device(), EngineRuntime.ENGINE)) {
            Dense dense = new Dense(2, 1);
            dense.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(1, 2));
            model.setBlock(dense);
            int[] calls = {0};
            List<TrainingListener.StepReport> reports = new ArrayList<>();
            TrainingOutcome outcome =
                    TrainingLoop.run(
                            model,
                            task(dense, calls, -1),
                            List.of(0, 1, 2, 3, 4, 5),
                            new TrainingSettings(
                                    3,
                                    1,
                                    0.04f,
                                    0f,
                                    0f,
                                    1f,
                                    8,
                                    1,
                                    LearningRateSchedule.Shape.LINEAR,
                                    1,
                                    4),
                            Validation.none(),
                            reports::add,
                            Checkpointing.none());

            assertThat(calls[0]).isEqualTo(4);
            assertThat(outcome.steps()).isEqualTo(4);
            assertThat(reports)
                    .extracting(TrainingListener.StepReport::totalSteps)
                    .containsOnly(4L);
            // Linear decay without warm-up over 4 steps: 0.04 * (1 - k / 4) after step k.
            assertThat(reports).hasSize(4);
            for (int k = 1; k <= 4; k++) {
                assertThat(reports.get(k - 1).learningRate())
                        .as("learning rate after step %d", k)
                        .isCloseTo(0.04 * (1 - k / 4.0), org.assertj.core.data.Offset.offset(1e-8));
            }
            double mean =
                    reports.stream()
                            .mapToDouble(TrainingListener.StepReport::loss)
                            .average()
                            .orElseThrow();
            assertThat(outcome.finalLoss())
                    .isCloseTo(mean, org.assertj.core.data.Offset.offset(1e-9));
        }
    }

    /**
     * Loss scaling is transparent where nothing overflows: a float32 run scaled by 2^16 (a power of
     * two, so every product is exact) ends with the very weights of the unscaled run, clipping
     * included (the clipped norm is the true one).
     */
    @Test
    void aScaledRunWithoutOverflowsEqualsTheUnscaledOneBitForBit() throws Exception {
        EngineRuntime runtime = EngineRuntime.start(1);
        float[][] weights = new float[2][];
        for (int run = 0; run < 2; run++) {
            try (Model model = Model.newInstance("loop", runtime.device(), EngineRuntime.ENGINE)) {
                Dense dense = new Dense(2, 1);
                ai.djl.engine.Engine.getInstance().setRandomSeed(3);
                dense.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(1, 2));
                model.setBlock(dense);
                // max_grad_norm 0.5: the first steps' gradients are clipped.
                TrainingSettings settings = new TrainingSettings(1, 1, 0.05f, 0f, 0f, 0.5f, 8, 1);
                TrainingOutcome outcome =
                        TrainingLoop.run(
                                model,
                                task(dense, new int[] {0}, -1),
                                List.of(0, 1, 2, 3, 4, 5),
                                run == 0
                                        ? settings
                                        : settings.withLossScaling(
                                                LossScaler.Config.TORCH_DEFAULTS),
                                Validation.none(),
                                r -> {},
                                Checkpointing.none());
                assertThat(outcome.skippedSteps()).isZero();
                weights[run] = dense.weight().getArray().toFloatArray();
            }
        }
        assertThat(weights[1]).isEqualTo(weights[0]);
    }

    /**
     * Gradients that overflow above a scale of 4 (as float16 would above some scale): the scaler
     * backs off from 64 over four skipped steps (more than {@link
     * TrainingLoop#MAX_NON_FINITE_STEPS} in a row, no divergence at a scale above 1), trains at 4,
     * grows to 8 after three clean steps, overflows and backs off again.
     */
    @Test
    void overflowsAboveAScaleAreSkippedAndTheScaleSettlesBelowIt() throws Exception {
        EngineRuntime runtime = EngineRuntime.start(1);
        try (Model model = Model.newInstance("loop", runtime.device(), EngineRuntime.ENGINE)) {
            Dense dense = new Dense(2, 1);
            dense.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(1, 2));
            model.setBlock(dense);
            List<Float> scales = new ArrayList<>();
            List<TrainingListener.StepReport> reports = new ArrayList<>();
            TrainingOutcome outcome =
                    TrainingLoop.run(
                            model,
                            overflowing(dense, scale -> scale > 4, scales),
                            List.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11),
                            new TrainingSettings(1, 1, 0.05f, 0f, 0f, 1f, 8, 1)
                                    .withLossScaling(new LossScaler.Config(64f, 2, 0.5, 3)),
                            Validation.none(),
                            reports::add,
                            Checkpointing.none());
            assertThat(scales).containsExactly(64f, 32f, 16f, 8f, 4f, 4f, 4f, 8f, 4f, 4f, 4f, 8f);
            assertThat(outcome.skippedSteps()).isEqualTo(6);
            assertThat(outcome.steps()).isEqualTo(6);
            assertThat(reports).hasSize(6).allMatch(r -> Double.isFinite(r.loss()));
            for (float w : dense.weight().getArray().toFloatArray()) {
                assertThat(Float.isFinite(w)).isTrue();
            }
        }
    }

    /**
     * Gradients that overflow at every scale: the steps skipped above a scale of 1 do not count,
     * the three from 1 down do, and the run is declared diverged at the fifth batch.
     */
    @Test
    void overflowsThatTheScaleCannotCureEndTheRunAsDiverged() throws Exception {
        EngineRuntime runtime = EngineRuntime.start(1);
        try (Model model = Model.newInstance("loop", runtime.device(), EngineRuntime.ENGINE)) {
            Dense dense = new Dense(2, 1);
            dense.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(1, 2));
            model.setBlock(dense);
            List<Float> scales = new ArrayList<>();
            org.assertj.core.api.Assertions.assertThatThrownBy(
                            () ->
                                    TrainingLoop.run(
                                            model,
                                            overflowing(dense, scale -> true, scales),
                                            List.of(0, 1, 2, 3, 4, 5, 6, 7),
                                            new TrainingSettings(1, 1, 0.05f, 0f, 0f, 1f, 8, 1)
                                                    .withLossScaling(
                                                            new LossScaler.Config(
                                                                    2f, 2, 0.5, 2000)),
                                            Validation.none(),
                                            r -> {},
                                            Checkpointing.none()))
                    .isInstanceOf(TrainingDivergedException.class);
            assertThat(scales).containsExactly(2f, 1f, 0.5f, 0.25f);
        }
    }

    /**
     * Data parallelism over two replicas takes the steps one device takes on the whole batch: each
     * share's mean loss weighted by its size (batches of 5 split 3 + 2), the gradients summed onto
     * replica 0 before clipping (clipped here: the norm is the whole batch's) and its weights
     * copied back after each step. Replica 1 starts from other weights, overwritten before the
     * first step. Both replicas live on this machine's one device; on GPUs the same calls move the
     * tensors between devices.
     */
    @Test
    void twoReplicasTakeTheStepsOfOneDeviceOnTheWholeBatch() throws Exception {
        EngineRuntime runtime = EngineRuntime.start(1);
        List<Integer> examples = List.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
        // Weight decay on, clipping at 0.5, two epochs of two steps.
        TrainingSettings settings = new TrainingSettings(2, 5, 0.05f, 0.01f, 0f, 0.5f, 8, 1);
        float[] single;
        try (Model model = Model.newInstance("single", runtime.device(), EngineRuntime.ENGINE)) {
            Dense dense = seeded(model, 3);
            List<TrainingListener.StepReport> reports = new ArrayList<>();
            TrainingLoop.run(
                    model,
                    meanTask(dense),
                    examples,
                    settings,
                    Validation.none(),
                    reports::add,
                    Checkpointing.none());
            single = weightsOf(dense);
            assertThat(reports).hasSize(4);
        }
        try (Model model = Model.newInstance("replica0", runtime.device(), EngineRuntime.ENGINE);
                Model other =
                        Model.newInstance("replica1", runtime.device(), EngineRuntime.ENGINE)) {
            Dense dense = seeded(model, 3);
            Dense copy = seeded(other, 4);
            assertThat(weightsOf(copy)).isNotEqualTo(weightsOf(dense));
            List<TrainingListener.StepReport> reports = new ArrayList<>();
            TrainingOutcome outcome =
                    TrainingLoop.run(
                            model,
                            meanTask(dense),
                            List.of(meanTask(copy)),
                            examples,
                            settings,
                            Validation.none(),
                            reports::add,
                            Checkpointing.none());
            assertThat(outcome.steps()).isEqualTo(4);
            float[] parallel = weightsOf(dense);
            for (int i = 0; i < single.length; i++) {
                assertThat(parallel[i])
                        .as("weight %d", i)
                        .isCloseTo(single[i], org.assertj.core.data.Offset.offset(1e-6f));
            }
            assertThat(weightsOf(copy)).containsExactly(parallel);
        }
    }

    private static Dense seeded(Model model, int seed) {
        Dense dense = new Dense(2, 1);
        ai.djl.engine.Engine.getInstance().setRandomSeed(seed);
        dense.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(1, 2));
        model.setBlock(dense);
        return dense;
    }

    private static float[] weightsOf(Dense dense) {
        float[] w = dense.weight().getArray().toFloatArray();
        float[] out = java.util.Arrays.copyOf(w, w.length + 1);
        out[w.length] = dense.bias().getArray().toFloatArray()[0];
        return out;
    }

    /**
     * A task whose loss is the mean over its batch of {@code (w . x_i + b - y_i)^2}, with {@code
     * x_i = (i / 10, 1 - i / 10)} and {@code y_i = 2 i / 10 - 1}: each example pulls differently,
     * so how shares are weighted shows in the weights.
     */
    private static TrainingLoop.Task<Integer> meanTask(Dense dense) {
        return new TrainingLoop.Task<>() {
            @Override
            public Block block() {
                return dense;
            }

            @Override
            public Map<String, Parameter> namedParameters() {
                Map<String, Parameter> p = new LinkedHashMap<>();
                p.put("weight", dense.weight());
                p.put("bias", dense.bias());
                return p;
            }

            @Override
            public TrainingLoop.BatchLoss loss(NDManager m, List<Integer> batch) {
                float[] x = new float[batch.size() * 2];
                float[] y = new float[batch.size()];
                for (int j = 0; j < batch.size(); j++) {
                    x[2 * j] = batch.get(j) / 10f;
                    x[2 * j + 1] = 1 - batch.get(j) / 10f;
                    y[j] = 2 * batch.get(j) / 10f - 1;
                }
                NDArray out =
                        dense.forward(
                                        new ParameterStore(m, false),
                                        new NDList(m.create(x, new Shape(batch.size(), 2))),
                                        true)
                                .singletonOrThrow()
                                .reshape(batch.size());
                NDArray loss = out.sub(m.create(y)).square().mean();
                return new TrainingLoop.BatchLoss(loss, batch.size());
            }

            @Override
            public double validationLoss(List<Integer> examples) {
                return 0;
            }
        };
    }

    /**
     * {@link #task}'s training, whose gradients come out infinite (the loss itself finite) when
     * {@code overflowsAt} says so of the loss scale the loop asks for; records each batch's scale.
     */
    private static TrainingLoop.Task<Integer> overflowing(
            Dense dense, java.util.function.DoublePredicate overflowsAt, List<Float> scales) {
        TrainingLoop.Task<Integer> plain = task(dense, new int[] {0}, -1);
        return new TrainingLoop.Task<>() {
            @Override
            public Block block() {
                return plain.block();
            }

            @Override
            public Map<String, Parameter> namedParameters() {
                return plain.namedParameters();
            }

            @Override
            public TrainingLoop.BatchLoss loss(NDManager m, List<Integer> batch) {
                return plain.loss(m, batch);
            }

            @Override
            public TrainingLoop.BatchLoss lossAndBackward(
                    NDManager m,
                    List<Integer> batch,
                    ai.djl.training.GradientCollector collector,
                    double lossDivisor) {
                TrainingLoop.BatchLoss l = loss(m, batch);
                // One batch per step: the divisor is 1 / scale.
                float scale = (float) (1 / lossDivisor);
                scales.add(scale);
                NDArray scaled = io.tuneline.engine.nn.Scalars.div(l.loss(), lossDivisor);
                collector.backward(
                        overflowsAt.test(scale)
                                ? io.tuneline.engine.nn.Scalars.mul(scaled, Float.POSITIVE_INFINITY)
                                : scaled);
                return l;
            }

            @Override
            public double validationLoss(List<Integer> examples) {
                return 0;
            }
        };
    }

    /** A task training {@code dense} towards 3 on one input; call {@code nanAt} gives NaN. */
    private static TrainingLoop.Task<Integer> task(Dense dense, int[] calls, int nanAt) {
        return new TrainingLoop.Task<>() {
            @Override
            public Block block() {
                return dense;
            }

            @Override
            public Map<String, Parameter> namedParameters() {
                Map<String, Parameter> p = new LinkedHashMap<>();
                p.put("weight", dense.weight());
                p.put("bias", dense.bias());
                return p;
            }

            @Override
            public TrainingLoop.BatchLoss loss(NDManager m, List<Integer> batch) {
                NDArray x = m.create(new float[] {1f, 2f}, new Shape(1, 2));
                NDArray y =
                        dense.forward(new ParameterStore(m, false), new NDList(x), true)
                                .singletonOrThrow();
                NDArray loss = y.sub(3f).square().sum();
                // Call nanAt goes wrong once, as a diverging step would.
                return new TrainingLoop.BatchLoss(
                        ++calls[0] == nanAt ? loss.mul(Float.NaN) : loss, 1);
            }

            @Override
            public double validationLoss(List<Integer> examples) {
                return 0;
            }
        };
    }
}
