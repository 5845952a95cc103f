package io.tuneline.engine.quant;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.io.safetensors.SafetensorsException;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Hand-checked cases of the NF4 rules; the bit-for-bit comparison is {@link Nf4ReferenceTest}. */
class Nf4Test {
    @TempDir Path dir;

    private static Nf4Weight quantize(float[] values, int blocksize, boolean doubleQuant) {
        return Nf4.quantize(values, new long[] {values.length}, Dtype.F32, blocksize, doubleQuant);
    }

    @Test
    void theEvenElementGoesToTheHighNibble() {
        // 1.0 is code 15 and -1.0 code 0 (absmax 1): bitsandbytes packs (q[0] << 4) | q[1].
        assertThat(quantize(new float[] {1f, -1f}, 64, false).packed()).containsExactly(0xF0);
        assertThat(quantize(new float[] {-1f, 1f}, 64, false).packed()).containsExactly(0x0F);
        // 0.0 is code 7, 0.5626 code 13: 0x7D.
        assertThat(quantize(new float[] {0f, 0.5626170039176941f, 1f}, 64, false).packed()[0])
                .isEqualTo((byte) 0x7D);
    }

    @Test
    void aValueOnADecisionThresholdTakesTheLowerCode() {
        // dQuantizeNF4 compares with a strict '>': the midpoint between codes 7 (0.0) and 8
        // (0.0795803) is 0.0397901; on it the code is 7, one float above it 8.
        float midpoint = 0.03979014977812767f;
        assertThat(Nf4.code(midpoint)).isEqualTo(7);
        assertThat(Nf4.code(Math.nextUp(midpoint))).isEqualTo(8);
        // Every threshold of the tree (kernels.cu, rounded from its decimal as nvcc and javac
        // do) behaves the same way, and every code value maps to itself.
        float[] thresholds = {
            -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f,
            -0.33967943489551544f, -0.23460740596055984f, -0.13791173323988914f,
            -0.045525018125772476f, 0.03979014977812767f, 0.1202552504837513f,
            0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
            0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f
        };
        for (int i = 0; i < 15; i++) {
            assertThat(Nf4.code(thresholds[i])).as("on threshold %d", i).isEqualTo(i);
            assertThat(Nf4.code(Math.nextUp(thresholds[i])))
                    .as("above threshold %d", i)
                    .isEqualTo(i + 1);
            assertThat(Nf4.code(Nf4.CODE[i])).as("code value %d", i).isEqualTo(i);
        }
        // Four of those thresholds are one float32 step from the float32 midpoint that
        // bitsandbytes' PyTorch fallback bucketizes on: the midpoint of codes 0 and 1 is
        // -0.84809637f, above the kernel's -0.84809643f, so the kernel (and this) gives code 1
        // where the fallback gives 0.
        assertThat((Nf4.CODE[0] + Nf4.CODE[1]) / 2).isEqualTo(Math.nextUp(thresholds[0]));
        assertThat(Nf4.code((Nf4.CODE[0] + Nf4.CODE[1]) / 2)).isEqualTo(1);
        assertThat(Nf4.code(Float.NaN)).isZero();
    }

    @Test
    void anOddLengthPadsTheLastLowNibbleWithTheCodeOfZero() {
        Nf4Weight w = quantize(new float[] {1f, -1f, 1f}, 64, false);
        assertThat(w.packed()).containsExactly(0xF0, 0xF7);
        assertThat(w.absmax().values()).containsExactly(1f);
    }

    @Test
    void aPartialLastBlockHasItsOwnAbsmax() {
        float[] values = new float[70];
        values[3] = -4f;
        values[65] = 0.5f;
        values[69] = -0.25f;
        Nf4Weight w = quantize(values, 64, false);
        assertThat(w.absmax().values()).containsExactly(4f, 0.5f);
        assertThat(w.code(3)).isZero(); // -4 / 4 = -1
        assertThat(w.code(65)).isEqualTo(15); // 0.5 / 0.5 = 1
        assertThat(w.code(69)).isEqualTo(2); // -0.5 is nearest -0.5251 (code 2)
        assertThat(w.code(64)).isEqualTo(7);
    }

