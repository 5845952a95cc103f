package io.tuneline.engine.bench;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.quant.Nf4;
import io.tuneline.engine.quant.Nf4Weight;
import io.tuneline.engine.runtime.EngineRuntime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * What NF4 saves on a realistic set of linear weights, and what dequantizing one costs. Not a test:
 * it measures; {@code Nf4FootprintTest} asserts the size goal.
 *
 * <p>The layer set is Llama-3.2-1B's (its {@code config.json}: hidden_size 2048, intermediate_size
 * 8192, 16 layers, 32 attention heads and 8 key/value heads of head_dim 64): per layer q/k/v/o and
 * gate/up/down projections, the weights QLoRA quantizes (embeddings, norms and the tied head stay
 * in 16 bits). Sizes are computed from the shapes with {@link Nf4Weight#residentBytes(long, int,
 * boolean)}, so nothing of 4 GB is materialised; dequantize times come from one random weight
 * (normal, std 0.02) of each distinct shape.
 *
 * <p>{@code Nf4Footprint [REPS]}: prints a table (Markdown) to standard output.
 */
public final class Nf4Footprint {
    /** One linear weight: a Hugging Face module name and its (out, in) shape. */
    public record Linear(String name, long out, long in) {
        public long elements() {
            return out * in;
        }
    }

    /** Bytes of a layer set held as fp32, bf16, NF4, and NF4 with double quantization. */
    public record Sizes(long parameters, long fp32, long bf16, long nf4, long nf4Double) {
        public double nf4OverFp32() {
            return (double) nf4 / fp32;
        }

        public double nf4DoubleOverFp32() {
            return (double) nf4Double / fp32;
        }
    }

    private Nf4Footprint() {}

    /** The 112 projection weights of Llama-3.2-1B (16 layers x 7). */
    public static List<Linear> llama32OneB() {
        int hidden = 2048;
        int intermediate = 8192;
        int kvWidth = 8 * 64;
        List<Linear> out = new ArrayList<>();
        for (int layer = 0; layer < 16; layer++) {
            String p = "model.layers." + layer + ".";
            out.add(new Linear(p + "self_attn.q_proj", hidden, hidden));
            out.add(new Linear(p + "self_attn.k_proj", kvWidth, hidden));
            out.add(new Linear(p + "self_attn.v_proj", kvWidth, hidden));
            out.add(new Linear(p + "self_attn.o_proj", hidden, hidden));
            out.add(new Linear(p + "mlp.gate_proj", intermediate, hidden));
            out.add(new Linear(p + "mlp.up_proj", intermediate, hidden));
            out.add(new Linear(p + "mlp.down_proj", hidden, intermediate));
        }
        return out;
    }

    public static Sizes sizes(List<Linear> linears, int blocksize) {
        long params = 0;
        long nf4 = 0;
        long nf4Double = 0;
        for (Linear l : linears) {
            params += l.elements();
            nf4 += Nf4Weight.residentBytes(l.elements(), blocksize, false);
            nf4Double += Nf4Weight.residentBytes(l.elements(), blocksize, true);
        }
        return new Sizes(params, 4 * params, 2 * params, nf4, nf4Double);
    }

    /** A random weight of a shape, quantized. */
    public static Nf4Weight randomWeight(Linear shape, boolean doubleQuant, long seed) {
        Random random = new Random(seed);
        float[] values = new float[Math.toIntExact(shape.elements())];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) random.nextGaussian() * 0.02f;
        }
        return Nf4.quantize(
                values,
                new long[] {shape.out(), shape.in()},
                Dtype.BF16,
                Nf4.DEFAULT_BLOCKSIZE,
                doubleQuant);
    }

    /** Median milliseconds of {@code reps} dequantizations (after one untimed). */
    public static double dequantizeMillis(Nf4Weight w, NDManager manager, int reps) {
        double[] times = new double[reps];
        for (int r = -1; r < reps; r++) {
            try (NDManager step = manager.newSubManager()) {
                long start = System.nanoTime();
                NDArray dense = w.dequantize(step);
                dense.toFloatArray(); // waits for the device; on the CPU the work is done already
                if (r >= 0) {
                    times[r] = (System.nanoTime() - start) / 1e6;
                }
            }
        }
        Arrays.sort(times);
        return times[reps / 2];
    }

    public static void main(String[] args) {
        int reps = args.length > 0 ? Integer.parseInt(args[0]) : 5;
        List<Linear> set = llama32OneB();
        Sizes s = sizes(set, Nf4.DEFAULT_BLOCKSIZE);
        System.out.printf(
                Locale.ROOT,
                "| Llama-3.2-1B linear weights (%d, %,d parameters) | bytes | MiB | vs fp32 |%n",
                set.size(),
                s.parameters());
        System.out.println("|---|---:|---:|---:|");
        row("fp32", s.fp32(), s.fp32());
        row("bf16", s.bf16(), s.fp32());
        row("NF4, blocksize 64", s.nf4(), s.fp32());
        row("NF4, blocksize 64, double quant", s.nf4Double(), s.fp32());
        EngineRuntime runtime = EngineRuntime.start(2);
        System.out.printf(
                Locale.ROOT,
                "%n| dequantize to fp32 (%s, %s) | shape | NF4 ms | NF4+DQ ms |%n",
                runtime.deviceName(),
                "median of " + reps);
        System.out.println("|---|---|---:|---:|");
        try (NDManager manager = NDManager.newBaseManager(runtime.device(), EngineRuntime.ENGINE)) {
            for (Linear l : List.of(set.get(0), set.get(1), set.get(4), set.get(6))) {
                double plain = dequantizeMillis(randomWeight(l, false, 1), manager, reps);
                double dq = dequantizeMillis(randomWeight(l, true, 1), manager, reps);
                System.out.printf(
                        Locale.ROOT,
                        "| %s | %d x %d | %.1f | %.1f |%n",
                        l.name().substring(l.name().lastIndexOf('.') + 1),
                        l.out(),
                        l.in(),
                        plain,
                        dq);
            }
        }
    }

    private static void row(String what, long bytes, long fp32) {
        System.out.printf(
                Locale.ROOT,
                "| %s | %,d | %.1f | %.4f |%n",
                what,
                bytes,
                bytes / 1048576.0,
                (double) bytes / fp32);
    }
}
