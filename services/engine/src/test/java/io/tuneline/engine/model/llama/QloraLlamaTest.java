package io.tuneline.engine.model.llama;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.Checkpointing;
import io.tuneline.engine.train.ResumeRuns;
import io.tuneline.engine.train.TrainingListener;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.engine.train.Validation;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * QLoRA on the Llama family through the same method as on BERT and GPT-2, no family code: every
 * projection of the grouped-query model in NF4 (the embedding and {@code lm_head} in full
 * precision), LoRA on all seven; it learns, the base bytes stay, the merged Hugging Face directory
 * reproduces the QLoRA model's logits, and a resumed run continues the uninterrupted one.
 */
class QloraLlamaTest {
    private static final List<String> ALL_LINEAR =
            List.of("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj");
    private static final long[] PROBE = {1, 2, 3, 4, 5, 6, 20, 22, 24, 40, 41, 40};
    private static EngineRuntime runtime;

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    @Test
    void qloraOnAGroupedQueryLlamaLearnsKeepsItsNf4BaseAndMergesToTheSameLogits(@TempDir Path dir)
            throws Exception {
        Path base = LlamaTrainingTest.write(dir.resolve("base"), LlamaTrainingTest.UNTIED, 21);
        var data = LlamaTrainingTest.dataset();
        try (Model model = LlamaCheckpoint.load(base, runtime.device())) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            float[] fp32 = LlamaTrainingTest.logits(model, PROBE);
            FineTuningMethod.Qlora qlora =
                    new FineTuningMethod.Qlora(
                            new FineTuningMethod.Lora(4, 8f, 0f, ALL_LINEAR), 64, true);
            ParameterCounts counts = qlora.apply(lm, model.getNDManager());

            for (var e : lm.linears().entrySet()) {
                assertThat(e.getValue().base())
                        .as(e.getKey())
                        .isInstanceOf(Dense.WeightStore.Nf4.class);
            }
            Map<String, byte[]> packed = packed(lm);
            assertThat(packed).hasSize(2 * 7);
            // LoRA r 4: r x (in + out) per projection; hidden 32, 8 x 8 query and 2 x 8 key/value
            // features, MLP 48: q 96, k 48, v 48, o 96, gate 80, up 80, down 80 (in + out).
            assertThat(counts.trainable()).isEqualTo(2L * 4 * (96 + 48 + 48 + 96 + 80 + 80 + 80));
            lm.namedParameters()
                    .forEach(
                            (name, p) ->
                                    assertThat(p.requiresGradient())
                                            .as(name)
                                            .isEqualTo(name.contains(".lora_")));
            // The embedding and the head are not quantized.
            assertThat(lm.namedParameters().get("lm_head.weight").getArray().getDataType())
                    .isEqualTo(ai.djl.ndarray.types.DataType.FLOAT32);

            float[] nf4 = LlamaTrainingTest.logits(model, PROBE);
            double lossNf4 = LlamaTrainingTest.meanLoss(model, data);
            List<TrainingListener.StepReport> steps = new ArrayList<>();
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            data,
                            new TrainingSettings(8, 4, 2e-2f, 0.0f, 0.1f, 1f, 16, 42),
                            steps::add);
            double lossAfter = LlamaTrainingTest.meanLoss(model, data);
            for (var e : lm.linears().entrySet()) {
                assertThat(((Dense.WeightStore.Nf4) e.getValue().base()).weight().packed())
                        .as(e.getKey())
                        .isEqualTo(packed.get(e.getKey()));
            }

            float[] trained = LlamaTrainingTest.logits(model, PROBE);
            Path merged = dir.resolve("merged");
            LlamaCheckpoint.save(lm, merged, Dtype.F32);
            double mergeDiff;
            try (Model reloaded = LlamaCheckpoint.load(merged, runtime.device())) {
                mergeDiff = maxAbsDiff(trained, LlamaTrainingTest.logits(reloaded, PROBE));
            }
            double quantDiff = maxAbsDiff(fp32, nf4);
            System.out.printf(
                    "QLoRA Llama tiny (GQA): trainable %d of %d; original vs NF4 base max |logit|"
                            + " diff %.4f; loss %.4f -> %.4f after %d steps; merged vs QLoRA max"
                            + " |logit| diff %.2e%n",
                    counts.trainable(),
                    counts.total(),
                    quantDiff,
                    lossNf4,
                    lossAfter,
                    steps.size(),
                    mergeDiff);
            assertThat(quantDiff).isGreaterThan(0);
            assertThat(lossAfter).isLessThan(lossNf4 - 0.5);
            assertThat(mergeDiff).isLessThan(1e-4);
        }
    }

    @Test
    void aResumedQloraRunRequantizesTheSameBaseAndContinuesTheUninterruptedOne(@TempDir Path dir)
            throws Exception {
        Path base = LlamaTrainingTest.write(dir.resolve("base"), LlamaTrainingTest.UNTIED, 23);
        TrainingSettings settings = new TrainingSettings(3, 4, 1e-2f, 0.01f, 0.1f, 1f, 16, 42);
        FineTuningMethod.Qlora qlora =
                new FineTuningMethod.Qlora(new FineTuningMethod.Lora(4, 8f, 0.1f, ALL_LINEAR));
        List<TrainingListener.StepReport> full = new ArrayList<>();
        Map<String, byte[]> packed =
                train(base, qlora, 3, settings, full, ResumeRuns.every(dir.resolve("ckpt"), 2));
        List<TrainingListener.StepReport> resumed = new ArrayList<>();
        Map<String, byte[]> requantized =
                train(
                        base,
                        qlora,
                        99,
                        settings,
                        resumed,
                        ResumeRuns.resumeFrom(dir.resolve("ckpt"), 4, dir.resolve("ckpt2")));
        requantized.forEach((n, bytes) -> assertThat(bytes).as(n).isEqualTo(packed.get(n)));
        ResumeRuns.assertContinues(full, resumed, 6, 4);
    }

    /**
     * Loads the base, applies QLoRA under {@code seed} and trains with {@code checkpointing};
     * returns each projection's packed NF4 bytes as quantized before training.
     */
    private static Map<String, byte[]> train(
            Path base,
            FineTuningMethod.Qlora qlora,
            int seed,
            TrainingSettings settings,
            List<TrainingListener.StepReport> steps,
            Checkpointing checkpointing)
            throws Exception {
        try (Model model = LlamaCheckpoint.load(base, runtime.device())) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            ai.djl.engine.Engine.getInstance().setRandomSeed(seed);
            qlora.apply(lm, model.getNDManager());
            Map<String, byte[]> packed = packed(lm);
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            LlamaTrainingTest.dataset(),
                            settings,
                            Validation.none(),
                            steps::add,
                            checkpointing);
            return packed;
        }
    }

    /** A copy of each projection's packed NF4 bytes. */
    private static Map<String, byte[]> packed(LlamaLmModel lm) {
        Map<String, byte[]> packed = new LinkedHashMap<>();
        lm.linears()
                .forEach(
                        (n, d) ->
                                packed.put(
                                        n,
                                        ((Dense.WeightStore.Nf4) d.base())
                                                .weight()
                                                .packed()
                                                .clone()));
        return packed;
    }

    private static double maxAbsDiff(float[] a, float[] b) {
        double max = 0;
        for (int i = 0; i < a.length; i++) {
            max = Math.max(max, Math.abs(a[i] - b[i]));
        }
        return max;
    }
}
