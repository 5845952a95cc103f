package io.tuneline.engine.model.llama;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.ndarray.types.DataType;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.Precision;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.runtime.EngineRuntime;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Precision fp16 with half matmuls on the Llama family against an independent plain-PyTorch pass
 * that runs the projections as {@code torch.autocast(float16)} does ({@code
 * bench/llama_reference.py} with {@code "fp16_autocast": true}: input and weight rounded to
 * float16, the product rounded to float16), on a padded batch of the tiny grouped-query Llama with
 * LoRA on all seven projections.
 */
class Fp16LlamaTest {

    /**
     * The engine's half GEMM and the reference's float32 product of the same half values may round
     * a product to neighbouring float16 values (2^-11 relative) where their sums differ in order,
     * and the reference's order is its BLAS's: with Debian's default OpenBLAS the two agree to
     * 2.4e-7, with the OpenMP OpenBLAS the training benchmark asks for to 2.3e-4, while float16
     * moves the logits from the fp32 model's by 1.3e-3 under either. So the claim is that contrast,
     * measured in the same run: the engine is within a third of the float16-to-float32 gap of
     * autocast's logits and at least half that gap away from the fp32 ones (an engine computing in
     * float32 would be a whole gap from autocast and next to fp32).
     */
    private static final double SHARE_OF_GAP = 1.0 / 3;

    @Test
    void halfMatmulsMatchAutocastsLinearAndDifferFromFp32(@TempDir Path dir) throws Exception {
        LlamaReferenceTest.requireTorch();
        EngineRuntime runtime = EngineRuntime.start(2);
        Path base = LlamaTrainingTest.write(dir.resolve("base"), LlamaTrainingTest.UNTIED, 31);
        long[][] ids = {{1, 9, 33, 21, 30, 2, 14, 44, 7, 52}, {1, 7, 8, 9, 40, 6, 0, 0, 0, 0}};
        long[][] mask = {{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 0, 0, 0, 0}};
        Map<String, double[][][]> ref =
                LlamaReferenceTest.reference(
                        Files.createDirectories(dir.resolve("ref")),
                        Map.of(
                                "fp32",
                                new LlamaReferenceTest.Case(base, ids, mask),
                                "fp16",
                                new LlamaReferenceTest.Case(base, ids, mask, false, true)));
        try (Model model = LlamaCheckpoint.load(base, runtime.device())) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            new FineTuningMethod.Lora(
                            4,
                            8f,
                            0f,
                            List.of(
                                    "q_proj",
                                    "k_proj",
                                    "v_proj",
                                    "o_proj",
                                    "gate_proj",
                                    "up_proj",
                                    "down_proj"))
                    .apply(lm, model.getNDManager());
            Precision.Held held = Precision.FP16.apply(lm, true);
            long weights = 2L * (32 * 64 + 2 * 32 * 16 + 64 * 32 + 3 * 32 * 48);
            assertThat(held.layers()).isEqualTo(14);
            assertThat(held.heldBytes()).isEqualTo(2 * weights);
            for (var e : lm.linears().entrySet()) {
                var w = (Dense.WeightStore.Fp16) e.getValue().base();
                assertThat(w.halfMatmul()).isTrue();
                assertThat(w.weight().getDataType()).as(e.getKey()).isEqualTo(DataType.FLOAT16);
            }
            // LoRA's B is zero: the logits are the float16 base's.
            float[] logits = LlamaReferenceTest.forward(model, ids, mask);
            double toFp16Ref = maxAbsDiff(logits, ref.get("fp16"), mask);
            double toFp32Ref = maxAbsDiff(logits, ref.get("fp32"), mask);
            double refGap = maxAbsDiff(ref.get("fp16"), ref.get("fp32"), mask);
            System.out.printf(
                    "fp16 Llama tiny: engine half matmuls vs reference autocast %.2e, vs reference"
                            + " fp32 %.2e (reference autocast vs fp32 %.2e)%n",
                    toFp16Ref, toFp32Ref, refGap);
            assertThat(refGap).isGreaterThan(1e-4);
            assertThat(toFp16Ref).isLessThan(SHARE_OF_GAP * refGap);
            assertThat(toFp32Ref).isGreaterThan(refGap / 2);
        }
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

    private static double maxAbsDiff(double[][][] a, double[][][] b, long[][] mask) {
        double max = 0;
        for (int i = 0; i < a.length; i++) {
            for (int t = 0; t < a[i].length; t++) {
                if (mask[i][t] == 0) {
                    continue;
                }
                for (int v = 0; v < a[i][t].length; v++) {
                    max = Math.max(max, Math.abs(a[i][t][v] - b[i][t][v]));
                }
            }
        }
        return max;
    }
}
