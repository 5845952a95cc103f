package io.tuneline.evaluation.report;

import io.tuneline.evaluation.metrics.ClassificationReport.ClassScores;
import io.tuneline.evaluation.metrics.Estimate;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Renders an {@link EvaluationReport} for people: Markdown, and a self-contained HTML page (no
 * scripts, no external files, charts as inline SVG) that a browser shows straight from a presigned
 * URL.
 */
public final class ReportRenderer {
    private ReportRenderer() {}

    public static String markdown(EvaluationReport r) {
        StringBuilder md = new StringBuilder();
        md.append("# Evaluation of ").append(r.jobId()).append("\n\n");
        md.append("Model: `").append(r.model()).append("`  \n");
        md.append("Test examples: ").append(r.examples()).append("  \n");
        md.append("Quality gate: **")
                .append(r.gate().passed() ? "passed" : "failed")
                .append("**\n");
        r.gate().reasons().forEach(reason -> md.append("- ").append(reason).append('\n'));
        r.gate().notes().forEach(note -> md.append("- note: ").append(note).append('\n'));
        md.append("\n## Metrics (95% bootstrap intervals)\n\n");
        md.append("| metric | tuned | base | difference |\n|---|---|---|---|\n");
        Map<String, Double> diff = r.differences();
        r.tuned()
                .forEach(
                        (name, t) -> {
                            md.append("| ")
                                    .append(
                                            name.equals(r.primaryMetric())
                                                    ? "**" + name + "**"
                                                    : name)
                                    .append(" | ")
                                    .append(format(t))
                                    .append(" | ")
                                    .append(
                                            r.base()
                                                    .map(b -> b.get(name))
                                                    .map(ReportRenderer::format)
                                                    .orElse("–"))
                                    .append(" | ")
                                    .append(diff.containsKey(name) ? signed(diff.get(name)) : "–")
                                    .append(" |\n");
                        });
        if (r.tunedDetail() != null) {
            perClassMarkdown(r, md);
        }
        if (!r.generations().isEmpty()) {
            md.append("\n## Greedy answers (first ")
                    .append(r.generations().size())
                    .append(")\n\n| prompt | reference | tuned | base |\n|---|---|---|---|\n");
            r.generations()
                    .forEach(
                            g ->
                                    md.append("| ")
                                            .append(cell(g.prompt()))
                                            .append(" | ")
                                            .append(cell(g.reference()))
                                            .append(" | ")
                                            .append(cell(g.tuned()))
                                            .append(" | ")
                                            .append(g.base().map(ReportRenderer::cell).orElse("–"))
                                            .append(" |\n"));
        }
        if (!r.robustness().isEmpty()) {
            robustnessMarkdown(r, md);
        }
        r.scenario().ifPresent(sc -> md.append("\n").append(scenarioMarkdown(sc)));
        return md.toString();
    }

    private static String cell(String s) {
        return s.replace("|", "\\|").replace("\n", " ");
    }

    private static void perClassMarkdown(EvaluationReport r, StringBuilder md) {
        md.append(
                "\n## Per class\n\n| label | precision | recall | F1 | support |\n|---|---|---|---|---|\n");
        r.tunedDetail()
                .perClass()
                .forEach(
                        (label, s) ->
                                md.append(
                                        String.format(
                                                Locale.ROOT,
                                                "| %s | %.4f | %.4f | %.4f | %d |%n",
                                                label,
                                                s.precision(),
                                                s.recall(),
                                                s.f1(),
                                                s.support())));
        md.append("\n## Confusion matrix (rows: true, columns: predicted)\n\n| |");
        List<String> labels = r.tunedDetail().labels();
        labels.forEach(l -> md.append(' ').append(l).append(" |"));
        md.append("\n|---|").append("---|".repeat(labels.size())).append('\n');
        long[][] cm = r.tunedDetail().confusion();
        for (int i = 0; i < labels.size(); i++) {
            md.append("| ").append(labels.get(i)).append(" |");
            for (int j = 0; j < labels.size(); j++) {
                md.append(' ').append(cm[i][j]).append(" |");
            }
            md.append('\n');
        }
    }

