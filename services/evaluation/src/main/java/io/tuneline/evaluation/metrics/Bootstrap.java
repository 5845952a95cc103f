package io.tuneline.evaluation.metrics;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Function;

/**
 * Percentile bootstrap (Efron & Tibshirani 1993, ch. 13): resample the test examples with
 * replacement, recompute the metrics, take the 2.5th and 97.5th percentiles. Seeded, so a report is
 * reproducible.
 */
public final class Bootstrap {
    public static final int DEFAULT_SAMPLES = 1000;

    private Bootstrap() {}

    /**
     * @param metrics computes named metrics over the examples at the given indices (repeats
     *     allowed)
     * @return each metric on all examples, with its interval; metrics missing from a resample
     *     (ROC-AUC of a resample with one class) are left out of that resample's percentiles
     */
    public static Map<String, Estimate> estimate(
            int n, int samples, long seed, Function<int[], Map<String, Double>> metrics) {
        int[] all = new int[n];
        Arrays.setAll(all, i -> i);
        Map<String, Double> point = metrics.apply(all);
        if (samples <= 0) {
            Map<String, Estimate> exact = new LinkedHashMap<>();
            point.forEach((name, v) -> exact.put(name, Estimate.exact(v)));
            return exact;
        }
        Map<String, double[]> draws = new LinkedHashMap<>();
        Map<String, Integer> filled = new LinkedHashMap<>();
        point.keySet()
                .forEach(
                        name -> {
                            draws.put(name, new double[samples]);
                            filled.put(name, 0);
                        });
        SplittableRandom random = new SplittableRandom(seed);
        int[] indices = new int[n];
        for (int s = 0; s < samples; s++) {
            for (int i = 0; i < n; i++) {
                indices[i] = random.nextInt(n);
            }
            metrics.apply(indices)
                    .forEach(
                            (name, v) -> {
                                double[] d = draws.get(name);
                                if (d != null && !Double.isNaN(v)) {
                                    int at = filled.get(name);
                                    d[at] = v;
                                    filled.put(name, at + 1);
                                }
                            });
        }
        Map<String, Estimate> result = new LinkedHashMap<>();
        point.forEach(
                (name, v) -> {
                    double[] d = Arrays.copyOf(draws.get(name), filled.get(name));
                    if (d.length == 0) {
                        result.put(name, Estimate.exact(v));
                        return;
                    }
                    Arrays.sort(d);
                    result.put(name, new Estimate(v, percentile(d, 0.025), percentile(d, 0.975)));
                });
        return result;
    }

    /** Linear interpolation between closest ranks (numpy's default "linear" method). */
    static double percentile(double[] sorted, double q) {
        double position = q * (sorted.length - 1);
        int below = (int) Math.floor(position);
        int above = Math.min(sorted.length - 1, below + 1);
        double fraction = position - below;
        return sorted[below] + (sorted[above] - sorted[below]) * fraction;
    }

    /** Classification headline metrics with intervals. */
    public static Map<String, Estimate> classification(
            java.util.List<String> labels,
            int[] truth,
            double[][] probabilities,
            int samples,
            long seed) {
        return estimate(
                truth.length,
                samples,
                seed,
                idx -> {
                    int[] t = new int[idx.length];
                    double[][] p = new double[idx.length][];
                    for (int i = 0; i < idx.length; i++) {
                        t[i] = truth[idx[i]];
                        p[i] = probabilities[idx[i]];
                    }
                    Map<String, Double> m =
                            new LinkedHashMap<>(
                                    ClassificationMetrics.compute(labels, t, p).headline());
                    if (labels.size() == 2) {
                        m.putIfAbsent("roc_auc", Double.NaN);
                    }
                    return m;
                });
    }
}
