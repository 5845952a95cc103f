package io.tuneline.engine.quant;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.tuneline.engine.io.safetensors.Dtype;
import java.util.Arrays;

/**
 * A weight held in NF4: the packed 4-bit codes (two per byte, even element in the high nibble,
 * bitsandbytes' layout), the per-block scales, the original shape and dtype. It is what a frozen
 * linear layer of a QLoRA model keeps in place of its dense weight; {@link #dequantize} gives the
 * dense float32 weight back, one layer at a time, on whatever device the manager is on.
 */
public final class Nf4Weight {
    private final byte[] packed;
    private final Nf4Absmax absmax;
    private final long[] shape;
    private final int blocksize;
    private final Dtype dtype;

    /**
     * @param packed ceil(n / 2) bytes, the even element of each pair in the high nibble
     * @param absmax one scale per block of {@code blocksize} values (the last may be shorter)
     * @param shape the original tensor's shape (row-major)
     * @param dtype the original tensor's dtype (F32, F16 or BF16)
     */
    public Nf4Weight(byte[] packed, Nf4Absmax absmax, long[] shape, int blocksize, Dtype dtype) {
        Nf4.checkBlocksize(blocksize);
        Nf4.checkDtype(dtype);
        long n = elements(shape);
        if (n == 0) {
            throw new IllegalArgumentException("an empty tensor has nothing to quantize");
        }
        if (packed.length != (n + 1) / 2) {
            throw new IllegalArgumentException(
                    "shape "
                            + Arrays.toString(shape)
                            + " packs into "
                            + (n + 1) / 2
                            + " bytes, not "
                            + packed.length);
        }
        long blocks = (n + blocksize - 1) / blocksize;
        if (absmax.blocks() != blocks) {
            throw new IllegalArgumentException(
                    n
                            + " values in blocks of "
                            + blocksize
                            + " need "
                            + blocks
                            + " absmax values, not "
                            + absmax.blocks());
        }
        this.packed = packed;
        this.absmax = absmax;
        this.shape = shape.clone();
        this.blocksize = blocksize;
        this.dtype = dtype;
    }

    static long elements(long[] shape) {
        long n = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException(
                        "negative dimension in " + Arrays.toString(shape));
            }
            n = Math.multiplyExact(n, d);
        }
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(
                    "a tensor of "
                            + n
                            + " values is too large to quantize in one piece; split it first");
        }
        return n;
    }

    /** The packed codes (not a copy: do not modify). */
    public byte[] packed() {
        return packed;
    }

    public Nf4Absmax absmax() {
        return absmax;
    }

    public long[] shape() {
        return shape.clone();
    }

    public int blocksize() {
        return blocksize;
    }

    public Dtype dtype() {
        return dtype;
    }

    public boolean doubleQuantized() {
        return absmax instanceof Nf4Absmax.DoubleQuantized;
    }

    public long elements() {
        return elements(shape);
    }

    /** The 4-bit code of the element at a flat (row-major) index. */
    public int code(long index) {
        int b = packed[(int) (index >> 1)] & 0xFF;
        return (index & 1) == 0 ? b >> 4 : b & 0x0F;
    }

    /**
     * Bytes this weight keeps in memory: the packed codes plus its scales (fp32 per block, or one
     * byte per block plus fp32 per 256 blocks and the offset). The 16 NF4 values and the 256-entry
     * dynamic map are shared by every weight and not counted.
     */
    public long residentBytes() {
        return packed.length + absmax.residentBytes();
    }

    /**
     * What {@link #residentBytes()} would be for a tensor of {@code elements} values, without
     * quantizing one.
     */
    public static long residentBytes(long elements, int blocksize, boolean doubleQuant) {
        long blocks = (elements + blocksize - 1) / blocksize;
        long scales =
                doubleQuant
                        ? blocks
                                + 4L * ((blocks + Nf4.NESTED_BLOCKSIZE - 1) / Nf4.NESTED_BLOCKSIZE)
                                + 4L
                        : 4L * blocks;
        return (elements + 1) / 2 + scales;
    }

    /**
     * The dense float32 weight in the original shape, as bitsandbytes' {@code dequantize_4bit}
     * computes it before casting to the original dtype: {@code code[nibble] * absmax[block]} in
     * float32 (so the values are bit for bit bitsandbytes'), on the manager's device. Copies this
     * weight into native memory first ({@link Nf4Device}, freed before returning): a layer that
     * dequantizes on every call holds an {@link Nf4Device} instead.
     */
    public NDArray dequantize(NDManager manager) {
        try (NDManager scratch = manager.newSubManager();
                Nf4Device resident = Nf4Device.of(this, scratch)) {
            return resident.dequantize(manager);
        }
    }

    @Override
    public String toString() {
        return "Nf4Weight"
                + Arrays.toString(shape)
                + " "
                + dtype
                + " blocksize "
                + blocksize
                + (doubleQuantized() ? " double-quantized" : "");
    }
}
