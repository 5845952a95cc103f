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
import io.tuneline.engine.train.LmExample;
import io.tuneline.engine.train.TrainingListener;
import io.tuneline.engine.train.TrainingSettings;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Precision bf16 on GPT-2 through the same seam as on Llama: its four Conv1D projections per layer
 * held as bf16 values, LoRA on {@code c_attn} in float32; it learns, the held bytes stay, and the
 * merged export (which widens the bf16 base and folds LoRA in) reproduces the tuned logits.
 */
class Bf16Gpt2Test {

    @Test
    void bf16LoraOnGpt2LearnsKeepsItsBf16BaseAndMerges(@TempDir Path dir) throws Exception {
        EngineRuntime runtime = EngineRuntime.start(2);
        Path base = TinyGpt2.write(dir.resolve("base"), TinyGpt2.randomWeights(21), true);
        long[] probe = {1, 2, 3, 4, 5, 6, 20, 22, 24, 40, 41, 40};
        List<LmExample> data = Gpt2TrainingTest.dataset();
        try (Model model =
                Gpt2Checkpoint.load(base, runtime.device(), Gpt2Config::withoutDropout)) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            float[] fp32 = logits(model, lm, probe);
            ParameterCounts counts =
                    new FineTuningMethod.Lora(4, 8f, 0f, List.of("c_attn"))
                            .apply(lm, model.getNDManager());
            Precision.Held held = Precision.BF16.apply(lm);
            // 2 layers: c_attn 32 -> 96, attn.c_proj 32 -> 32, c_fc 32 -> 128, mlp.c_proj 128 ->
            // 32.
            assertThat(held.layers()).isEqualTo(8);
            assertThat(held.float32Bytes()).isEqualTo(2L * 4 * (32 * 96 + 32 * 32 + 2 * 32 * 128));
            assertThat(ParameterCounts.of(lm)).isEqualTo(counts);
            Map<String, byte[]> frozen = new LinkedHashMap<>();
            for (var e : lm.linears().entrySet()) {
                var w = ((Dense.WeightStore.Bf16) e.getValue().base()).weight();
                assertThat(w.getDataType().getNumOfBytes()).isEqualTo(2);
                frozen.put(e.getKey(), w.toByteArray());
            }
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
            float[] bf16 = logits(model, lm, probe);
            double lossBefore = Gpt2TrainingTest.meanLoss(model, data);
            List<TrainingListener.StepReport> steps = new ArrayList<>();
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            data,
                            new TrainingSettings(8, 4, 2e-2f, 0.0f, 0.1f, 1f, 16, 42),
                            steps::add);
            double lossAfter = Gpt2TrainingTest.meanLoss(model, data);
            for (var e : lm.linears().entrySet()) {
                assertThat(((Dense.WeightStore.Bf16) e.getValue().base()).weight().toByteArray())
                        .as(e.getKey())
                        .isEqualTo(frozen.get(e.getKey()));
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
            double roundDiff = maxAbsDiff(fp32, bf16);
            System.out.printf(
                    "bf16 LoRA GPT-2 tiny: fp32 vs bf16 base max |logit| diff %.2e; loss %.4f ->"
                            + " %.4f after %d steps; merged vs tuned max |logit| diff %.2e%n",
                    roundDiff, lossBefore, lossAfter, steps.size(), mergeDiff);
            assertThat(roundDiff).isGreaterThan(0);
            assertThat(lossAfter).isLessThan(lossBefore - 0.5);
            assertThat(mergeDiff).isLessThan(1e-4);
        }
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
