package io.tuneline.evaluation.metrics;

import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Classification quality on one test set.
 *
 * @param perClass label -> precision, recall, F1 and support
 * @param confusion {@code confusion[i][j]}: examples of label i predicted as label j
 * @param rocAuc for two classes only: area under the ROC curve of the second label's probability
 * @param expectedCalibrationError ECE over equal-width confidence bins (Guo et al. 2017,
 *     arXiv:1706.04599, eq. 3)
 */
public record ClassificationReport(
        List<String> labels,
        int examples,
        double accuracy,
        Map<String, ClassScores> perClass,
        Averages macro,
        Averages micro,
        Averages weighted,
        long[][] confusion,
        Optional<Double> rocAuc,
        double expectedCalibrationError) {

    /** Precision, recall and F1 of one class. */
    public record ClassScores(double precision, double recall, double f1, long support) {}

    /** Averaged precision, recall and F1. */
    public record Averages(double precision, double recall, double f1) {}

    /** The headline numbers by name, as metrics in events and the quality gate. */
    public Map<String, Double> headline() {
        var m = new java.util.LinkedHashMap<String, Double>();
        m.put("accuracy", accuracy);
        m.put("macro_precision", macro.precision());
        m.put("macro_recall", macro.recall());
        m.put("macro_f1", macro.f1());
        m.put("micro_f1", micro.f1());
        m.put("weighted_f1", weighted.f1());
        rocAuc.ifPresent(v -> m.put("roc_auc", v));
        m.put("ece", expectedCalibrationError);
        return m;
    }
}
