package io.tuneline.engine.quant;

import io.tuneline.engine.io.safetensors.Dtype;
import java.util.Arrays;

/**
 * NF4 (4-bit NormalFloat, QLoRA: https://arxiv.org/abs/2305.14314) quantization exactly as
 * bitsandbytes does it, so that a weight quantized here and one quantized by bitsandbytes carry the
 * same packed bytes and the same absmax.
 *
 * <p>The rules, each from bitsandbytes (snapshot 0.50.2.dev0, commit 95f9af30):
 *
 * <ul>
 *   <li>The tensor is flattened row-major and cut into blocks of {@code blocksize} values (default
 *       64, {@code functional.py quantize_4bit}); a shorter last block has its own absmax ({@code
 *       csrc/kernels.cu kQuantizeBlockwise}: {@code valid_items}).
 *   <li>absmax = max |x| over the block, in fp32; each value is multiplied by the fp32 reciprocal
 *       {@code 1.0f / absmax} (not divided by absmax) and mapped to a 4-bit code by the decision
 *       tree of {@code kernels.cu dQuantizeNF4}: strict {@code >} comparisons against the
 *       midpoints, so a value exactly on a midpoint takes the LOWER code (the same tie rule as
 *       {@code torch.bucketize(right=False)} in {@code backends/default/ops.py}).
 *   <li>Two codes per byte, the even element in the HIGH nibble ({@code kernels.cu}: {@code
 *       qvals[j] = dQuantizeNF4(vals[2j]) << 4 | dQuantizeNF4(vals[2j+1])}; {@code
 *       backends/default/ops.py}: {@code (q[::2] << 4) | q[1::2]}); an odd count leaves the last
 *       low nibble as the code of the zero the kernel loaded as padding (7, i.e. 0.0).
 *   <li>Double quantization ({@code compress_statistics=True} in {@code quantize_4bit}): {@code
 *       offset = absmax.mean()}, then the fp32 {@code absmax - offset} is quantized blockwise to 8
 *       bits with blocksize 256 and the signed dynamic map ({@link Blockwise8Bit}).
 * </ul>
 *
 * <p>Two places where this follows the CUDA kernel rather than bitsandbytes' pure-PyTorch fallback
 * ({@code backends/default/ops.py}): a block whose values are all zero gets code 0 (the kernel
 * computes {@code 0 * (1/0) = NaN}, which falls through every comparison of the tree; the fallback
 * clamps absmax to 1e-38 and gets code 7); and the last partial block is scaled by the reciprocal
 * (the fallback divides). Both dequantize to the same values except in the last ulp of the partial
 * block. The CUDA build compiles with {@code --use_fast_math} (an approximate reciprocal,
 * subnormals flushed), so a GPU-quantized weight can differ from this, and from bitsandbytes' own
 * CPU path, for a value within an ulp of a decision threshold. Non-finite values are refused:
 * bitsandbytes turns them into codes silently.
 */
public final class Nf4 {
    /**
     * The 16 NF4 code values, index 0..15: {@code bitsandbytes/functional.py get_4bit_type("nf4")}
     * (generated there by {@code create_normal_map(offset=0.9677083, use_extra_value=True)}), the
     * same table as {@code nf4_dequantization_lut} in {@code csrc/kernels.cu}.
     */
    static final float[] CODE = {
        -1.0f,
        -0.6961928009986877f,
        -0.5250730514526367f,
        -0.39491748809814453f,
        -0.28444138169288635f,
        -0.18477343022823334f,
        -0.09105003625154495f,
        0.0f,
        0.07958029955625534f,
        0.16093020141124725f,
        0.24611230194568634f,
        0.33791524171829224f,
        0.44070982933044434f,
        0.5626170039176941f,
        0.7229568362236023f,
        1.0f
    };

    /** bitsandbytes' default 4-bit block size ({@code functional.py quantize_4bit}). */
    public static final int DEFAULT_BLOCKSIZE = 64;

    /** Block sizes {@code quantize_4bit} accepts ({@code functional.py}, {@code _ops.py}). */
    static final int[] BLOCKSIZES = {32, 64, 128, 256, 512, 1024, 2048, 4096};

    /**
     * Block size of the second quantization of absmax ({@code functional.py quantize_4bit}: {@code
     * quantize_blockwise(_absmax - offset, blocksize=256)}).
     */
    public static final int NESTED_BLOCKSIZE = 256;

    /**
     * The largest gap between two adjacent NF4 codes (between -1.0 and -0.6961928): a value is
     * never further than half of it, times absmax, from its dequantized value.
     */
    public static final float MAX_CODE_GAP = CODE[1] - CODE[0];

    private Nf4() {}

    /** The 16 NF4 code values, index 0..15 (a copy). */
    public static float[] codeValues() {
        return CODE.clone();
    }

