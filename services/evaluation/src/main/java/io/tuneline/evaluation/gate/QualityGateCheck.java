package io.tuneline.evaluation.gate;

import io.tuneline.proto.v1.GateReference;
import io.tuneline.proto.v1.QualityGate;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Applies a job's quality gate to the tuned model's metrics. For metrics where lower is better
 * (perplexity, calibration error, loss), a "minimum" is read as the worst acceptable value and a
 * regression is a rise.
 */
public final class QualityGateCheck {
    static final Set<String> LOWER_IS_BETTER =
            Set.of("perplexity", "ece", "loss", "validation_loss");

    private QualityGateCheck() {}

    /**
     * @param reference the metrics of the model the gate compares against (base model, or the
     *     registry's production version); empty when there is none
     */
    public static GateVerdict check(
            QualityGate gate, Map<String, Double> tuned, Optional<Map<String, Double>> reference) {
        List<String> reasons = new ArrayList<>();
        List<String> notes = new ArrayList<>();
        gate.getMinMetricsMap()
                .forEach(
                        (metric, bound) -> {
                            Double value = tuned.get(metric);
                            if (value == null) {
                                reasons.add(missing(metric, tuned));
                                return;
                            }
                            boolean lower = LOWER_IS_BETTER.contains(metric);
                            if (lower ? value > bound : value < bound) {
                                reasons.add(
                                        String.format(
                                                Locale.ROOT,
                                                "%s %.4f %s %s %.4f",
                                                metric,
                                                value,
                                                lower ? ">" : "<",
                                                lower ? "maximum" : "minimum",
                                                bound));
                            }
                        });
        String against =
                gate.getReference() == GateReference.GATE_REFERENCE_PRODUCTION
                        ? "the production version"
                        : "the base model";
        gate.getMaxRegressionMap()
                .forEach(
                        (metric, allowed) -> {
                            Double value = tuned.get(metric);
                            if (value == null) {
                                reasons.add(missing(metric, tuned));
                                return;
                            }
                            Optional<Double> before = reference.map(r -> r.get(metric));
                            if (before.isEmpty()) {
                                notes.add(
                                        "regression of "
                                                + metric
                                                + " not checked: "
                                                + (reference.isEmpty()
                                                        ? "there is no "
                                                                + against.substring(4)
                                                                + " to compare with"
                                                        : against + " has no " + metric));
                                return;
                            }
                            boolean lower = LOWER_IS_BETTER.contains(metric);
                            double regression = lower ? value - before.get() : before.get() - value;
                            if (regression > allowed + 1e-12) {
                                reasons.add(
                                        String.format(
                                                Locale.ROOT,
                                                "%s %s by %.4f against %s (%.4f -> %.4f); at most %.4f"
                                                        + " allowed",
                                                metric,
                                                lower ? "rose" : "dropped",
                                                regression,
                                                against,
                                                before.get(),
                                                value,
                                                allowed));
                            }
                        });
        return new GateVerdict(reasons.isEmpty(), List.copyOf(reasons), List.copyOf(notes));
    }

    private static String missing(String metric, Map<String, Double> tuned) {
        return "metric '"
                + metric
                + "' named in the gate was not computed; available: "
                + String.join(", ", new java.util.TreeSet<>(tuned.keySet()));
    }

    /**
     * The scenario's limits ({@code evaluation.scenario}'s max_p95_latency_ms, max_error_rate,
     * min_agreement), each checked only when set; one reason per limit exceeded.
     */
    public static List<String> scenario(
            io.tuneline.proto.v1.ScenarioSpec spec, io.tuneline.proto.v1.ScenarioResult result) {
        List<String> reasons = new ArrayList<>();
        if (spec.getMaxP95LatencyMs() > 0 && result.getP95Ms() > spec.getMaxP95LatencyMs()) {
            reasons.add(
                    String.format(
                            java.util.Locale.ROOT,
                            "scenario p95 latency %.0f ms > maximum %.0f ms",
                            result.getP95Ms(),
                            spec.getMaxP95LatencyMs()));
        }
        if (spec.getMaxErrorRate() > 0 && result.getErrorRate() > spec.getMaxErrorRate()) {
            reasons.add(
                    String.format(
                            java.util.Locale.ROOT,
                            "scenario error rate %.4f > maximum %.4f (%d of %d requests failed)",
                            result.getErrorRate(),
                            spec.getMaxErrorRate(),
                            result.getErrors(),
                            result.getRequests()));
        }
        if (spec.getMinAgreement() > 0
                && result.getAgreement() >= 0
                && result.getAgreement() < spec.getMinAgreement()) {
            reasons.add(
                    String.format(
                            java.util.Locale.ROOT,
                            "scenario agreement with the offline answers %.4f < minimum %.4f",
                            result.getAgreement(),
                            spec.getMinAgreement()));
        }
        return reasons;
    }
}
