package io.tuneline.evaluation.report;

import io.tuneline.evaluation.gate.GateVerdict;
import io.tuneline.evaluation.metrics.ClassificationReport;
import io.tuneline.evaluation.metrics.Estimate;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Everything an evaluation found, the source of {@code evaluation.json}, {@code .md} and {@code
 * .html}.
 *
 * @param examples how many test examples were scored
 * @param tunedDetail per-class detail of a classifier; null for a causal language model
 * @param tuned headline metrics of the tuned model with their intervals
 * @param base the same for the base model; empty when it was not evaluated
 * @param lossCurve the training run's per-step losses, for the loss chart
 * @param generations a few greedy answers of a causal LM next to their references
 * @param scenario the replay against the serving service, when the job asked for one
 */
public record EvaluationReport(
        String jobId,
        String model,
        String primaryMetric,
        int examples,
        ClassificationReport tunedDetail,
        Map<String, Estimate> tuned,
        Optional<Map<String, Estimate>> base,
        List<Robustness> robustness,
        GateVerdict gate,
        List<LossPoint> lossCurve,
        List<Generation> generations,
        Optional<io.tuneline.proto.v1.ScenarioResult> scenario) {

    /** A classifier's report. */
    public EvaluationReport(
            String jobId,
            String model,
            String primaryMetric,
            ClassificationReport tunedDetail,
            Map<String, Estimate> tuned,
            Optional<Map<String, Estimate>> base,
            List<Robustness> robustness,
            GateVerdict gate,
            List<LossPoint> lossCurve) {
        this(
                jobId,
                model,
                primaryMetric,
                tunedDetail.examples(),
                tunedDetail,
                tuned,
                base,
                robustness,
                gate,
                lossCurve,
                List.of(),
                Optional.empty());
    }

    /** One test prompt, its reference completion and the models' greedy answers. */
    public record Generation(
            String prompt, String reference, String tuned, Optional<String> base) {}

    /** Accuracy under one perturbation or attack. */
    public record Robustness(
            String name, double accuracy, double accuracyDrop, double attackSuccessRate) {}

    /** One point of the training loss curve. */
    public record LossPoint(long step, double loss, Optional<Double> validationLoss) {}

    /** Tuned minus base for every metric both have. */
    public Map<String, Double> differences() {
        var diff = new java.util.LinkedHashMap<String, Double>();
        base.ifPresent(
                b ->
                        tuned.forEach(
                                (name, t) -> {
                                    Estimate before = b.get(name);
                                    if (before != null) {
                                        diff.put(name, t.value() - before.value());
                                    }
                                }));
        return diff;
    }
}
