package io.tuneline.engine.quant;

import java.util.Arrays;

/**
 * bitsandbytes' blockwise 8-bit quantization with its signed dynamic map, the second level of NF4's
 * double quantization: it stores each block's absmax (minus their mean) in one byte.
 *
 * <p>The map is {@code bitsandbytes/functional.py create_dynamic_map(signed=True,
 * max_exponent_bits=7, total_bits=8)} (Dettmers, "8-Bit Approximations for Parallelism in Deep
 * Learning", https://arxiv.org/abs/1511.04561), computed here with the same float32 arithmetic; the
 * rounding is {@code csrc/kernels.cu dQuantize<0>} (a binary search, then the nearer of the two
 * neighbours by their float32 midpoint).
 */
public final class Blockwise8Bit {
    /** {@code create_dynamic_map(signed=True)}: 256 sorted float32 values in [-0.99297, 1]. */
    static final float[] DYNAMIC_MAP = createDynamicMap();

    private Blockwise8Bit() {}

    /** The signed dynamic map (a copy), as bitsandbytes stores it in {@code nested_quant_map}. */
    public static float[] dynamicMap() {
        return DYNAMIC_MAP.clone();
    }

    /** Codes and the per-block absmax of one quantized vector. */
    record Quantized(byte[] codes, float[] absmax) {}

    /**
     * {@code kernels.cu kQuantizeBlockwise<float, blocksize, ., 0, General8bit>}: per block absmax
     * = max |x|, then {@code dQuantize(code, x * (1.0f / absmax))}. A block of zeros has absmax 0;
     * its values become NaN there and take code 0, as in the kernel.
     */
    static Quantized quantize(float[] x, float[] code, int blocksize) {
        int blocks = (x.length + blocksize - 1) / blocksize;
        float[] absmax = new float[blocks];
        byte[] codes = new byte[x.length];
        for (int b = 0; b < blocks; b++) {
            int start = b * blocksize;
            int end = Math.min(start + blocksize, x.length);
            float max = 0f;
            for (int i = start; i < end; i++) {
                max = Math.max(max, Math.abs(x[i]));
            }
            absmax[b] = max;
            float scale = 1.0f / max;
            for (int i = start; i < end; i++) {
                codes[i] = (byte) code(code, x[i] * scale);
            }
        }
        return new Quantized(codes, absmax);
    }

    /**
     * {@code csrc/kernels.cu dQuantize<0>} statement for statement: seven halving steps from pivot
     * 127 over the sorted 256-entry map, then the nearer neighbour, a tie on the midpoint going to
     * the pivot. NaN compares false everywhere and ends at code 0.
     */
    static int code(float[] code, float x) {
        int pivot = 127;
        int upperPivot = 255;
        int lowerPivot = 0;
        float lower = -1.0f;
        float upper = 1.0f;
        float val = code[pivot];
        for (int i = 64; i > 0; i >>= 1) {
            if (x > val) {
                lowerPivot = pivot;
                lower = val;
                pivot += i;
            } else {
                upperPivot = pivot;
                upper = val;
                pivot -= i;
            }
            val = code[pivot];
        }
        if (upperPivot == 255) {
            upper = code[upperPivot];
        }
        if (lowerPivot == 0) {
            lower = code[lowerPivot];
        }
        if (x > val) {
            float midpoint = (upper + val) * 0.5f;
            return x > midpoint ? upperPivot : pivot;
        }
        float midpoint = (lower + val) * 0.5f;
        return x < midpoint ? lowerPivot : pivot;
    }

    /**
     * {@code functional.py create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)}: for
     * exponent i = 0..6, 2^i fraction values: the midpoints of {@code torch.linspace(0.1, 1, 2^i +
     * 1)} scaled by 10^(i-6), each with its negative; then 0 and 1.0; sorted. PyTorch computes it
     * in float32 (the Python scalar 10^(i-6) is cast to float32 before the multiply), so it is done
     * in float here too.
     */
    static float[] createDynamicMap() {
        int maxExponentBits = 7;
        int nonSignBits = 7;
        float[] data = new float[256];
        int at = 0;
        for (int i = 0; i < maxExponentBits; i++) {
            int fractionItems = (1 << (i + nonSignBits - maxExponentBits)) + 1;
            float[] boundaries = torchLinspace(0.1f, 1f, fractionItems);
            float scale = (float) Math.pow(10, -(maxExponentBits - 1) + i);
            for (int j = 0; j + 1 < boundaries.length; j++) {
                float mean = (boundaries[j] + boundaries[j + 1]) / 2.0f;
                data[at++] = scale * mean;
                data[at++] = -scale * mean;
            }
        }
        // additional_items = 2^(7 - 7) - 1 = 0 for the signed 8-bit map: nothing more.
        data[at++] = 0f;
        data[at++] = 1.0f;
        if (at != 256) {
            throw new IllegalStateException("dynamic map has " + at + " values, not 256");
        }
        Arrays.sort(data);
        return data;
    }

    /**
     * {@code torch.linspace(start, end, steps, dtype=torch.float32)} as ATen's scalar loop ({@code
     * RangeFactoriesKernel.cpp}) writes it: step = (end - start) / (steps - 1) in float; the first
     * half counts up from start, the second half down from end, so both ends are exact. PyTorch's
     * builds differ from this (and from each other) by one float32 step in some entries: the kernel
     * is vectorised (8 or 16 lanes) and the compiler may fuse the multiply-add. Debian's torch 1.13
     * on AVX2 moves 30 of the 256 map entries by one step (see {@code Nf4ReferenceTest}).
     * bitsandbytes therefore stores the map beside the codes ({@code nested_quant_map}), and a
     * file's own map is what dequantizes it.
     */
    static float[] torchLinspace(float start, float end, int steps) {
        float[] out = new float[steps];
        float step = (end - start) / (steps - 1);
        int halfway = steps / 2;
        for (int i = 0; i < steps; i++) {
            out[i] = i < halfway ? start + step * i : end - step * (steps - i - 1);
        }
        return out;
    }
}
