package io.tuneline.registry.comparison;

import static org.assertj.core.api.Assertions.assertThat;

import io.tuneline.proto.v1.EvaluationCompleted;
import io.tuneline.proto.v1.GateResult;
import io.tuneline.proto.v1.MetricValue;
import io.tuneline.proto.v1.TrainingCompleted;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class MethodComparisonTest {
    private static EvaluationCompleted method(
            String name, String metric, double value, boolean passed, long peakBytes) {
        return EvaluationCompleted.newBuilder()
                .setJobId("cmp")
                .setPrimaryMetric(metric)
                .putTunedMetrics(
                        metric,
                        MetricValue.newBuilder()
                                .setValue(value)
                                .setCiLower(value - 1)
                                .setCiUpper(value + 1)
                                .build())
                .setGate(GateResult.newBuilder().setPassed(passed))
                .setTraining(
                        TrainingCompleted.newBuilder()
                                .setComparedMethod(name)
                                .setPeakMemoryBytes(peakBytes))
                .build();
    }

    @Test
    void perplexityPicksTheLowestAndATieGoesToTheMethodListedFirst() {
        MethodComparison c =
                MethodComparison.of(
                        "cmp",
                        List.of(
                                method("full", "perplexity", 240, true, 900),
                                method("lora", "perplexity", 230, true, 300),
                                method("prefix", "perplexity", 230, true, 200)));
        assertThat(c.lowerIsBetter()).isTrue();
        assertThat(c.best(true)).map(MethodComparison.Method::name).contains("lora");
    }

    @Test
    void theGateDecidesWhichMethodsMayWinAndAMissingMetricNeverWins() {
        MethodComparison c =
                MethodComparison.of(
                        "cmp",
                        List.of(
                                method("full", "macro_f1", 0.8, true, 900),
                                method("lora", "macro_f1", 0.9, false, 300),
                                method("prompt", "macro_f1", 0.7, true, 100).toBuilder()
                                        .clearTunedMetrics()
                                        .build()));
        assertThat(c.lowerIsBetter()).isFalse();
        assertThat(c.best(true)).map(MethodComparison.Method::name).contains("full");
        assertThat(c.best(false)).map(MethodComparison.Method::name).contains("lora");
        assertThat(c.json(c.best(true)).get("best")).isEqualTo("full");
    }

    @Test
    void theChartPlacesQualityAgainstMemoryAndFillsOnlyTheBestPoint() {
        MethodComparison c =
                MethodComparison.of(
                        "cmp",
                        List.of(
                                method("full", "macro_f1", 0.8, true, 100L << 20),
                                method("lora", "macro_f1", 0.9, true, 50L << 20)));
        String svg = ComparisonPage.chart(c, c.best(true));
        // x: 0..110 MiB over 70..610 px, so 50 MiB sits at 70 + 540 * 50 / 110 = 315.5;
        // y: values -0.2..1.9 padded by 10% to -0.41..2.11 over 350..30 px, so 0.9 sits at
        // 350 - 320 * (0.9 + 0.41) / 2.52 = 183.7.
        assertThat(svg)
                .contains("<circle cx=\"315.5\" cy=\"183.7\" r=\"5\" fill=\"#1a73e8\"")
                .containsOnlyOnce("fill=\"#1a73e8\"");
        assertThat(ComparisonPage.html(c, Optional.empty()))
                .contains("none (no method passed the gate)");
    }
}
