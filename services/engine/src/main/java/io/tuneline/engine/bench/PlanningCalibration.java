package io.tuneline.engine.bench;

import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.plan.Device;
import io.tuneline.engine.plan.Estimate;
import io.tuneline.engine.plan.Estimator;
import io.tuneline.engine.plan.ModelShape;
import io.tuneline.engine.plan.TrainingPlan;
import io.tuneline.engine.runtime.EngineRuntime;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.OptionalLong;

/**
 * The pre-flight estimate against a measured run, one model and method per process (so the
 * process's peak resident memory is that run's): the training benchmark's workloads ({@code
 * TrainingThroughput}) trains {@code WARMUP} untimed steps, 10 timed steps (what the estimate's
 * refinement sees), then {@code STEPS} more timed steps (what it predicts), in one run. Prints one
 * JSON line with the estimate beside the measurement; {@code bench/planning.sh} runs it for every
 * benchmark model and method and writes the table of docs/planning.md.
 *
 * <pre>PlanningCalibration minilm|gpt2 METHOD STEPS DIR</pre>
 */
public final class PlanningCalibration {
    private static final int WARMUP = 3;
    private static final int FIRST = 10;

    private PlanningCalibration() {}

    /** The estimate of a benchmark workload, from its config alone. */
    static Estimate estimate(String model, String method, long steps) {
        ModelShape shape;
        FineTuningMethod planned;
        int batch;
        int seq;
        switch (model) {
            case "minilm" -> {
                shape = new ModelShape.Encoder(BertConfig.miniLmL6(), false, 2);
                planned = TrainingThroughput.method(method, FineTuningMethod.Lora.defaults());
                batch = MiniLmWorkload.BATCH;
                seq = MiniLmWorkload.SEQ;
            }
            case "gpt2" -> {
                shape = new ModelShape.Gpt2(Gpt2Workload.SHAPE);
                planned = TrainingThroughput.method(method, FineTuningMethod.Lora.gpt2Defaults());
                batch = Gpt2Workload.BATCH;
                seq = Gpt2Workload.SEQ;
            }
            default -> throw new IllegalArgumentException("model: minilm or gpt2");
        }
        return Estimator.estimate(
                new TrainingPlan(shape, planned, batch, seq, 1, OptionalLong.of(steps)),
                Device.cpu(Device.availableMemory()));
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
                            row.path("first_steps").asLong() + row.path("steps").asLong());
            row.put("estimated_trainable", e.trainableParameters());
            row.put("estimated_peak_mib", e.peakBytes() / Device.MIB);
            row.put("weights_mib", e.weightBytes() / Device.MIB);
            row.put("gradients_mib", e.gradientBytes() / Device.MIB);
            row.put("optimizer_mib", e.optimizerBytes() / Device.MIB);
            row.put("activations_mib", e.activationBytes() / Device.MIB);
            row.put("workspace_mib", e.workspaceBytes() / Device.MIB);
            row.put("runtime_mib", e.runtimeBytes() / Device.MIB);
            row.put("estimated_step_seconds", e.secondsPerStep());
            row.put("gflops_per_step", e.flopsPerStep() / 1e9);
            lines.append(json.writeValueAsString(row)).append('\n');
        }
        Files.writeString(out, lines.toString());
    }

    public static void main(String[] args) throws Exception {
        if (args.length == 3 && args[0].equals("reestimate")) {
            reestimate(Path.of(args[1]), Path.of(args[2]));
            return;
        }
        if (args.length != 4) {
            throw new IllegalArgumentException(
                    "usage: PlanningCalibration minilm|gpt2 METHOD STEPS DIR"
                            + " | reestimate MEASURED.jsonl OUT.jsonl");
        }
        String model = args[0];
        String method = args[1];
        int steps = Integer.parseInt(args[2]);
        Path dir = Files.createDirectories(Path.of(args[3]));
        Estimate estimate = estimate(model, method, FIRST + steps);
        EngineRuntime runtime = EngineRuntime.start(2);
        try (TrainingThroughput.Workload w =
                model.equals("minilm")
                        ? MiniLmWorkload.open(runtime, method, dir)
                        : Gpt2Workload.open(runtime, method, dir)) {
            // One run (one optimizer state, as a job has), timed step by step.
            long[] at = new long[WARMUP + FIRST + steps + 1];
            int[] done = {0};
            at[0] = System.nanoTime();
            w.train(WARMUP + FIRST + steps, 1, r -> at[++done[0]] = System.nanoTime());
            double first = (at[WARMUP + FIRST] - at[WARMUP]) / 1e9;
            double rest = (at[WARMUP + FIRST + steps] - at[WARMUP + FIRST]) / 1e9;
            double refined =
                    Estimator.refineTotalSeconds(FIRST, first, FIRST + steps).getAsDouble() - first;
            System.out.printf(
                    Locale.ROOT,
                    "{\"model\":\"%s\",\"method\":\"%s\",\"trainable\":%d,"
                            + "\"estimated_trainable\":%d,\"total\":%d,\"peak_mib\":%d,"
                            + "\"estimated_peak_mib\":%d,\"weights_mib\":%d,\"gradients_mib\":%d,"
                            + "\"optimizer_mib\":%d,\"activations_mib\":%d,\"workspace_mib\":%d,"
                            + "\"runtime_mib\":%d,\"first_steps\":%d,\"first_seconds\":%.3f,"
                            + "\"steps\":%d,\"seconds\":%.3f,\"estimated_step_seconds\":%.3f,"
                            + "\"refined_seconds\":%.3f,\"gflops_per_step\":%.2f}%n",
                    model,
                    method,
                    w.trainable(),
                    estimate.trainableParameters(),
                    estimate.totalParameters(),
                    TrainingThroughput.peakRssMb(),
                    estimate.peakBytes() / Device.MIB,
                    estimate.weightBytes() / Device.MIB,
                    estimate.gradientBytes() / Device.MIB,
                    estimate.optimizerBytes() / Device.MIB,
                    estimate.activationBytes() / Device.MIB,
                    estimate.workspaceBytes() / Device.MIB,
                    estimate.runtimeBytes() / Device.MIB,
                    FIRST,
                    first,
                    steps,
                    rest,
                    estimate.secondsPerStep(),
                    refined,
                    estimate.flopsPerStep() / 1e9);
        }
    }
}
