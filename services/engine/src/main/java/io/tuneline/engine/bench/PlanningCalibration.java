package io.tuneline.engine.bench;

import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.llama.LlamaConfig;
import io.tuneline.engine.plan.Device;
import io.tuneline.engine.plan.Estimate;
import io.tuneline.engine.plan.Estimator;
import io.tuneline.engine.plan.ModelShape;
import io.tuneline.engine.plan.ParameterLayout;
import io.tuneline.engine.plan.TrainingPlan;
import io.tuneline.engine.runtime.EngineRuntime;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.OptionalLong;

/**
 * The pre-flight estimate against a measured run, one model and method per process (so the
 * process's peak resident memory is that run's): the training benchmark's workloads ({@code
 * TrainingThroughput}) train {@value #FIRST} + {@code STEPS} steps as one run, as a job would (no
 * untimed warm-up: the first steps' extra cost is part of a job's time too). At step {@value
 * #FIRST} the run's own time-left figure ({@code eta_seconds} of the worker's progress events) plus
 * the time elapsed is the refined total; the run's measured total is compared with it and with the
 * pre-flight total. Prints one JSON line; {@code bench/planning.sh} runs it for every benchmark
 * model and method and writes the table of docs/planning.md.
 *
 * <pre>PlanningCalibration minilm|gpt2|llama METHOD STEPS DIR</pre>
 *
 * <p>METHOD is a benchmark method of {@code TrainingThroughput}; for llama optionally with a
 * precision ({@code lora@bf16}) and {@code :ckpt} for activation checkpointing ({@code
 * qlora:ckpt}), which only the Llama family's trainer can apply.
 */
public final class PlanningCalibration {
    private static final int FIRST = 10;

    /** libtorch's threads, as bench/planning.sh's -Dai.djl.pytorch.num_threads sets them. */
    private static final int THREADS = 2;

    private PlanningCalibration() {}

    /** The estimate of a benchmark workload, from its config alone. */
    static Estimate estimate(String model, String method, long steps) {
        boolean checkpointing = method.endsWith(LlamaWorkload.CHECKPOINTING);
        String[] parts =
                (checkpointing
                                ? method.substring(
                                        0, method.length() - LlamaWorkload.CHECKPOINTING.length())
                                : method)
                        .split("@", 2);
        if (!model.equals("llama") && (checkpointing || parts.length > 1)) {
            throw new IllegalArgumentException(
                    "a precision or :ckpt only for llama (the only family the engine checkpoints"
                            + " and the only workload that applies a precision), was "
                            + method);
        }
        ModelShape shape;
        FineTuningMethod planned;
        int batch;
        int seq;
        switch (model) {
            case "minilm" -> {
                shape = new ModelShape.Encoder(BertConfig.miniLmL6(), false, 2);
                planned = TrainingThroughput.method(parts[0], FineTuningMethod.Lora.defaults());
                batch = MiniLmWorkload.BATCH;
                seq = MiniLmWorkload.SEQ;
            }
            case "gpt2" -> {
                shape = new ModelShape.Gpt2(Gpt2Workload.SHAPE);
                planned = TrainingThroughput.method(parts[0], FineTuningMethod.Lora.gpt2Defaults());
                batch = Gpt2Workload.BATCH;
                seq = Gpt2Workload.SEQ;
            }
            case "llama" -> {
                shape = new ModelShape.Llama(LlamaConfig.parse(LlamaWorkload.SHAPE));
                planned =
                        TrainingThroughput.method(
                                parts[0],
                                new FineTuningMethod.Lora(
                                        8,
                                        16f,
                                        0.05f,
                                        ParameterLayout.of(shape).defaultLoraTargets()));
                batch = LlamaWorkload.BATCH;
                seq = LlamaWorkload.SEQ;
            }
            default -> throw new IllegalArgumentException("model: minilm, gpt2 or llama");
        }
        TrainingPlan plan =
                new TrainingPlan(shape, planned, batch, seq, 1, OptionalLong.of(steps))
                        .withPrecision(
                                TrainingPlan.Precision.of(parts.length > 1 ? parts[1] : "fp32"))
                        .withActivationCheckpointing(checkpointing);
        // The runs use 2 threads (bench/planning.sh) whatever the machine has.
        return Estimator.estimate(plan, Device.cpu(Device.availableMemory(), THREADS));
    }