    @Test
    void anAllZeroBlockTakesCodeZeroAsTheCudaKernelDoes() {
        // 1/0 = inf, 0 * inf = NaN, which falls through dQuantizeNF4's tree to code 0; the
        // dequantized value is -1.0 * 0 = -0.0, so nothing changes for a consumer.
        Nf4Weight w = quantize(new float[] {0f, 0f, 0f}, 64, false);
        assertThat(w.packed()).containsExactly(0x00, 0x00);
        assertThat(w.absmax().values()).containsExactly(0f);
    }

    @Test
    void blockSizesAndValuesBitsandbytesRejectsAreRefused() {
        assertThatThrownBy(() -> quantize(new float[] {1f}, 100, false))
                .hasMessageContaining("block size 100")
                .hasMessageContaining("64");
        assertThatThrownBy(() -> quantize(new float[] {1f, Float.NaN}, 64, false))
                .hasMessageContaining("NaN at flat index 1");
        assertThat(quantize(new float[] {1f}, 4096, true).blocksize()).isEqualTo(4096);
    }

    @Test
    void theDynamicMapIsBitsandbytesSigned8BitMap() {
        float[] map = Blockwise8Bit.dynamicMap();
        assertThat(map).hasSize(256);
        for (int i = 1; i < 256; i++) {
            assertThat(map[i]).isGreaterThan(map[i - 1]);
        }
        assertThat(map[255]).isEqualTo(1f);
        assertThat(map[127]).isZero();
        // The extreme negative value: the last midpoint of linspace(0.1, 1, 65) negated.
        assertThat(map[0])
                .isCloseTo(-(0.1f + 0.9f * 63.5f / 64), org.assertj.core.data.Offset.offset(1e-6f));
        // The smallest magnitudes: 1e-6 * (0.1 + 1) / 2 = 5.5e-7.
        assertThat(map[128]).isCloseTo(5.5e-7f, org.assertj.core.data.Offset.offset(1e-12f));
    }

    @Test
    void eightBitRoundingFindsEveryCodeValueAndTheNearerNeighbour() {
        float[] map = Blockwise8Bit.DYNAMIC_MAP;
        for (int k = 0; k < 256; k++) {
            assertThat(Blockwise8Bit.code(map, map[k])).as("code value %d", k).isEqualTo(k);
        }
        for (int k = 0; k < 255; k++) {
            float a = map[k];
            float b = map[k + 1];
            float nearA = a + (b - a) * 0.25f;
            float nearB = a + (b - a) * 0.75f;
            assertThat(Blockwise8Bit.code(map, nearA)).isEqualTo(k);
            assertThat(Blockwise8Bit.code(map, nearB)).isEqualTo(k + 1);
        }
        assertThat(Blockwise8Bit.code(map, Float.NaN)).isZero();
    }

