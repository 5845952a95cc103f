package io.tuneline.engine.model.gpt2;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.method.Precision;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.Checkpointing;
import io.tuneline.engine.train.LmExample;
import io.tuneline.engine.train.LossScaler;
import io.tuneline.engine.train.ResumeRuns;
import io.tuneline.engine.train.TrainingCheckpoint;
import io.tuneline.engine.train.TrainingListener;
import io.tuneline.engine.train.TrainingOutcome;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.engine.train.TrainingState;
import io.tuneline.engine.train.Validation;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Precision fp16 on the tiny GPT-2 with LoRA on {@code c_attn}: the frozen Conv1D projections held
 * in IEEE float16 and computed in float16 on the CPU (libtorch's half GEMM), LoRA in float32, the
 * loss scaled dynamically. It learns, the half weights never change, an overflowing scale skips its
 * steps without touching a weight and backs off, and a run resumed from a checkpoint continues the
 * uninterrupted one, loss scale included.
 */
class Fp16Gpt2Test {
    private static final long[] PROBE = {1, 2, 3, 4, 5, 6, 20, 22, 24, 40, 41, 40};

    private static EngineRuntime runtime;

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    /** 2 layers: c_attn 32 -> 96, attn.c_proj 32 -> 32, c_fc 32 -> 128, mlp.c_proj 128 -> 32. */
    private static final long FROZEN_LINEAR_FLOAT32_BYTES =
            2L * 4 * (32 * 96 + 32 * 32 + 2 * 32 * 128);

    @Test
    void fp16LoraLearnsKeepsItsHalfBaseComputesInHalfAndResumesExactly(@TempDir Path dir)
            throws Exception {
        Path base = TinyGpt2.write(dir.resolve("base"), TinyGpt2.randomWeights(21), true);
        List<LmExample> data = Gpt2TrainingTest.dataset();
        // A scale that grows every third clean step, so the resumed run must take the scaler's
        // state from the checkpoint to scale as the uninterrupted one.
        TrainingSettings settings =
                new TrainingSettings(6, 4, 2e-2f, 0.0f, 0.1f, 1f, 16, 42)
                        .withLossScaling(new LossScaler.Config(1024f, 2, 0.5, 3));
        List<TrainingListener.StepReport> full = new ArrayList<>();
        try (Model model = load(base)) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            float[] fp32 = logits(model, lm, PROBE);
            ParameterCounts counts = lora(model, lm);
            Precision.Held held = Precision.FP16.apply(lm, true);
            assertThat(held.layers()).isEqualTo(8);
            assertThat(held.float32Bytes()).isEqualTo(FROZEN_LINEAR_FLOAT32_BYTES);
            assertThat(held.heldBytes()).isEqualTo(FROZEN_LINEAR_FLOAT32_BYTES / 2);
            assertThat(ParameterCounts.of(lm)).isEqualTo(counts);
            Map<String, byte[]> frozen = halfBytes(lm);
            long heldBytes = frozen.values().stream().mapToLong(b -> b.length).sum();
            assertThat(heldBytes).isEqualTo(FROZEN_LINEAR_FLOAT32_BYTES / 2);
            lm.namedParameters()
                    .forEach(
                            (name, p) -> {
                                assertThat(p.requiresGradient())
                                        .as(name)
                                        .isEqualTo(name.contains(".lora_"));
                                assertThat(p.getArray().getDataType())
                                        .as(name)
                                        .isEqualTo(DataType.FLOAT32);
                            });
            float[] fp16 = logits(model, lm, PROBE);
            double lossBefore = Gpt2TrainingTest.meanLoss(model, data);
            TrainingOutcome outcome =
                    new CausalLmTrainer()
                            .train(
                                    model,
                                    lm,
                                    data,
                                    settings,
                                    Validation.none(),
                                    full::add,
                                    ResumeRuns.every(dir.resolve("ckpt"), 4));
            double lossAfter = Gpt2TrainingTest.meanLoss(model, data);
            halfBytes(lm).forEach((n, b) -> assertThat(b).as(n).isEqualTo(frozen.get(n)));
            lm.namedParameters()
                    .forEach(
                            (name, p) ->
                                    assertThat(p.getArray().getDataType())
                                            .as(name)
                                            .isEqualTo(DataType.FLOAT32));
            float[] tuned = logits(model, lm, PROBE);
            // The merged export widens the float16 base and folds LoRA in; an fp32 model of it
            // computes what the tuned model computes in half, to float16's rounding of the layers'
            // inputs and outputs: close, and not equal (the matmuls did run in float16).
            Path merged = dir.resolve("merged");
            Gpt2Checkpoint.save(lm, merged);
            double mergeDiff;
            try (Model reloaded = Gpt2Checkpoint.load(merged, runtime.device())) {
                mergeDiff =
                        maxAbsDiff(
                                tuned, logits(reloaded, (Gpt2LmModel) reloaded.getBlock(), PROBE));
            }
            double roundDiff = maxAbsDiff(fp32, fp16);
            System.out.printf(
                    "fp16 LoRA GPT-2 tiny: fp32 vs fp16 base max |logit| diff %.2e; loss %.4f ->"
                            + " %.4f after %d steps (%d skipped); merged fp32 vs tuned fp16 max |logit|"
                            + " diff %.2e%n",
                    roundDiff,
                    lossBefore,
                    lossAfter,
                    outcome.steps(),
                    outcome.skippedSteps(),
                    mergeDiff);
            assertThat(roundDiff).isGreaterThan(0).isLessThan(1e-2);
            assertThat(lossAfter).isLessThan(lossBefore - 0.5);
            assertThat(outcome.steps()).isEqualTo(12);
            assertThat(outcome.skippedSteps()).isZero();
            assertThat(mergeDiff).isGreaterThan(0).isLessThan(1e-2);
        }
        // No step overflowed: the scale grew after step 3 and step 6.
        TrainingState at4 = TrainingCheckpoint.state(dir.resolve("ckpt").resolve("step-00000004"));
        assertThat(at4.lossScale()).isEqualTo(2048f);
        assertThat(at4.lossScaleGrowthTracker()).isEqualTo(1);
        TrainingState at8 = TrainingCheckpoint.state(dir.resolve("ckpt").resolve("step-00000008"));
        assertThat(at8.lossScale()).isEqualTo(4096f);
        assertThat(at8.lossScaleGrowthTracker()).isEqualTo(2);

        List<TrainingListener.StepReport> resumed = new ArrayList<>();
        try (Model model = load(base)) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            lora(model, lm);
            Precision.FP16.apply(lm, true);
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            data,
                            settings,
                            Validation.none(),
                            resumed::add,
                            new Checkpointing(
                                    dir.resolve("ckpt2"),
                                    4,
                                    Optional.of(dir.resolve("ckpt").resolve("step-00000004")),
                                    (d, st) -> {}));
        }
        ResumeRuns.assertContinues(full, resumed, 12, 4);
        assertThat(TrainingCheckpoint.state(dir.resolve("ckpt2").resolve("step-00000008")))
                .isEqualTo(at8);
    }

    @Test
    void onACpuTheFp16WeightsAreWidenedForEachMatmulByDefault(@TempDir Path dir) throws Exception {
        Path base = TinyGpt2.write(dir.resolve("base"), TinyGpt2.randomWeights(23), true);
        try (Model model = load(base)) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            lora(model, lm);
            assertThat(Precision.FP16.apply(lm).layers()).isEqualTo(8);
            for (var e : lm.linears().entrySet()) {
                var held = (Dense.WeightStore.Fp16) e.getValue().base();
                assertThat(held.halfMatmul()).as(e.getKey()).isFalse();
                assertThat(held.weight().getDataType()).isEqualTo(DataType.FLOAT16);
            }
            // Widened, the float16 weights compute what an fp32 model of their values computes.
            float[] widened = logits(model, lm, PROBE);
            Path merged = dir.resolve("merged");
            Gpt2Checkpoint.save(lm, merged);
            try (Model reloaded = Gpt2Checkpoint.load(merged, runtime.device())) {
                assertThat(
                                maxAbsDiff(
                                        widened,
                                        logits(reloaded, (Gpt2LmModel) reloaded.getBlock(), PROBE)))
                        .isLessThan(1e-5);
            }
        }
    }

    @Test
    void anOverflowingScaleSkipsItsStepsLeavingEveryWeightAndBacksOff(@TempDir Path dir)
            throws Exception {
        Path base = TinyGpt2.write(dir.resolve("base"), TinyGpt2.randomWeights(22), true);
        List<LmExample> data = Gpt2TrainingTest.dataset();
        try (Model model = load(base)) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            lora(model, lm);
            Precision.FP16.apply(lm, true);
            Map<String, float[]> before = trainable(lm);
            Map<String, byte[]> frozen = halfBytes(lm);
            // A loss times 2^100 is finite in float32, but its gradient overflows float16 where
            // it passes back through the half matmuls: every step of the run (four, halving the
            // scale down to 2^97) is skipped, and an overflow at a scale above 1 is no divergence.
            TrainingOutcome outcome =
                    new CausalLmTrainer()
                            .train(
                                    model,
                                    lm,
                                    data,
                                    new TrainingSettings(2, 4, 2e-2f, 0.0f, 0.1f, 1f, 16, 42)
                                            .withLossScaling(
                                                    new LossScaler.Config(0x1p100f, 2, 0.5, 2000)),
                                    r -> {});
            assertThat(outcome.steps()).isZero();
            assertThat(outcome.skippedSteps()).isEqualTo(4);
            Map<String, float[]> after = trainable(lm);
            before.forEach((n, v) -> assertThat(after.get(n)).as(n).isEqualTo(v));
            halfBytes(lm).forEach((n, b) -> assertThat(b).as(n).isEqualTo(frozen.get(n)));
        }
        try (Model model = load(base)) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            lora(model, lm);
            Precision.FP16.apply(lm, true);
            // 2^40 overflows too; its backoff to 2^10 does not: the first step is skipped, the
            // other three train, and the checkpoint after the first applied step holds the scale
            // it backed off to and one clean step.
            List<TrainingListener.StepReport> steps = new ArrayList<>();
            TrainingOutcome outcome =
                    new CausalLmTrainer()
                            .train(
                                    model,
                                    lm,
                                    data,
                                    new TrainingSettings(2, 4, 2e-2f, 0.0f, 0.1f, 1f, 16, 42)
                                            .withLossScaling(
                                                    new LossScaler.Config(
                                                            0x1p40f, 2, 0x1p-30, 2000)),
                                    Validation.none(),
                                    steps::add,
                                    ResumeRuns.every(dir.resolve("ckpt"), 1));
            assertThat(outcome.skippedSteps()).isEqualTo(1);
            assertThat(outcome.steps()).isEqualTo(3);
            assertThat(steps).allMatch(r -> Double.isFinite(r.loss()));
            TrainingState at1 =
                    TrainingCheckpoint.state(dir.resolve("ckpt").resolve("step-00000001"));
            assertThat(at1.lossScale()).isEqualTo(1024f);
            assertThat(at1.lossScaleGrowthTracker()).isEqualTo(1);
            assertThat(at1.skippedSteps()).isEqualTo(1);
            assertThat(at1.nextBatch()).isEqualTo(0);
            assertThat(at1.epoch()).isEqualTo(1);
        }
    }

    private static Model load(Path base) throws Exception {
        return Gpt2Checkpoint.load(base, runtime.device(), Gpt2Config::withoutDropout);
    }

    private static ParameterCounts lora(Model model, Gpt2LmModel lm) {
        ai.djl.engine.Engine.getInstance().setRandomSeed(5);
        return new FineTuningMethod.Lora(4, 8f, 0f, List.of("c_attn"))
                .apply(lm, model.getNDManager());
    }

    private static Map<String, byte[]> halfBytes(Gpt2LmModel lm) {
        Map<String, byte[]> out = new LinkedHashMap<>();
        for (var e : lm.linears().entrySet()) {
            var w = ((Dense.WeightStore.Fp16) e.getValue().base()).weight();
            assertThat(w.getDataType()).as(e.getKey()).isEqualTo(DataType.FLOAT16);
            out.put(e.getKey(), w.toByteArray());
        }
        return out;
    }

    private static Map<String, float[]> trainable(Gpt2LmModel lm) {
        Map<String, float[]> out = new LinkedHashMap<>();
        lm.namedParameters()
                .forEach(
                        (n, p) -> {
                            if (p.requiresGradient()) {
                                out.put(n, p.getArray().toFloatArray());
                            }
                        });
        return out;
    }

    private static float[] logits(Model model, Gpt2LmModel lm, long[] ids) {
        try (NDManager m = model.getNDManager().newSubManager()) {
            return lm.forward(
                            new ParameterStore(m, false),
                            new NDList(m.create(ids, new Shape(1, ids.length))),
                            false)
                    .singletonOrThrow()
                    .toFloatArray();
        }
    }

    private static double maxAbsDiff(float[] a, float[] b) {
        double max = 0;
        for (int i = 0; i < a.length; i++) {
            max = Math.max(max, Math.abs(a[i] - b[i]));
        }
        return max;
    }
}
