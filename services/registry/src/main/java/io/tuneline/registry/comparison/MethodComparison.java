package io.tuneline.registry.comparison;

import io.tuneline.proto.v1.EvaluationCompleted;
import io.tuneline.proto.v1.MetricValue;
import io.tuneline.proto.v1.TrainingCompleted;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * A method-comparison job's methods side by side, once every method is evaluated: quality on the
 * shared test split with its interval, cost (trainable parameters, peak memory, tokens/s, wall
 * time), and which method wins on the primary metric.
 *
 * @param methods one row per method, in the job's order
 */
public record MethodComparison(
        String jobId, String primaryMetric, boolean lowerIsBetter, List<Method> methods) {

    /**
     * Metrics where lower is better, as the evaluation's quality gate reads them
     * (QualityGateCheck.LOWER_IS_BETTER there); everything else counts higher as better.
     */
    static final Set<String> LOWER_IS_BETTER =
            Set.of("perplexity", "ece", "loss", "validation_loss");

    /** One method's result. {@code value} is NaN when its evaluation has no primary metric. */
    public record Method(
            String name,
            String runId,
            double value,
            double ciLower,
            double ciUpper,
            Optional<Double> base,
            long trainableParameters,
            long totalParameters,
            long peakMemoryBytes,
            double tokensPerSecond,
            double wallSeconds,
            long steps,
            boolean gatePassed,
            List<String> gateReasons,
            String reportUri,
            String modelUri) {}

    public MethodComparison {
        methods = List.copyOf(methods);
    }

    /** The comparison of {@code evaluations}, one per method, given in the job's method order. */
    public static MethodComparison of(String jobId, List<EvaluationCompleted> evaluations) {
        if (evaluations.isEmpty()) {
            throw new IllegalArgumentException("a comparison of " + jobId + " needs methods");
        }
        String primary = evaluations.get(0).getPrimaryMetric();
        List<Method> rows = new ArrayList<>();
        for (EvaluationCompleted e : evaluations) {
            TrainingCompleted t = e.getTraining();
            MetricValue tuned = e.getTunedMetricsMap().get(primary);
            MetricValue base = e.getBaseMetricsMap().get(primary);
            rows.add(
                    new Method(
                            t.getComparedMethod(),
                            t.getRunId(),
                            tuned == null ? Double.NaN : tuned.getValue(),
                            tuned == null ? Double.NaN : tuned.getCiLower(),
                            tuned == null ? Double.NaN : tuned.getCiUpper(),
                            Optional.ofNullable(base).map(MetricValue::getValue),
                            t.getTrainableParameters(),
                            t.getTotalParameters(),
                            t.getPeakMemoryBytes(),
                            t.getTokensPerSecond(),
                            t.getDurationSeconds(),
                            t.getSteps(),
                            e.getGate().getPassed(),
                            e.getGate().getReasonsList(),
                            e.getReportHtml().getUri(),
                            t.getModel().getUri()));
        }
        return new MethodComparison(
                jobId, primary, LOWER_IS_BETTER.contains(primary.toLowerCase(Locale.ROOT)), rows);
    }

    /**
     * The best method by the primary metric among those that passed the quality gate (or among all
     * when {@code gatePassedOnly} is false); a tie goes to the method listed first. Empty when none
     * qualifies.
     */
    public Optional<Method> best(boolean gatePassedOnly) {
        Method best = null;
        for (Method m : methods) {
            if (Double.isNaN(m.value()) || (gatePassedOnly && !m.gatePassed())) {
                continue;
            }
            if (best == null
                    || (lowerIsBetter ? m.value() < best.value() : m.value() > best.value())) {
                best = m;
            }
        }
        return Optional.ofNullable(best);
    }

    /** Every number of the comparison, as {@code comparison.json} holds it. */
    public Map<String, Object> json(Optional<Method> chosen) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("job_id", jobId);
        out.put("primary_metric", primaryMetric);
        out.put("higher_is_better", !lowerIsBetter);
        out.put("best", chosen.map(Method::name).orElse(null));
        List<Map<String, Object>> rows = new ArrayList<>();
        for (Method m : methods) {
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("method", m.name());
            r.put("run_id", m.runId());
            Map<String, Object> quality = new LinkedHashMap<>();
            quality.put("value", finite(m.value()));
            quality.put("ci_lower", finite(m.ciLower()));
            quality.put("ci_upper", finite(m.ciUpper()));
            r.put(primaryMetric, quality);
            r.put("base_" + primaryMetric, m.base().orElse(null));
            r.put("trainable_parameters", m.trainableParameters());
            r.put("total_parameters", m.totalParameters());
            r.put("peak_memory_bytes", m.peakMemoryBytes());
            r.put("tokens_per_second", m.tokensPerSecond());
            r.put("wall_seconds", m.wallSeconds());
            r.put("steps", m.steps());
            r.put("gate_passed", m.gatePassed());
            r.put("gate_reasons", m.gateReasons());
            r.put("report_uri", m.reportUri());
            r.put("model_uri", m.modelUri());
            rows.add(r);
        }
        out.put("methods", rows);
        return out;
    }

    private static Double finite(double v) {
        return Double.isFinite(v) ? v : null;
    }
}