    @Test
    void doubleQuantizationKeepsTheScalesWithinTheirEightBitError() {
        float[] values = new float[64 * 600];
        java.util.Random random = new java.util.Random(7);
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) random.nextGaussian() * 0.02f;
        }
        float[] plain = quantize(values, 64, false).absmax().values();
        Nf4Weight dq = quantize(values, 64, true);
        assertThat(dq.packed()).isEqualTo(quantize(values, 64, false).packed());
        Nf4Absmax.DoubleQuantized stats = (Nf4Absmax.DoubleQuantized) dq.absmax();
        assertThat(stats.codes()).hasSize(600);
        assertThat(stats.nestedAbsmax()).hasSize(3); // 600 blocks / 256, the last partial
        float[] rebuilt = dq.absmax().values();
        for (int i = 0; i < plain.length; i++) {
            // The coarsest step of the dynamic map near 1 is 0.9/64; half of it, times the
            // nested absmax, bounds the error.
            float nested = stats.nestedAbsmax()[i / 256];
            assertThat(Math.abs(rebuilt[i] - plain[i])).isLessThanOrEqualTo(nested * 0.0071f);
        }
        assertThat(dq.residentBytes())
                .isEqualTo(values.length / 2 + 600 + 3 * 4 + 4)
                .isEqualTo(Nf4Weight.residentBytes(values.length, 64, true));
        assertThat(quantize(values, 64, false).residentBytes())
                .isEqualTo(values.length / 2 + 600 * 4)
                .isEqualTo(Nf4Weight.residentBytes(values.length, 64, false));
    }

    @Test
    void aCheckpointIsQuantizedOnlyWhereAskedAndNonFloatTensorsAreNamed() throws Exception {
        Path file = dir.resolve("model.safetensors");
        new SafetensorsWriter()
                .addF32("layer.q_proj.weight", new long[] {2, 64}, new float[128])
                .addF32("layer.norm.weight", new long[] {2}, new float[] {1f, 1f})
                .addI64("position_ids", new long[] {2}, new long[] {0, 1})
                .write(file);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            Map<String, Nf4Weight> q =
                    Nf4Checkpoint.quantize(f, n -> n.endsWith("proj.weight"), 64, true);
            assertThat(q).containsOnlyKeys("layer.q_proj.weight");
            assertThat(q.get("layer.q_proj.weight").shape()).containsExactly(2, 64);
            assertThatThrownBy(() -> Nf4Checkpoint.quantize(f, n -> true, 64, false))
                    .isInstanceOf(SafetensorsException.class)
                    .hasMessageContaining("'position_ids' is I64");
        }
    }

    @Test
    void aStateDictRoundTripsAndForeignVariantsAreRefusedByName() throws Exception {
        float[] values = new float[130];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) Math.sin(i) * 0.1f;
        }
        Nf4Weight w = Nf4.quantize(values, new long[] {10, 13}, Dtype.BF16, 64, true);
        Path file = dir.resolve("nf4.safetensors");
        Nf4StateDict.write(Map.of("l.weight", w), file);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertThat(f.info("l.weight").shape()).containsExactly(65, 1);
            assertThat(f.info("l.weight.absmax").dtype()).isEqualTo(Dtype.U8);
            assertThat(f.names())
                    .containsExactlyInAnyOrder(
                            "l.weight",
                            "l.weight.absmax",
                            "l.weight.quant_map",
                            "l.weight.nested_absmax",
                            "l.weight.nested_quant_map",
                            "l.weight.quant_state.bitsandbytes__nf4");
            Nf4Weight back = Nf4StateDict.read(f, "l.weight");
            assertThat(back.packed()).isEqualTo(w.packed());
            assertThat(back.absmax().values()).isEqualTo(w.absmax().values());
            assertThat(back.dtype()).isEqualTo(Dtype.BF16);
        }

        Path fp4 = dir.resolve("fp4.safetensors");
        byte[] json =
                "{\"quant_type\": \"fp4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [2]}"
                        .getBytes(java.nio.charset.StandardCharsets.UTF_8);
        new SafetensorsWriter()
                .addU8("l.weight", new long[] {1, 1}, new byte[] {0x0F})
                .addF32("l.weight.absmax", new long[] {1}, new float[] {1f})
                .addU8("l.weight.quant_state.bitsandbytes__fp4", new long[] {json.length}, json)
                .write(fp4);
        try (SafetensorsFile f = SafetensorsFile.open(fp4)) {
            assertThatThrownBy(() -> Nf4StateDict.readAll(f))
                    .hasMessageContaining("'l.weight.quant_state.bitsandbytes__fp4'")
                    .hasMessageContaining("only NF4");
        }

        Path otherMap = dir.resolve("other-map.safetensors");
        byte[] nf4Json =
                "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [3]}"
                        .getBytes(java.nio.charset.StandardCharsets.UTF_8);
        new SafetensorsWriter()
                .addU8("l.weight", new long[] {2, 1}, new byte[] {0x0F, 0x70})
                .addF32("l.weight.absmax", new long[] {1}, new float[] {1f})
                .addF32("l.weight.quant_map", new long[] {16}, new float[16])
                .addU8(
                        "l.weight" + Nf4StateDict.QUANT_STATE_SUFFIX,
                        new long[] {nf4Json.length},
                        nf4Json)
                .write(otherMap);
        try (SafetensorsFile f = SafetensorsFile.open(otherMap)) {
            assertThatThrownBy(() -> Nf4StateDict.read(f, "l.weight"))
                    .hasMessageContaining("NF4 weight 'l.weight'")
                    .hasMessageContaining("not bitsandbytes' NF4 table");
        }
    }
}
