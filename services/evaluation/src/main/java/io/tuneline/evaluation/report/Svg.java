package io.tuneline.evaluation.report;

import java.util.List;
import java.util.Locale;
import java.util.Optional;

/** Small SVG charts, drawn by hand so a report needs no scripts and no chart library. */
final class Svg {
    private Svg() {}

    /** Cells shaded by each row's share, so the diagonal stands out whatever the class sizes. */
    static String confusionMatrix(List<String> labels, long[][] cm) {
        int k = labels.size();
        int cell = 48;
        int left = 110;
        int top = 40;
        StringBuilder s = new StringBuilder();
        s.append(open(left + k * cell + 20, top + k * cell + 20, "confusion matrix"));
        s.append(text(left + k * cell / 2, 12, "predicted", "middle"));
        s.append(text(8, top + k * cell / 2, "true", "start"));
        for (int j = 0; j < k; j++) {
            s.append(text(left + j * cell + cell / 2, top - 8, labels.get(j), "middle"));
        }
        for (int i = 0; i < k; i++) {
            long rowTotal = 0;
            for (long v : cm[i]) {
                rowTotal += v;
            }
            s.append(text(left - 8, top + i * cell + cell / 2 + 4, labels.get(i), "end"));
            for (int j = 0; j < k; j++) {
                double share = rowTotal == 0 ? 0 : (double) cm[i][j] / rowTotal;
                s.append(
                        String.format(
                                Locale.ROOT,
                                "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,255)\" stroke=\"#fff\"/>",
                                left + j * cell,
                                top + i * cell,
                                cell,
                                cell,
                                (int) (255 - 200 * share),
                                (int) (255 - 150 * share)));
                s.append(
                        text(
                                left + j * cell + cell / 2,
                                top + i * cell + cell / 2 + 4,
                                Long.toString(cm[i][j]),
                                "middle"));
            }
        }
        return s.append("</svg>").toString();
    }

    static String robustness(List<EvaluationReport.Robustness> results) {
        int barHeight = 22;
        int left = 190;
        int width = 300;
        StringBuilder s = new StringBuilder();
        s.append(
                open(
                        left + width + 80,
                        results.size() * (barHeight + 6) + 10,
                        "accuracy under perturbation"));
        for (int i = 0; i < results.size(); i++) {
            var r = results.get(i);
            int y = 5 + i * (barHeight + 6);
            s.append(text(left - 8, y + barHeight - 6, r.name(), "end"));
            s.append(
                    String.format(
                            Locale.ROOT,
                            "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#4c78a8\"/>",
                            left,
                            y,
                            width * Math.max(0, Math.min(1, r.accuracy())),
                            barHeight));
            s.append(
                    text(
                            left + width + 6,
                            y + barHeight - 6,
                            String.format(Locale.ROOT, "%.3f", r.accuracy()),
                            "start"));
        }
        return s.append("</svg>").toString();
    }

    static String lossCurve(List<EvaluationReport.LossPoint> points) {
        int w = 560;
        int h = 240;
        int pad = 40;
        long maxStep = points.stream().mapToLong(EvaluationReport.LossPoint::step).max().orElse(1);
        double maxLoss =
                points.stream()
                        .flatMap(
                                p ->
                                        java.util.stream.Stream.concat(
                                                java.util.stream.Stream.of(p.loss()),
                                                p.validationLoss().stream()))
                        .mapToDouble(Double::doubleValue)
                        .max()
                        .orElse(1);
        StringBuilder s = new StringBuilder(open(w, h, "training loss"));
        s.append(
                String.format(
                        Locale.ROOT,
                        "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#888\"/>",
                        pad,
                        h - pad,
                        w - 10,
                        h - pad));
        s.append(
                String.format(
                        Locale.ROOT,
                        "<line x1=\"%d\" y1=\"10\" x2=\"%d\" y2=\"%d\" stroke=\"#888\"/>",
                        pad,
                        pad,
                        h - pad));
        s.append(text(pad - 4, 18, String.format(Locale.ROOT, "%.2f", maxLoss), "end"));
        s.append(text(w - 10, h - pad + 16, "step " + maxStep, "end"));
        s.append(
                polyline(
                        points.stream()
                                .map(p -> Optional.of(new double[] {p.step(), p.loss()}))
                                .toList(),
                        maxStep,
                        maxLoss,
                        w,
                        h,
                        pad,
                        "#4c78a8"));
        s.append(
                polyline(
                        points.stream()
                                .map(p -> p.validationLoss().map(v -> new double[] {p.step(), v}))
                                .toList(),
                        maxStep,
                        maxLoss,
                        w,
                        h,
                        pad,
                        "#f58518"));
        s.append(text(w - 10, 18, "training", "end").replace("<text", "<text fill=\"#4c78a8\""));
        s.append(text(w - 10, 34, "validation", "end").replace("<text", "<text fill=\"#f58518\""));
        return s.append("</svg>").toString();
    }

    private static String polyline(
            List<Optional<double[]>> points,
            long maxStep,
            double maxLoss,
            int w,
            int h,
            int pad,
            String color) {
        StringBuilder coords = new StringBuilder();
        for (Optional<double[]> p : points) {
            p.ifPresent(
                    xy ->
                            coords.append(
                                    String.format(
                                            Locale.ROOT,
                                            "%.1f,%.1f ",
                                            pad + (w - pad - 10) * xy[0] / Math.max(1, maxStep),
                                            (h - pad)
                                                    - (h - pad - 10)
                                                            * xy[1]
                                                            / Math.max(1e-9, maxLoss))));
        }
        if (coords.length() == 0) {
            return "";
        }
        return "<polyline fill=\"none\" stroke=\""
                + color
                + "\" stroke-width=\"2\" points=\""
                + coords.toString().trim()
                + "\"/>";
    }

    private static String open(int width, int height, String title) {
        return String.format(
                Locale.ROOT,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" font-size=\"12\"><title>%s</title>",
                width,
                height,
                width,
                height,
                ReportRenderer.esc(title));
    }

    private static String text(int x, int y, String value, String anchor) {
        return "<text x=\""
                + x
                + "\" y=\""
                + y
                + "\" text-anchor=\""
                + anchor
                + "\">"
                + ReportRenderer.esc(value)
                + "</text>";
    }
}
