package io.tuneline.engine.model.llama;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.ndarray.types.DataType;
import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.method.Precision;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.Checkpointing;
import io.tuneline.engine.train.ResumeRuns;
import io.tuneline.engine.train.TrainingCheckpoint;
import io.tuneline.engine.train.TrainingListener;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.engine.train.Validation;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Precision bf16 on the Llama family, applied after the method with no family or method code: every
 * frozen projection held as bf16 values in two bytes each, LoRA and AdamW's moments in float32; the
 * logits match an independent plain-PyTorch pass on the bf16-rounded weights; it learns, the bf16
 * base stays bit-identical, and a resumed run continues the uninterrupted one.
 */
class Bf16LlamaTest {
    private static final List<String> ALL_LINEAR =
            List.of("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj");

    /**
     * Engine against reference on the same bf16-rounded weights: both compute in float32, so the
     * float32 test's tolerance ({@code LlamaReferenceTest}) applies; rounding the weights to bf16
     * (8 significant bits, relative error up to 2^-9 each) moves the logits by far more, the
     * contrast the test asserts.
     */
    private static final double TOLERANCE = 1e-4;

    private static EngineRuntime runtime;

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    @Test
    void bf16LoraHoldsTheFrozenBaseInBf16TrainsInFp32AndMatchesTheReference(@TempDir Path dir)
            throws Exception {
        LlamaReferenceTest.requireTorch();
        Path base = LlamaTrainingTest.write(dir.resolve("base"), LlamaTrainingTest.UNTIED, 21);
        long[][] ids = {{1, 9, 33, 21, 30, 2, 14, 44, 7, 52}, {1, 7, 8, 9, 40, 6, 0, 0, 0, 0}};
        long[][] mask = {{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 0, 0, 0, 0}};
        var data = LlamaTrainingTest.dataset();
        Map<String, double[][][]> ref =
                LlamaReferenceTest.reference(
                        Files.createDirectories(dir.resolve("ref")),
                        Map.of(
                                "fp32", new LlamaReferenceTest.Case(base, ids, mask, false),
                                "bf16", new LlamaReferenceTest.Case(base, ids, mask, true)));
        try (Model model = LlamaCheckpoint.load(base, runtime.device())) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            FineTuningMethod.Lora lora = new FineTuningMethod.Lora(4, 8f, 0f, ALL_LINEAR);
            ParameterCounts before = lora.apply(lm, model.getNDManager());
            Precision.Held held = Precision.BF16.apply(lm);

            // 2 layers x 7 projections; hidden 32, 64 query and 16 key/value features, MLP 48.
            long weights = 2L * (32 * 64 + 2 * 32 * 16 + 64 * 32 + 3 * 32 * 48);
            assertThat(held.layers()).isEqualTo(14);
            assertThat(held.float32Bytes()).isEqualTo(4 * weights);
            long residentBytes = 0;
            for (var e : lm.linears().entrySet()) {
                var w = ((Dense.WeightStore.Bf16) e.getValue().base()).weight();
                residentBytes += w.size() * w.getDataType().getNumOfBytes();
                // Every held value is a bfloat16: its low 16 float32 bits are zero.
                for (float f : w.toType(DataType.FLOAT32, false).toFloatArray()) {
                    assertThat(Float.floatToRawIntBits(f) & 0xFFFF).as(e.getKey()).isZero();
                }
            }
            assertThat(residentBytes).isEqualTo(2 * weights);
            // The same model, counted the same way: the bf16 weights are still part of it.
            assertThat(ParameterCounts.of(lm)).isEqualTo(before);
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

            // LoRA's B is zero: the logits are the bf16 base's.
            float[] logits = LlamaReferenceTest.forward(model, ids, mask);
            double scale = maxAbs(ref.get("fp32"), mask);
            double toBf16Ref = maxAbsDiff(logits, ref.get("bf16"), mask);
            double toFp32Ref = maxAbsDiff(logits, ref.get("fp32"), mask);
            Map<String, byte[]> frozen = bf16Bytes(lm);
            double lossBefore = LlamaTrainingTest.meanLoss(model, data);
            List<TrainingListener.StepReport> steps = new ArrayList<>();
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            data,
                            new TrainingSettings(8, 4, 2e-2f, 0.0f, 0.1f, 1f, 16, 42),
                            Validation.none(),
                            steps::add,
                            ResumeRuns.every(dir.resolve("ckpt"), 8));
            // step 8's checkpoint (the run's last step writes none)
            double lossAfter = LlamaTrainingTest.meanLoss(model, data);
            System.out.printf(
                    "bf16 LoRA Llama tiny: %d projections in bf16, %d -> %d bytes; max |logit| %.3f,"
                            + " engine bf16 vs reference bf16 %.2e, vs reference fp32 %.2e; loss"
                            + " %.4f -> %.4f after %d steps%n",
                    held.layers(),
                    held.float32Bytes(),
                    residentBytes,
                    scale,
                    toBf16Ref,
                    toFp32Ref,
                    lossBefore,
                    lossAfter,
                    steps.size());
            assertThat(toBf16Ref).isLessThan(TOLERANCE);
            assertThat(toFp32Ref).isGreaterThan(10 * TOLERANCE);
            assertThat(lossAfter).isLessThan(lossBefore - 0.5);
            bf16Bytes(lm).forEach((n, b) -> assertThat(b).as(n).isEqualTo(frozen.get(n)));
            // What the optimizer kept: every moment in float32, for the LoRA matrices only.
            Path last = dir.resolve("ckpt").resolve(String.format("step-%08d", 8));
            try (SafetensorsFile moments =
                            SafetensorsFile.open(last.resolve(TrainingCheckpoint.OPTIMIZER));
                    SafetensorsFile trained =
                            SafetensorsFile.open(last.resolve(TrainingCheckpoint.TRAINABLE))) {
                assertThat(moments.names()).isNotEmpty();
                for (String n : moments.names()) {
                    assertThat(moments.info(n).dtype()).as(n).isEqualTo(Dtype.F32);
                }
                assertThat(trained.names()).allMatch(n -> n.contains(".lora_"));
                for (String n : trained.names()) {
                    assertThat(trained.info(n).dtype()).as(n).isEqualTo(Dtype.F32);
                }
            }
        }
    }

    @Test
    void aResumedBf16RunContinuesTheUninterruptedOne(@TempDir Path dir) throws Exception {
        Path base = LlamaTrainingTest.write(dir.resolve("base"), LlamaTrainingTest.UNTIED, 23);
        TrainingSettings settings = new TrainingSettings(3, 4, 1e-2f, 0.01f, 0.1f, 1f, 16, 42);
        FineTuningMethod.Lora lora = new FineTuningMethod.Lora(4, 8f, 0.1f, ALL_LINEAR);
        List<TrainingListener.StepReport> full = new ArrayList<>();
        Map<String, byte[]> first =
                train(base, lora, 3, settings, full, ResumeRuns.every(dir.resolve("ckpt"), 2));
        List<TrainingListener.StepReport> resumed = new ArrayList<>();
        Map<String, byte[]> again =
                train(
                        base,
                        lora,
                        99,
                        settings,
                        resumed,
                        ResumeRuns.resumeFrom(dir.resolve("ckpt"), 4, dir.resolve("ckpt2")));
        again.forEach((n, bytes) -> assertThat(bytes).as(n).isEqualTo(first.get(n)));
        ResumeRuns.assertContinues(full, resumed, 6, 4);
    }

    /** Loads, applies LoRA under {@code seed} and bf16, trains; returns the bf16 base's bytes. */
    private static Map<String, byte[]> train(
            Path base,
            FineTuningMethod.Lora lora,
            int seed,
            TrainingSettings settings,
            List<TrainingListener.StepReport> steps,
            Checkpointing checkpointing)
            throws Exception {
        try (Model model = LlamaCheckpoint.load(base, runtime.device())) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            ai.djl.engine.Engine.getInstance().setRandomSeed(seed);
            lora.apply(lm, model.getNDManager());
            Precision.BF16.apply(lm);
            Map<String, byte[]> bytes = bf16Bytes(lm);
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            LlamaTrainingTest.dataset(),
                            settings,
                            Validation.none(),
                            steps::add,
                            checkpointing);
            return bytes;
        }
    }

    /** Each projection's bf16 weight as raw bytes. */
    static Map<String, byte[]> bf16Bytes(LlamaLmModel lm) {
        Map<String, byte[]> bytes = new LinkedHashMap<>();
        lm.linears()
                .forEach(
                        (n, d) ->
                                bytes.put(
                                        n,
                                        ((Dense.WeightStore.Bf16) d.base())
                                                .weight()
                                                .toByteArray()));
        return bytes;
    }

    /** Largest |logit| over real tokens; engine logits are (B, T, V) row-major. */
    private static double maxAbs(double[][][] ref, long[][] mask) {
        double max = 0;
        for (int b = 0; b < ref.length; b++) {
            for (int t = 0; t < ref[b].length; t++) {
                if (mask[b][t] == 0) {
                    continue;
                }
                for (double v : ref[b][t]) {
                    max = Math.max(max, Math.abs(v));
                }
            }
        }
        return max;
    }

    private static double maxAbsDiff(float[] engine, double[][][] ref, long[][] mask) {
        double max = 0;
        int i = 0;
        for (int b = 0; b < ref.length; b++) {
            for (int t = 0; t < ref[b].length; t++) {
                for (double v : ref[b][t]) {
                    if (mask[b][t] != 0) {
                        max = Math.max(max, Math.abs(engine[i] - v));
                    }
                    i++;
                }
            }
        }
        return max;
    }
}