    /**
     * Recomputes the estimate of every measured line with the estimator as it is now (after its
     * constants were fitted to those measurements), keeping the measured figures: the table of
     * docs/planning.md without running the workloads again.
     */
    static void reestimate(Path measured, Path out) throws java.io.IOException {
        com.fasterxml.jackson.databind.ObjectMapper json =
                new com.fasterxml.jackson.databind.ObjectMapper();
        StringBuilder lines = new StringBuilder();
        for (String line : Files.readAllLines(measured)) {
            if (line.isBlank()) {
                continue;
            }
            var row = (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(line);
            Estimate e =
                    estimate(
                            row.path("model").asText(),
                            row.path("method").asText(),
                            row.path("steps").asLong());
            put(row, e);
            lines.append(json.writeValueAsString(row)).append('\n');
        }
        Files.writeString(out, lines.toString());
    }

    private static void put(com.fasterxml.jackson.databind.node.ObjectNode row, Estimate e) {
        row.put("estimated_trainable", e.trainableParameters());
        row.put("total", e.totalParameters());
        row.put("estimated_peak_mib", e.peakBytes() / Device.MIB);
        row.put("weights_mib", e.weightBytes() / Device.MIB);
        row.put("gradients_mib", e.gradientBytes() / Device.MIB);
        row.put("optimizer_mib", e.optimizerBytes() / Device.MIB);
        row.put("activations_mib", e.activationBytes() / Device.MIB);
        row.put("workspace_mib", e.workspaceBytes() / Device.MIB);
        row.put("runtime_mib", e.runtimeBytes() / Device.MIB);
        row.put("estimated_step_seconds", e.secondsPerStep());
        row.put("estimated_total_seconds", e.totalSeconds().orElse(Double.NaN));
        row.put("gflops_per_step", e.flopsPerStep() / 1e9);
    }

    public static void main(String[] args) throws Exception {
        if (args.length == 3 && args[0].equals("reestimate")) {
            reestimate(Path.of(args[1]), Path.of(args[2]));
            return;
        }
        if (args.length != 4) {
            throw new IllegalArgumentException(
                    "usage: PlanningCalibration minilm|gpt2|llama METHOD STEPS DIR"
                            + " | reestimate MEASURED.jsonl OUT.jsonl");
        }
        String model = args[0];
        String method = args[1];
        int steps = FIRST + Integer.parseInt(args[2]);
        Path dir = Files.createDirectories(Path.of(args[3]));
        Estimate estimate = estimate(model, method, steps);
        EngineRuntime runtime = EngineRuntime.start(THREADS);
        try (TrainingThroughput.Workload w =
                switch (model) {
                    case "minilm" -> MiniLmWorkload.open(runtime, method, dir);
                    case "gpt2" -> Gpt2Workload.open(runtime, method, dir);
                    default -> LlamaWorkload.open(runtime, method, dir);
                }) {
            // One run (one optimizer state, as a job has), timed step by step.
            long[] at = new long[steps + 1];
            long[] eta = {-1};
            at[0] = System.nanoTime();
            w.train(
                    steps,
                    1,
                    r -> {
                        at[(int) r.step()] = System.nanoTime();
                        if (r.step() == FIRST) {
                            eta[0] = r.etaSeconds();
                        }
                    });
            StringBuilder stepSeconds = new StringBuilder();
            for (int i = 1; i <= steps; i++) {
                stepSeconds
                        .append(i > 1 ? "," : "")
                        .append(String.format(Locale.ROOT, "%.3f", (at[i] - at[i - 1]) / 1e9));
            }
            var json = new com.fasterxml.jackson.databind.ObjectMapper();
            var row = json.createObjectNode();
            row.put("model", model);
            row.put("method", method);
            row.put("trainable", w.trainable());
            row.put("peak_mib", TrainingThroughput.peakRssMb());
            // The JVM heap's share of the peak: what the garbage a run makes touches, which the
            // estimate's fixed runtime term stands for (docs/planning.md).
            long heapPeak = 0;
            for (var pool : java.lang.management.ManagementFactory.getMemoryPoolMXBeans()) {
                if (pool.getType() == java.lang.management.MemoryType.HEAP) {
                    heapPeak += pool.getPeakUsage().getCommitted();
                }
            }
            row.put("heap_peak_committed_mib", heapPeak / Device.MIB);
            row.put("steps", steps);
            row.put("first_steps", FIRST);
            row.put("first_seconds", (at[FIRST] - at[0]) / 1e9);
            row.put("total_seconds", (at[steps] - at[0]) / 1e9);
            row.put("refined_total_seconds", (at[FIRST] - at[0]) / 1e9 + eta[0]);
            row.putRawValue(
                    "step_seconds",
                    new com.fasterxml.jackson.databind.util.RawValue("[" + stepSeconds + "]"));
            put(row, estimate);
            System.out.println(json.writeValueAsString(row));
        }
    }
}