    private static void robustnessMarkdown(EvaluationReport r, StringBuilder md) {
        md.append(
                "\n## Robustness\n\n| perturbation | accuracy | drop | attack success |\n|---|---|---|---|\n");
        r.robustness()
                .forEach(
                        x ->
                                md.append(
                                        String.format(
                                                Locale.ROOT,
                                                "| %s | %.4f | %.4f | %.4f |%n",
                                                x.name(),
                                                x.accuracy(),
                                                x.accuracyDrop(),
                                                x.attackSuccessRate())));
    }

    public static String html(EvaluationReport r) {
        StringBuilder h = new StringBuilder();
        h.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>")
                .append("<title>Evaluation of ")
                .append(esc(r.jobId()))
                .append("</title><style>")
                .append(
                        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;color:#222}")
                .append(
                        "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}")
                .append(
                        "th:first-child,td:first-child{text-align:left}.pass{color:#1a7f37}.fail{color:#cf222e}")
                .append("</style></head><body>\n");
        h.append("<h1>Evaluation of ").append(esc(r.jobId())).append("</h1>\n");
        h.append("<p>Model <code>")
                .append(esc(r.model()))
                .append("</code>, ")
                .append(r.examples())
                .append(" test examples. Quality gate: <strong class=\"")
                .append(r.gate().passed() ? "pass\">passed" : "fail\">failed")
                .append("</strong></p>\n");
        if (!r.gate().reasons().isEmpty() || !r.gate().notes().isEmpty()) {
            h.append("<ul>");
            r.gate().reasons().forEach(x -> h.append("<li>").append(esc(x)).append("</li>"));
            r.gate().notes().forEach(x -> h.append("<li>note: ").append(esc(x)).append("</li>"));
            h.append("</ul>\n");
        }
        h.append(
                "<h2>Metrics</h2>\n<table><tr><th>metric</th><th>tuned (95% CI)</th><th>base</th><th>difference</th></tr>\n");
        Map<String, Double> diff = r.differences();
        r.tuned()
                .forEach(
                        (name, t) ->
                                h.append("<tr><td>")
                                        .append(esc(name))
                                        .append("</td><td>")
                                        .append(esc(format(t)))
                                        .append("</td><td>")
                                        .append(
                                                esc(
                                                        r.base()
                                                                .map(b -> b.get(name))
                                                                .map(ReportRenderer::format)
                                                                .orElse("–")))
                                        .append("</td><td>")
                                        .append(
                                                diff.containsKey(name)
                                                        ? esc(signed(diff.get(name)))
                                                        : "–")
                                        .append("</td></tr>\n"));
        h.append("</table>\n");
        if (r.tunedDetail() != null) {
            perClassHtml(r, h);
        }
        if (!r.generations().isEmpty()) {
            h.append(
                    "<h2>Greedy answers</h2>\n<table><tr><th>prompt</th><th>reference</th><th>tuned</th><th>base</th></tr>\n");
            r.generations()
                    .forEach(
                            g ->
                                    h.append("<tr><td>")
                                            .append(esc(g.prompt()))
                                            .append("</td><td>")
                                            .append(esc(g.reference()))
                                            .append("</td><td>")
                                            .append(esc(g.tuned()))
                                            .append("</td><td>")
                                            .append(esc(g.base().orElse("–")))
                                            .append("</td></tr>\n"));
            h.append("</table>\n");
        }
        if (!r.robustness().isEmpty()) {
            h.append("\n<h2>Robustness</h2>\n").append(Svg.robustness(r.robustness()));
        }
        r.scenario()
                .ifPresent(
                        sc -> {
                            h.append("\n<h2>Real scenario (served)</h2>\n<table>");
                            scenarioRows(sc)
                                    .forEach(
                                            (k, v) ->
                                                    h.append("<tr><th>")
                                                            .append(esc(k))
                                                            .append("</th><td>")
                                                            .append(esc(v))
                                                            .append("</td></tr>"));
                            h.append("</table>\n");
                            if (sc.getExamplesCount() > 0) {
                                h.append("<ul>");
                                sc.getExamplesList()
                                        .forEach(
                                                e ->
                                                        h.append("<li>")
                                                                .append(esc(e))
                                                                .append("</li>"));
                                h.append("</ul>\n");
                            }
                        });
        if (!r.lossCurve().isEmpty()) {
            h.append("\n<h2>Training loss</h2>\n").append(Svg.lossCurve(r.lossCurve()));
        }
        h.append("\n</body></html>\n");
        return h.toString();
    }

    private static void perClassHtml(EvaluationReport r, StringBuilder h) {
        h.append(
                "<h2>Per class</h2>\n<table><tr><th>label</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>\n");
        for (Map.Entry<String, ClassScores> e : r.tunedDetail().perClass().entrySet()) {
            ClassScores s = e.getValue();
            h.append(
                    String.format(
                            Locale.ROOT,
                            "<tr><td>%s</td><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%d</td></tr>%n",
                            esc(e.getKey()),
                            s.precision(),
                            s.recall(),
                            s.f1(),
                            s.support()));
        }
        h.append("</table>\n<h2>Confusion matrix</h2>\n")
                .append(Svg.confusionMatrix(r.tunedDetail().labels(), r.tunedDetail().confusion()));
    }

    static String format(Estimate e) {
        if (e.lower() == e.value() && e.upper() == e.value()) {
            return String.format(Locale.ROOT, "%.4f", e.value());
        }
        return String.format(Locale.ROOT, "%.4f [%.4f, %.4f]", e.value(), e.lower(), e.upper());
    }

    private static String signed(double d) {
        return String.format(Locale.ROOT, "%+.4f", d);
    }

    static String esc(String s) {
        return s.replace("&", "&amp;")
                .replace("<", "&lt;")
                .replace(">", "&gt;")
                .replace("\"", "&quot;");
    }

    /** The scenario's figures, in the order the report shows them. */
    static java.util.Map<String, String> scenarioRows(io.tuneline.proto.v1.ScenarioResult sc) {
        java.util.Map<String, String> rows = new java.util.LinkedHashMap<>();
        rows.put("served as", sc.getModel() + " at " + sc.getServingUrl());
        rows.put(
                "requests",
                sc.getRequests()
                        + " ("
                        + sc.getErrors()
                        + " errors, error rate "
                        + String.format(java.util.Locale.ROOT, "%.4f", sc.getErrorRate())
                        + ")");
        rows.put(
                "latency p50 / p95 / p99",
                String.format(
                        java.util.Locale.ROOT,
                        "%.0f / %.0f / %.0f ms",
                        sc.getP50Ms(),
                        sc.getP95Ms(),
                        sc.getP99Ms()));
        rows.put(
                "throughput",
                String.format(
                        java.util.Locale.ROOT,
                        "%.1f requests/s over %.1f s",
                        sc.getRequestsPerSecond(),
                        sc.getWallSeconds()));
        rows.put(
                "agreement with the offline answers",
                sc.getAgreement() < 0
                        ? "none to compare"
                        : String.format(java.util.Locale.ROOT, "%.4f", sc.getAgreement()));
        return rows;
    }

    private static String scenarioMarkdown(io.tuneline.proto.v1.ScenarioResult sc) {
        StringBuilder md = new StringBuilder("## Real scenario (served)\n\n| | |\n|---|---|\n");
        scenarioRows(sc)
                .forEach(
                        (k, v) ->
                                md.append("| ")
                                        .append(k)
                                        .append(" | ")
                                        .append(cell(v))
                                        .append(" |\n"));
        sc.getExamplesList().forEach(e -> md.append("\n- ").append(cell(e)));
        return md.append("\n").toString();
    }
}
