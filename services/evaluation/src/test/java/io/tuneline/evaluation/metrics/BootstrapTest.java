package io.tuneline.evaluation.metrics;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class BootstrapTest {

    @Test
    void intervalOfAMeanMatchesTheNormalApproximation() {
        // 2000 coin flips with p = 0.3: the 95% interval of the mean is about
        // 0.3 +- 1.96 * sqrt(0.3 * 0.7 / 2000) = 0.3 +- 0.0201.
        SplittableRandom r = new SplittableRandom(1);
        double[] x = new double[2000];
        for (int i = 0; i < x.length; i++) {
            x[i] = r.nextDouble() < 0.3 ? 1 : 0;
        }
        Estimate e =
                Bootstrap.estimate(x.length, 1000, 42, idx -> Map.of("mean", mean(x, idx)))
                        .get("mean");
        double half = 1.96 * Math.sqrt(e.value() * (1 - e.value()) / x.length);
        assertThat(e.lower()).isCloseTo(e.value() - half, within(0.004));
        assertThat(e.upper()).isCloseTo(e.value() + half, within(0.004));
    }

    @Test
    void sameSeedSameInterval() {
        double[][] probs = {{0.8, 0.2}, {0.3, 0.7}, {0.6, 0.4}, {0.1, 0.9}, {0.55, 0.45}};
        int[] truth = {0, 1, 1, 1, 0};
        var a = Bootstrap.classification(List.of("neg", "pos"), truth, probs, 200, 7);
        var b = Bootstrap.classification(List.of("neg", "pos"), truth, probs, 200, 7);
        assertThat(a).isEqualTo(b);
        assertThat(a.get("accuracy").value()).isEqualTo(0.8);
        assertThat(a.get("accuracy").lower()).isLessThanOrEqualTo(0.8);
        assertThat(a.get("accuracy").upper()).isGreaterThanOrEqualTo(0.8);
        // Resamples with a single class have no AUC; the others still give an interval.
        assertThat(a).containsKey("roc_auc");
    }

    @Test
    void percentilesInterpolateLikeNumpy() {
        double[] sorted = {1, 2, 3, 4};
        // numpy.percentile([1, 2, 3, 4], 2.5) = 1.075; 97.5 -> 3.925
        assertThat(Bootstrap.percentile(sorted, 0.025)).isCloseTo(1.075, within(1e-12));
        assertThat(Bootstrap.percentile(sorted, 0.975)).isCloseTo(3.925, within(1e-12));
    }

    private static double mean(double[] x, int[] idx) {
        double s = 0;
        for (int i : idx) {
            s += x[i];
        }
        return s / idx.length;
    }
}
