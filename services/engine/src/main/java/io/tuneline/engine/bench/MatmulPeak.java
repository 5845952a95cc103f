package io.tuneline.engine.bench;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import io.tuneline.engine.runtime.EngineRuntime;
import java.util.Arrays;
import java.util.Locale;

/**
 * This machine's matrix-multiply peak through the engine's libtorch: a large square float32 matmul
 * on the same threads the training benchmark uses, the yardstick its full fine-tuning step's
 * achieved GFLOP/s is set against (bench/training-throughput.sh; bench/matmul_peak.py measures the
 * PyTorch peer's own libtorch the same way). Prints one JSON line: the median and best GFLOP/s of
 * {@code reps} products of two n x n matrices after two untimed ones.
 *
 * <p>Usage: {@code MatmulPeak [n] [reps] [m k]} (defaults 2048 and 10): an m x k by k x n product
 * when m and k are given (a layer's shape: tokens x hidden by hidden x out), else n x n by n x n.
 */
public final class MatmulPeak {
    private MatmulPeak() {}

    public static void main(String[] args) {
        int n = args.length > 0 ? Integer.parseInt(args[0]) : 2048;
        int reps = args.length > 1 ? Integer.parseInt(args[1]) : 10;
        int m = args.length > 3 ? Integer.parseInt(args[2]) : n;
        int k = args.length > 3 ? Integer.parseInt(args[3]) : n;
        EngineRuntime runtime = EngineRuntime.start(2);
        double[] gflops = new double[reps];
        try (NDManager manager = NDManager.newBaseManager(runtime.device(), EngineRuntime.ENGINE)) {
            NDArray a = manager.randomNormal(new Shape(m, k));
            NDArray b = manager.randomNormal(new Shape(k, n));
            for (int i = -2; i < reps; i++) {
                long start = System.nanoTime();
                try (NDArray c = a.matMul(b)) {
                    // Reading one value back waits for the product (asynchronous on a GPU).
                    c.getFloat(0, 0);
                }
                long nanos = System.nanoTime() - start;
                if (i >= 0) {
                    gflops[i] = 2.0 * m * k * (double) n / nanos;
                }
            }
        }
        double[] sorted = gflops.clone();
        Arrays.sort(sorted);
        System.out.printf(
                Locale.ROOT,
                "{\"impl\": \"djl\", \"model\": \"matmul\", \"method\": \"peak\", \"m\": %d,"
                        + " \"k\": %d, \"n\": %d, \"reps\": %d, \"gflops_median\": %.1f, \"gflops_best\": %.1f,"
                        + " \"libtorch\": \"%s\", \"device\": \"%s\"}%n",
                m,
                k,
                n,
                reps,
                sorted[reps / 2],
                sorted[reps - 1],
                runtime.version(),
                runtime.deviceName());
    }
}
