package io.tuneline.engine.bench;

import ai.djl.pytorch.jni.JniUtils;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.TrainingListener;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * Training throughput of the engine, for {@code bench/training-throughput.sh}, which runs the same
 * steps in plain PyTorch beside it. Not a test: it measures, it asserts nothing.
 *
 * <p>{@code TrainingThroughput MODEL METHOD STEPS DIR}: MODEL is {@code minilm} ({@link
 * MiniLmWorkload}), {@code gpt2} ({@link Gpt2Workload}) or {@code llama} ({@link LlamaWorkload});
 * METHOD is full, freeze (the top two layers and whatever the model always trains), lora (r=8 with
 * the model's default targets) or qlora; for llama a precision may follow ({@code lora@bf16}). The
 * JSON line's {@code method} is METHOD as given. Warms up with a run of {@value #WARMUP} steps,
 * then times STEPS steps of the engine's own trainer after {@value #WARMUP} untimed ones of the
 * same run (as the peer does) and prints one JSON line. The model's weights for the PyTorch side
 * are written into DIR when absent, so the script's first, untimed run pays for writing them.
 *
 * <p>{@code TrainingThroughput MODEL METHOD STEPS DIR profile} splits the same timed steps into
 * phases ({@link StepProfile}) and adds them to the line as {@code "profile"}; the instrumentation
 * slows the steps a little, so its tokens/s are not the benchmark's. With {@code -DopTrace=FILE}
 * the timed run (untimed steps included) is recorded by libtorch's profiler into FILE, a Chrome
 * trace of every aten op with its input shapes, which {@code bench/op_trace.py FILE STEPS} sums by
 * op and by shape: where the native time goes, op by op.
 */
public final class TrainingThroughput {
    static final int WARMUP = 3;

    private TrainingThroughput() {}

    /** A model prepared for one method, and the engine's trainer for it. */
    interface Workload extends AutoCloseable {
        /** Parameters the method trains, to compare with the PyTorch side's count. */
        long trainable();

        int tokensPerStep();

        /** Trains {@code steps} steps on {@code steps} fresh batches made from {@code seed}. */
        default void train(int steps, long seed) {
            train(steps, seed, r -> {});
        }

        /** As {@link #train(int, long)}, telling {@code listener} of every step. */
        void train(int steps, long seed, TrainingListener listener);

        @Override
        void close();
    }

    public static void main(String[] args) throws Exception {
        boolean profile = args.length == 5 && args[4].equals("profile");
        if (args.length != 4 && !profile) {
            throw new IllegalArgumentException(
                    "usage: TrainingThroughput minilm|gpt2|llama full|freeze|lora|qlora[@bf16]"
                            + " STEPS DIR"
                            + " [profile]");
        }
        String model = args[0];
        String method = args[1];
        int steps = Integer.parseInt(args[2]);
        Path dir = Files.createDirectories(Path.of(args[3]));
        if (profile) {
            StepProfile.install();
        }
        EngineRuntime runtime = EngineRuntime.start(2);
        rss("engine started");
        try (Workload w =
                switch (model) {
                    case "minilm" -> MiniLmWorkload.open(runtime, method, dir);
                    case "gpt2" -> Gpt2Workload.open(runtime, method, dir);
                    case "llama" -> LlamaWorkload.open(runtime, method, dir);
                    default -> throw new IllegalArgumentException("model: minilm, gpt2 or llama");
                }) {
            rss("model loaded");
            if (Boolean.getBoolean("gcAfterLoad")) {
                System.gc();
                rss("after gc");
            }
            w.train(WARMUP, 1);
            rss("warmed up");
            String trace = System.getProperty("opTrace");
            if (trace != null) {
                // libtorch's own profiler, with each op's input shapes; bench/op_trace.py sums it.
                JniUtils.startProfile(false, true, false);
            }
            double seconds = profile ? profiledRun(w, steps) : timedRun(w, steps);
            if (trace != null) {
                JniUtils.stopProfile(trace);
            }
            rss("trained");
            System.out.printf(
                    Locale.ROOT,
                    "{\"impl\":\"djl\",\"model\":\"%s\",\"method\":\"%s\",\"steps\":%d,\"seconds\":%.3f,\"tokens_per_second\":%.1f,\"trainable\":%d,\"peak_rss_mb\":%d%s}%n",
                    model,
                    method,
                    steps,
                    seconds,
                    (double) steps * w.tokensPerStep() / seconds,
                    w.trainable(),
                    peakRssMb(),
                    profile ? ",\"profile\":" + StepProfile.json(steps) : "");
            if (profile) {
                // Where each phase's count comes from, for the reader of a profile run.
                System.err.print(StepProfile.byName(steps));
            }
        }
    }

    /**
     * Seconds of {@code steps} steps timed as the PyTorch peer times them ({@code time_steps} in
     * bench/torch_minilm_train.py): in one run, after {@value #WARMUP} untimed steps, from the end
     * of the last untimed step to the end of the last step. The run's own start (the optimizer's
     * moments, its compiled kernel, the first step's allocations) and end fall outside, as the
     * peer's optimizer and its state are made before its clock starts.
     */
    private static double timedRun(Workload w, int steps) {
        long[] ends = new long[WARMUP + steps];
        int[] done = {0};
        w.train(WARMUP + steps, 2, r -> ends[done[0]++] = System.nanoTime());
        if (done[0] != ends.length) {
            throw new IllegalStateException(
                    "the run reported " + done[0] + " steps, not " + ends.length);
        }
        return (ends[ends.length - 1] - ends[WARMUP - 1]) / 1e9;
    }

    /**
     * Seconds of a run of {@code steps} steps under the profiler, whose phases are reset first: the
     * whole run is profiled (and timed), so each phase's count divides evenly by the steps.
     */
    private static double profiledRun(Workload w, int steps) {
        StepProfile.reset();
        long start = System.nanoTime();
        w.train(steps, 2);
        return (System.nanoTime() - start) / 1e9;
    }

    /**
     * The benchmark's methods: full, freeze (the top two layers, plus what the model's {@code
     * Freeze} always trains) or {@code lora}, the model's LoRA defaults.
     */
    static FineTuningMethod method(String name, FineTuningMethod.Lora lora) {
        return switch (name) {
            case "full" -> new FineTuningMethod.Full();
            case "freeze" -> new FineTuningMethod.Freeze(2, false, List.of());
            case "lora" -> lora;
            // The same LoRA on a base whose every linear layer is NF4 (blocks of 64, double
            // quantization): the dequantization cost and the memory it saves, side by side.
            case "qlora" -> new FineTuningMethod.Qlora(lora);
            // The job spec's defaults of the other methods, for the planning calibration
            // (bench/planning.sh): Pfeiffer adapters, 20 virtual tokens.
            case "adapter" -> FineTuningMethod.Adapter.pfeiffer();
            case "prefix" -> FineTuningMethod.Prefix.of(20);
            case "prompt" -> FineTuningMethod.Prompt.defaults();
            case "p_tuning" -> FineTuningMethod.PTuning.defaults();
            default ->
                    throw new IllegalArgumentException(
                            "method: full, freeze, lora, qlora, adapter, prefix, prompt or"
                                    + " p_tuning");
        };
    }

    /**
     * The resident memory now and at peak, to stderr: where the peak is reached (loading or
     * training) and what the heap holds then.
     */
    private static void rss(String stage) throws IOException {
        Runtime r = Runtime.getRuntime();
        String rss = "?";
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                rss = Long.parseLong(line.replaceAll("\\D", "")) / 1024 + "";
            }
        }
        System.err.printf(
                Locale.ROOT,
                "rss %s: %s MiB (peak %d MiB), heap committed %d MiB, used %d MiB%n",
                stage,
                rss,
                peakRssMb(),
                r.totalMemory() >> 20,
                (r.totalMemory() - r.freeMemory()) >> 20);
    }

    /** The process's peak resident memory (VmHWM), in MiB. */
    static long peakRssMb() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmHWM:")) {
                return Long.parseLong(line.replaceAll("\\D", "")) / 1024;
            }
        }
        return -1;
    }
}