    /**
     * Quantizes a tensor given as its row-major float32 values.
     *
     * @param dtype the dtype the tensor had before widening (F32, F16 or BF16); recorded so that
     *     bitsandbytes' state dict names it, and so a consumer knows what precision came in
     */
    public static Nf4Weight quantize(
            float[] values, long[] shape, Dtype dtype, int blocksize, boolean doubleQuant) {
        checkBlocksize(blocksize);
        checkDtype(dtype);
        long elements = Nf4Weight.elements(shape);
        if (elements != values.length) {
            throw new IllegalArgumentException(
                    "shape "
                            + Arrays.toString(shape)
                            + " has "
                            + elements
                            + " values but "
                            + values.length
                            + " were given");
        }
        int n = values.length;
        int blocks = (int) ((n + (long) blocksize - 1) / blocksize);
        float[] absmax = new float[blocks];
        byte[] packed = new byte[(int) ((n + 1L) / 2)];
        for (int b = 0; b < blocks; b++) {
            int start = b * blocksize;
            int end = Math.min(start + blocksize, n);
            float max = 0f;
            for (int i = start; i < end; i++) {
                float v = values[i];
                if (!Float.isFinite(v)) {
                    throw new IllegalArgumentException(
                            "value " + v + " at flat index " + i + " cannot be quantized");
                }
                max = Math.max(max, Math.abs(v));
            }
            absmax[b] = max;
            // kernels.cu kQuantizeBlockwise: smem_absmax_value[0] = 1.0f / local_abs_max; the
            // values are multiplied by it. For max == 0 this is +inf and 0 * inf = NaN -> code 0.
            float scale = 1.0f / max;
            for (int i = start; i < end; i++) {
                int code = code(values[i] * scale);
                // Even element (i even) in the high nibble, odd in the low one.
                if ((i & 1) == 0) {
                    packed[i >> 1] = (byte) (code << 4);
                } else {
                    packed[i >> 1] |= (byte) code;
                }
            }
        }
        if ((n & 1) == 1) {
            // The kernel loads the missing element as 0.0 and quantizes it with the block's scale:
            // code 7 (0.0), or 0 when the block is all zeros (0 * inf = NaN).
            float scale = 1.0f / absmax[blocks - 1];
            packed[n >> 1] |= (byte) code(0f * scale);
        }
        Nf4Absmax stats =
                doubleQuant ? Nf4Absmax.DoubleQuantized.of(absmax) : new Nf4Absmax.Plain(absmax);
        return new Nf4Weight(packed, stats, shape, blocksize, dtype);
    }

    /**
     * The 4-bit code of a value already scaled into [-1, 1]: {@code csrc/kernels.cu dQuantizeNF4}
     * branch for branch (its thresholds were generated by {@code test_normal_map_tree} in {@code
     * tests/test_functional.py}: the midpoints between adjacent codes; as float32 they equal {@code
     * (CODE[i] + CODE[i + 1]) / 2}). NaN falls through every comparison to code 0.
     */
    static int code(float x) {
        if (x > 0.03979014977812767f) {
            if (x > 0.3893125355243683f) {
                if (x > 0.6427869200706482f) {
                    return x > 0.8614784181118011f ? 0b1111 : 0b1110;
                }
                return x > 0.5016634166240692f ? 0b1101 : 0b1100;
            }
            if (x > 0.2035212516784668f) {
                return x > 0.2920137718319893f ? 0b1011 : 0b1010;
            }
            return x > 0.1202552504837513f ? 0b1001 : 0b1000;
        }
        if (x > -0.33967943489551544f) {
            if (x > -0.13791173323988914f) {
                return x > -0.045525018125772476f ? 0b0111 : 0b0110;
            }
            return x > -0.23460740596055984f ? 0b0101 : 0b0100;
        }
        if (x > -0.6106329262256622f) {
            return x > -0.4599952697753906f ? 0b0011 : 0b0010;
        }
        return x > -0.8480964004993439f ? 0b0001 : 0b0000;
    }

    static void checkBlocksize(int blocksize) {
        for (int b : BLOCKSIZES) {
            if (b == blocksize) {
                return;
            }
        }
        throw new IllegalArgumentException(
                "NF4 block size "
                        + blocksize
                        + " is not one bitsandbytes supports; use one of "
                        + Arrays.toString(BLOCKSIZES)
                        + " (64 is QLoRA's)");
    }

    static void checkDtype(Dtype dtype) {
        if (dtype != Dtype.F32 && dtype != Dtype.F16 && dtype != Dtype.BF16) {
            throw new IllegalArgumentException(
                    "only F32, F16 and BF16 tensors are quantized to NF4 (bitsandbytes'"
                            + " quantize_4bit); got "
                            + dtype);
        }
    }
}
