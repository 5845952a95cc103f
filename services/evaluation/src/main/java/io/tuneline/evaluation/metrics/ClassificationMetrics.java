package io.tuneline.evaluation.metrics;

import io.tuneline.evaluation.metrics.ClassificationReport.Averages;
import io.tuneline.evaluation.metrics.ClassificationReport.ClassScores;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Classification metrics from true labels, predicted labels and predicted probabilities. The
 * definitions follow scikit-learn's (precision_recall_fscore_support, roc_auc_score), which the
 * tests use as the independent reference: a class never predicted has precision 0, a class never
 * present has recall 0, and micro averages over all examples equal accuracy for single-label data.
 */
public final class ClassificationMetrics {
    /** 15 bins, as in Guo et al. 2017. */
    public static final int ECE_BINS = 15;

    private ClassificationMetrics() {}

    /**
     * @param truth index of the true label of each example
     * @param probabilities each example's probability per label (rows sum to 1); the prediction is
     *     the arg-max
     */
    public static ClassificationReport compute(
            List<String> labels, int[] truth, double[][] probabilities) {
        int n = truth.length;
        int k = labels.size();
        if (n == 0) {
            throw new IllegalArgumentException("no examples to evaluate");
        }
        if (probabilities.length != n) {
            throw new IllegalArgumentException(
                    n + " labels but " + probabilities.length + " probability rows");
        }
        int[] predicted = new int[n];
        for (int i = 0; i < n; i++) {
            if (probabilities[i].length != k) {
                throw new IllegalArgumentException(
                        "example "
                                + i
                                + " has "
                                + probabilities[i].length
                                + " probabilities for "
                                + k
                                + " labels");
            }
            if (truth[i] < 0 || truth[i] >= k) {
                throw new IllegalArgumentException("example " + i + " has label index " + truth[i]);
            }
            predicted[i] = argMax(probabilities[i]);
        }

        long[][] confusion = new long[k][k];
        long correct = 0;
        for (int i = 0; i < n; i++) {
            confusion[truth[i]][predicted[i]]++;
            if (truth[i] == predicted[i]) {
                correct++;
            }
        }

        Map<String, ClassScores> perClass = new LinkedHashMap<>();
        double macroP = 0, macroR = 0, macroF = 0, weightedP = 0, weightedR = 0, weightedF = 0;
        long tpAll = 0, fpAll = 0, fnAll = 0;
        for (int c = 0; c < k; c++) {
            long tp = confusion[c][c];
            long fp = 0, fn = 0;
            for (int o = 0; o < k; o++) {
                if (o != c) {
                    fp += confusion[o][c];
                    fn += confusion[c][o];
                }
            }
            long support = tp + fn;
            double p = ratio(tp, tp + fp);
            double r = ratio(tp, tp + fn);
            double f = f1(p, r);
            perClass.put(labels.get(c), new ClassScores(p, r, f, support));
            macroP += p / k;
            macroR += r / k;
            macroF += f / k;
            weightedP += p * support / n;
            weightedR += r * support / n;
            weightedF += f * support / n;
            tpAll += tp;
            fpAll += fp;
            fnAll += fn;
        }
        double microP = ratio(tpAll, tpAll + fpAll);
        double microR = ratio(tpAll, tpAll + fnAll);

        Optional<Double> auc = Optional.empty();
        if (k == 2) {
            double[] scores = new double[n];
            boolean[] positive = new boolean[n];
            for (int i = 0; i < n; i++) {
                scores[i] = probabilities[i][1];
                positive[i] = truth[i] == 1;
            }
            auc = rocAuc(scores, positive);
        }
        return new ClassificationReport(
                List.copyOf(labels),
                n,
                (double) correct / n,
                perClass,
                new Averages(macroP, macroR, macroF),
                new Averages(microP, microR, f1(microP, microR)),
                new Averages(weightedP, weightedR, weightedF),
                confusion,
                auc,
                expectedCalibrationError(truth, probabilities, predicted));
    }

    /**
     * ROC-AUC as the probability that a random positive scores above a random negative, ties
     * counting one half (the Mann-Whitney U statistic over average ranks); empty when only one
     * class is present, where AUC is undefined.
     */
    public static Optional<Double> rocAuc(double[] scores, boolean[] positive) {
        int n = scores.length;
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Double.compare(scores[a], scores[b]));
        double[] ranks = new double[n];
        int i = 0;
        while (i < n) {
            int j = i;
            while (j + 1 < n && scores[order[j + 1]] == scores[order[i]]) {
                j++;
            }
            double averageRank = (i + j) / 2.0 + 1;
            for (int t = i; t <= j; t++) {
                ranks[order[t]] = averageRank;
            }
            i = j + 1;
        }
        long positives = 0;
        double rankSum = 0;
        for (int t = 0; t < n; t++) {
            if (positive[t]) {
                positives++;
                rankSum += ranks[t];
            }
        }
        long negatives = n - positives;
        if (positives == 0 || negatives == 0) {
            return Optional.empty();
        }
        double u = rankSum - positives * (positives + 1) / 2.0;
        return Optional.of(u / ((double) positives * negatives));
    }

    /**
     * ECE = sum over bins of (|bin| / n) * |accuracy(bin) - confidence(bin)|, the confidence being
     * the predicted class's probability, bins (i/15, (i+1)/15].
     */
    static double expectedCalibrationError(int[] truth, double[][] probabilities, int[] predicted) {
        int n = truth.length;
        double[] confidenceSum = new double[ECE_BINS];
        long[] correct = new long[ECE_BINS];
        long[] count = new long[ECE_BINS];
        for (int i = 0; i < n; i++) {
            double confidence = probabilities[i][predicted[i]];
            int bin =
                    Math.min(ECE_BINS - 1, Math.max(0, (int) Math.ceil(confidence * ECE_BINS) - 1));
            confidenceSum[bin] += confidence;
            count[bin]++;
            if (predicted[i] == truth[i]) {
                correct[bin]++;
            }
        }
        double ece = 0;
        for (int b = 0; b < ECE_BINS; b++) {
            if (count[b] > 0) {
                ece +=
                        Math.abs((double) correct[b] / count[b] - confidenceSum[b] / count[b])
                                * count[b]
                                / n;
            }
        }
        return ece;
    }

    /** The index of the largest value (the first of equals): a classifier's predicted label. */
    public static int argMax(double[] values) {
        int best = 0;
        for (int i = 1; i < values.length; i++) {
            if (values[i] > values[best]) {
                best = i;
            }
        }
        return best;
    }

    private static double ratio(long numerator, long denominator) {
        return denominator == 0 ? 0.0 : (double) numerator / denominator;
    }

    private static double f1(double precision, double recall) {
        return precision + recall == 0 ? 0.0 : 2 * precision * recall / (precision + recall);
    }
}
