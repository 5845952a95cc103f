package io.tuneline.engine.model.gpt2;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.LmExample;
import io.tuneline.engine.train.ResumeRuns;
import io.tuneline.engine.train.TrainingListener;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.engine.train.Validation;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * QLoRA on GPT-2 (the decoder family) through the same method as on BERT, no family code: every
 * Conv1D projection in NF4, LoRA on {@code c_attn}; it learns, the base bytes stay, and the merged
 * Hugging Face checkpoint reproduces the QLoRA model's logits.
 */
class QloraGpt2Test {

    @Test
    void qloraOnGpt2LearnsKeepsItsNf4BaseAndMergesToTheSameLogits(@TempDir Path dir)
            throws Exception {
        EngineRuntime runtime = EngineRuntime.start(2);
        Path base = TinyGpt2.write(dir.resolve("base"), TinyGpt2.randomWeights(21), true);
        long[] probe = {1, 2, 3, 4, 5, 6, 20, 22, 24, 40, 41, 40};
        List<LmExample> data = Gpt2TrainingTest.dataset();
        try (Model model =
                Gpt2Checkpoint.load(base, runtime.device(), Gpt2Config::withoutDropout)) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            float[] fp32 = logits(model, lm, probe);
            double lossFp32 = Gpt2TrainingTest.meanLoss(model, data);

            FineTuningMethod.Qlora qlora =
                    new FineTuningMethod.Qlora(
                            new FineTuningMethod.Lora(4, 8f, 0f, List.of("c_attn")), 64, true);
            ParameterCounts counts = qlora.apply(lm, model.getNDManager());
            Map<String, byte[]> packed = new LinkedHashMap<>();
            for (var e : lm.linears().entrySet()) {
                assertThat(e.getValue().base()).isInstanceOf(Dense.WeightStore.Nf4.class);
                packed.put(
                        e.getKey(),
                        ((Dense.WeightStore.Nf4) e.getValue().base()).weight().packed().clone());
            }
            assertThat(packed).hasSize(2 * 4);
            // LoRA r 4 on c_attn (32 -> 96) of 2 layers; the total counts the NF4 weights too.
            assertThat(counts.trainable()).isEqualTo(2 * 4 * (32 + 96));
            assertThat(counts.total()).isEqualTo(1600 + 512 + 2 * 12_704 + 64 + counts.trainable());
            lm.namedParameters()
                    .forEach(
                            (name, p) ->
                                    assertThat(p.requiresGradient())
                                            .as(name)
                                            .isEqualTo(name.contains(".lora_")));

            float[] nf4 = logits(model, lm, probe);
            double lossNf4 = Gpt2TrainingTest.meanLoss(model, data);
            double quantDiff = maxAbsDiff(fp32, nf4);

            List<TrainingListener.StepReport> steps = new ArrayList<>();
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            data,
                            new TrainingSettings(8, 4, 2e-2f, 0.0f, 0.1f, 1f, 16, 42),
                            steps::add);
            double lossAfter = Gpt2TrainingTest.meanLoss(model, data);
            assertThat(lossAfter).isLessThan(lossNf4 - 0.5);
            for (var e : lm.linears().entrySet()) {
                assertThat(((Dense.WeightStore.Nf4) e.getValue().base()).weight().packed())
                        .as(e.getKey())
                        .isEqualTo(packed.get(e.getKey()));
            }

            float[] trained = logits(model, lm, probe);
            Path merged = dir.resolve("merged");
            Gpt2Checkpoint.save(lm, merged);
            double mergeDiff;
            try (Model reloaded = Gpt2Checkpoint.load(merged, runtime.device())) {
                mergeDiff =
                        maxAbsDiff(
                                trained,
                                logits(reloaded, (Gpt2LmModel) reloaded.getBlock(), probe));
            }
            System.out.printf(
                    "QLoRA GPT-2 tiny: trainable %d of %d; original vs NF4 base: max |logit| diff %.4f"
                            + " (max |logit| %.2f), loss %.4f vs %.4f; after %d steps loss %.4f;"
                            + " merged vs QLoRA max |logit| diff %.2e%n",
                    counts.trainable(),
                    counts.total(),
                    quantDiff,
                    maxAbs(fp32),
                    lossFp32,
                    lossNf4,
                    steps.size(),
                    lossAfter,
                    mergeDiff);
            assertThat(mergeDiff).isLessThan(1e-4);
            assertThat(quantDiff).isGreaterThan(0).isLessThan(0.5 * maxAbs(fp32));
        }
    }

    /**
     * Exact resume: the checkpoint holds LoRA's matrices and AdamW's moments only; the NF4 base is
     * quantized again from the base checkpoint when the run restarts, which gives the same bytes
     * (quantization is a pure function of the weights), so the resumed steps equal the
     * uninterrupted run's. LoRA dropout is on, so its masks must be replayed too.
     */
    @Test
    void aResumedQloraRunRequantizesTheSameBaseAndContinuesTheUninterruptedOne(@TempDir Path dir)
            throws Exception {
        EngineRuntime runtime = EngineRuntime.start(2);
        Path base = TinyGpt2.write(dir.resolve("base"), TinyGpt2.randomWeights(23), true);
        TrainingSettings settings = new TrainingSettings(3, 4, 1e-2f, 0.01f, 0.1f, 1f, 16, 42);
        FineTuningMethod.Qlora qlora =
                new FineTuningMethod.Qlora(
                        new FineTuningMethod.Lora(4, 8f, 0.1f, List.of("c_attn")));
        List<TrainingListener.StepReport> full = new ArrayList<>();
        Map<String, byte[]> packed = new LinkedHashMap<>();
        try (Model model =
                Gpt2Checkpoint.load(base, runtime.device(), Gpt2Config::withoutDropout)) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            ai.djl.engine.Engine.getInstance().setRandomSeed(3);
            qlora.apply(lm, model.getNDManager());
            lm.linears()
                    .forEach(
                            (n, d) ->
                                    packed.put(
                                            n,
                                            ((Dense.WeightStore.Nf4) d.base()).weight().packed()));
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            Gpt2TrainingTest.dataset(),
                            settings,
                            Validation.none(),
                            full::add,
                            ResumeRuns.every(dir.resolve("ckpt"), 2));
        }
        List<TrainingListener.StepReport> resumed = new ArrayList<>();
        try (Model model =
                Gpt2Checkpoint.load(base, runtime.device(), Gpt2Config::withoutDropout)) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            ai.djl.engine.Engine.getInstance().setRandomSeed(99);
            qlora.apply(lm, model.getNDManager());
            lm.linears()
                    .forEach(
                            (n, d) ->
                                    assertThat(((Dense.WeightStore.Nf4) d.base()).weight().packed())
                                            .as(n)
                                            .isEqualTo(packed.get(n)));
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            Gpt2TrainingTest.dataset(),
                            settings,
                            Validation.none(),
                            resumed::add,
                            ResumeRuns.resumeFrom(dir.resolve("ckpt"), 4, dir.resolve("ckpt2")));
        }
        ResumeRuns.assertContinues(full, resumed, 6, 4);
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

    private static double maxAbs(float[] a) {
        double max = 0;
        for (float v : a) {
            max = Math.max(max, Math.abs(v));
        }
        return max;
    }
}
