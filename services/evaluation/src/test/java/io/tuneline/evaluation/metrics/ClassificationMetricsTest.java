package io.tuneline.evaluation.metrics;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

class ClassificationMetricsTest {
    private static final double EPS = 1e-12;

    /** Cases from src/test/python/reference_metrics.py: scikit-learn's numbers. */
    static Stream<JsonNode> referenceCases() throws IOException {
        try (InputStream in =
                ClassificationMetricsTest.class.getResourceAsStream("/reference-metrics.json")) {
            List<JsonNode> cases = new ArrayList<>();
            new ObjectMapper().readTree(in).forEach(cases::add);
            return cases.stream();
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("referenceCases")
    void matchesScikitLearn(JsonNode c) {
        List<String> labels = new ArrayList<>();
        c.get("labels").forEach(l -> labels.add(l.asText()));
        int n = c.get("truth").size();
        int[] truth = new int[n];
        double[][] probs = new double[n][];
        for (int i = 0; i < n; i++) {
            truth[i] = c.get("truth").get(i).asInt();
            JsonNode row = c.get("probabilities").get(i);
            probs[i] = new double[row.size()];
            for (int j = 0; j < row.size(); j++) {
                probs[i][j] = row.get(j).asDouble();
            }
        }

        ClassificationReport r = ClassificationMetrics.compute(labels, truth, probs);

        assertThat(r.accuracy()).isCloseTo(c.get("accuracy").asDouble(), within(EPS));
        for (int i = 0; i < labels.size(); i++) {
            var expected = c.get("per_class").get(i);
            var actual = r.perClass().get(labels.get(i));
            assertThat(actual.precision())
                    .isCloseTo(expected.get("precision").asDouble(), within(EPS));
            assertThat(actual.recall()).isCloseTo(expected.get("recall").asDouble(), within(EPS));
            assertThat(actual.f1()).isCloseTo(expected.get("f1").asDouble(), within(EPS));
            assertThat(actual.support()).isEqualTo(expected.get("support").asLong());
            for (int j = 0; j < labels.size(); j++) {
                assertThat(r.confusion()[i][j])
                        .isEqualTo(c.get("confusion").get(i).get(j).asLong());
            }
        }
        assertAverages(r.macro(), c.get("macro"));
        assertAverages(r.micro(), c.get("micro"));
        assertAverages(r.weighted(), c.get("weighted"));
        if (c.has("roc_auc")) {
            assertThat(r.rocAuc())
                    .hasValueSatisfying(
                            v -> assertThat(v).isCloseTo(c.get("roc_auc").asDouble(), within(EPS)));
        } else {
            assertThat(r.rocAuc()).isEmpty();
        }
        assertThat(r.expectedCalibrationError()).isCloseTo(c.get("ece").asDouble(), within(1e-9));
    }

    private static void assertAverages(ClassificationReport.Averages a, JsonNode expected) {
        assertThat(a.precision()).isCloseTo(expected.get("precision").asDouble(), within(EPS));
        assertThat(a.recall()).isCloseTo(expected.get("recall").asDouble(), within(EPS));
        assertThat(a.f1()).isCloseTo(expected.get("f1").asDouble(), within(EPS));
    }

    @Test
    void rocAucCountsTiesAsHalf() {
        // scikit-learn's documented example: 0.75.
        assertThat(
                        ClassificationMetrics.rocAuc(
                                new double[] {0.1, 0.4, 0.35, 0.8},
                                new boolean[] {false, false, true, true}))
                .contains(0.75);
        // One tie between a positive and a negative: (1 + 0.5) / 2.
        assertThat(
                        ClassificationMetrics.rocAuc(
                                new double[] {0.5, 0.5, 0.9}, new boolean[] {false, true, true}))
                .contains(0.75);
        assertThat(
                        ClassificationMetrics.rocAuc(
                                new double[] {0.2, 0.7}, new boolean[] {true, true}))
                .isEmpty();
    }

    @Test
    void aClassNeverPredictedHasPrecisionZeroNotNaN() {
        // Hand-checked: both examples predicted "a"; b has no predictions.
        ClassificationReport r =
                ClassificationMetrics.compute(
                        List.of("a", "b"),
                        new int[] {0, 1},
                        new double[][] {{0.9, 0.1}, {0.6, 0.4}});
        assertThat(r.perClass().get("b").precision()).isZero();
        assertThat(r.perClass().get("b").recall()).isZero();
        assertThat(r.perClass().get("a").precision()).isEqualTo(0.5);
        assertThat(r.macro().f1()).isCloseTo((2 * 0.5 * 1.0 / 1.5) / 2, within(EPS));
        assertThat(r.accuracy()).isEqualTo(0.5);
        // Confidences 0.9 (correct) and 0.6 (wrong), alone in their bins: (0.1 + 0.6) / 2.
        assertThat(r.expectedCalibrationError()).isCloseTo(0.35, within(EPS));
    }
}
