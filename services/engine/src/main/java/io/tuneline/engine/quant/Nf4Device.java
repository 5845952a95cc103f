package io.tuneline.engine.quant;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.tuneline.engine.io.safetensors.Dtype;
import java.nio.ByteBuffer;

/**
 * An NF4 weight held in native memory on a device: the packed codes (uint8) and the scales (fp32
 * per block, or the double-quantized uint8 codes with their nested absmax), as bitsandbytes keeps a
 * {@code Params4bit} on the GPU. {@link #dequantize} is then native work only.
 *
 * <p>Why it exists: dequantizing from the Java arrays of an {@link Nf4Weight} copies the packed
 * bytes and the scales from the heap into fresh direct buffers on every forward call (and, on a
 * GPU, across the bus). Those buffers are freed only when the garbage collector gets to them, so
 * with a large heap a QLoRA run's resident memory grew past LoRA's on the same model (issue 16);
 * and the per-call copies cost time.
 *
 * <p>The arrays belong to the manager given to {@link #of}; closing it (or this) frees them.
 * Intermediate results of {@link #dequantize} are attached to a scratch manager as they are made:
 * an operation on a resident array puts its result in the resident array's manager, where it would
 * otherwise stay until the model is closed.
 */
public final class Nf4Device implements AutoCloseable {
    /**
     * For each possible packed byte b, the code value of its high nibble (the even element) and of
     * its low nibble (the odd one), as a (256, 2) table: one lookup per byte instead of shifts and
     * masks, which DJL does not offer on integer arrays.
     */
    private static final float[] PAIRS = new float[512];

    static {
        for (int b = 0; b < 256; b++) {
            PAIRS[2 * b] = Nf4.CODE[b >> 4];
            PAIRS[2 * b + 1] = Nf4.CODE[b & 0x0F];
        }
    }

    private final NDArray packed;
    private final NDArray pairs;

    /** fp32 per block, or (double quantization) uint8 codes. */
    private final NDArray absmax;

    /** Double quantization only: fp32 per {@code nestedBlocksize} blocks, and the 256-entry map. */
    private final NDArray nestedAbsmax;

    private final NDArray nestedMap;
    private final float offset;
    private final int nestedBlocksize;
    private final long[] shape;
    private final int blocksize;
    private final Dtype dtype;
    private final long residentBytes;

    private Nf4Device(
            NDArray packed,
            NDArray pairs,
            NDArray absmax,
            NDArray nestedAbsmax,
            NDArray nestedMap,
            float offset,
            int nestedBlocksize,
            Nf4Weight weight) {
        this.packed = packed;
        this.pairs = pairs;
        this.absmax = absmax;
        this.nestedAbsmax = nestedAbsmax;
        this.nestedMap = nestedMap;
        this.offset = offset;
        this.nestedBlocksize = nestedBlocksize;
        this.shape = weight.shape();
        this.blocksize = weight.blocksize();
        this.dtype = weight.dtype();
        this.residentBytes = weight.residentBytes();
    }

    /** Copies {@code weight} into native arrays of {@code manager}, on its device. */
    public static Nf4Device of(Nf4Weight weight, NDManager manager) {
        byte[] bytes = weight.packed();
        NDArray packed =
                manager.create(ByteBuffer.wrap(bytes), new Shape(bytes.length), DataType.UINT8);
        NDArray pairs = manager.create(PAIRS, new Shape(256, 2));
        if (weight.absmax() instanceof Nf4Absmax.DoubleQuantized q) {
            NDArray codes =
                    manager.create(
                            ByteBuffer.wrap(q.codes()),
                            new Shape(q.codes().length),
                            DataType.UINT8);
            return new Nf4Device(
                    packed,
                    pairs,
                    codes,
                    manager.create(q.nestedAbsmax()),
                    manager.create(q.nestedMap()),
                    q.offset(),
                    q.nestedBlocksize(),
                    weight);
        }
        return new Nf4Device(
                packed, pairs, manager.create(weight.absmax().values()), null, null, 0f, 0, weight);
    }

    /**
     * The dense float32 weight in the original shape, bit for bit {@link Nf4Weight#dequantize}'s
     * (bitsandbytes' {@code dequantize_4bit} in float32): one row lookup per packed byte in the
     * (256, 2) table of nibble values, a reshape to (blocks, blocksize) and a broadcast multiply by
     * the scales; the result belongs to {@code manager}, every intermediate is freed.
     */
    public NDArray dequantize(NDManager manager) {
        long n = Nf4Weight.elements(shape);
        long blocks = (n + blocksize - 1) / blocksize;
        long padded = blocks * blocksize;
        try (NDManager scratch = manager.newSubManager(packed.getDevice())) {
            // Row b of the table holds the values of byte b's two nibbles; indexing by the packed
            // bytes gives (bytes, 2), whose row-major order is the element order.
            NDArray index = scratched(packed.toType(DataType.INT64, false), scratch);
            NDArray values = scratched(pairs.get(index), scratch).reshape(-1);
            if (padded > values.getShape().get(0)) {
                values = values.concat(scratch.zeros(new Shape(padded - values.getShape().get(0))));
            }
            NDArray scales = scales(scratch, (int) blocks).reshape(blocks, 1);
            NDArray out = values.reshape(blocks, blocksize).mul(scales).reshape(padded);
            if (padded > n) {
                out = out.get(new NDIndex("0:" + n));
            }
            out = out.reshape(new Shape(shape));
            out.attach(manager);
            return out;
        }
    }

    /**
     * The per-block scales as fp32, in {@code scratch}: the resident values, or (double
     * quantization, bitsandbytes' {@code dequantize_4bit}) {@code code[q] * nested absmax[block /
     * 256]}, then {@code + offset}, each a float32 operation as {@code kDequantizeBlockwise} does.
     */
    private NDArray scales(NDManager scratch, int blocks) {
        if (nestedAbsmax == null) {
            // A new handle on the resident storage; closing it leaves the storage alone.
            return scratched(absmax.reshape(blocks), scratch);
        }
        int nested = (int) nestedAbsmax.getShape().get(0);
        long paddedBlocks = (long) nested * nestedBlocksize;
        NDArray index = scratched(absmax.toType(DataType.INT64, false), scratch);
        NDArray decoded = scratched(nestedMap.gather(index, 0), scratch);
        if (paddedBlocks > blocks) {
            decoded = decoded.concat(scratch.zeros(new Shape(paddedBlocks - blocks)));
        }
        NDArray nestedScales = scratched(nestedAbsmax.reshape(nested, 1), scratch);
        NDArray scaled =
                decoded.reshape(nested, nestedBlocksize).mul(nestedScales).reshape(paddedBlocks);
        if (paddedBlocks > blocks) {
            scaled = scaled.get(new NDIndex("0:" + blocks));
        }
        return scaled.add(offset);
    }

    private static NDArray scratched(NDArray array, NDManager scratch) {
        array.attach(scratch);
        return array;
    }

    /** The weight back on the heap (a copy of the native arrays): for exports and checkpoints. */
    public Nf4Weight toWeight() {
        Nf4Absmax stats =
                nestedAbsmax == null
                        ? new Nf4Absmax.Plain(absmax.toFloatArray())
                        : new Nf4Absmax.DoubleQuantized(
                                absmax.toByteArray(),
                                nestedAbsmax.toFloatArray(),
                                offset,
                                nestedBlocksize,
                                nestedMap.toFloatArray());
        return new Nf4Weight(packed.toByteArray(), stats, shape, blocksize, dtype);
    }

    public long[] shape() {
        return shape.clone();
    }

    public int blocksize() {
        return blocksize;
    }

    public boolean doubleQuantized() {
        return nestedAbsmax != null;
    }

    public Dtype dtype() {
        return dtype;
    }

    /** {@link Nf4Weight#residentBytes()}: the packed codes and the scales, as held here. */
    public long residentBytes() {
        return residentBytes;
    }

    public Device device() {
        return packed.getDevice();
    }

    @Override
    public void close() {
        packed.close();
        pairs.close();
        absmax.close();
        if (nestedAbsmax != null) {
            nestedAbsmax.close();
            nestedMap.close();
        }
    }
}
