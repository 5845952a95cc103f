package io.tuneline.evaluation.report;

import static org.assertj.core.api.Assertions.assertThat;

import io.tuneline.evaluation.gate.GateVerdict;
import io.tuneline.evaluation.metrics.Bootstrap;
import io.tuneline.evaluation.metrics.ClassificationMetrics;
import io.tuneline.evaluation.metrics.ClassificationReport;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Optional;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Test;
import org.w3c.dom.Document;

class ReportRendererTest {
    private static final List<String> LABELS = List.of("neg", "<pos>");
    private static final int[] TRUTH = {0, 0, 1, 1, 1, 0};
    private static final double[][] TUNED = {
        {0.9, 0.1}, {0.6, 0.4}, {0.2, 0.8}, {0.3, 0.7}, {0.7, 0.3}, {0.8, 0.2}
    };
    private static final double[][] BASE = {
        {0.5, 0.5}, {0.4, 0.6}, {0.45, 0.55}, {0.6, 0.4}, {0.7, 0.3}, {0.5, 0.5}
    };

    private static EvaluationReport report() {
        ClassificationReport detail = ClassificationMetrics.compute(LABELS, TRUTH, TUNED);
        return new EvaluationReport(
                "sentiment-1",
                "s3://tuneline/runs/sentiment-1/model/",
                "macro_f1",
                detail,
                Bootstrap.classification(LABELS, TRUTH, TUNED, 100, 1),
                Optional.of(Bootstrap.classification(LABELS, TRUTH, BASE, 100, 1)),
                List.of(
                        new EvaluationReport.Robustness("char_swap@0.05", 0.8333, 0.0, 0.0),
                        new EvaluationReport.Robustness("word_dropout@0.2", 0.6667, 0.1667, 0.2)),
                new GateVerdict(false, List.of("macro_f1 0.8286 < minimum 0.9000"), List.of()),
                List.of(
                        new EvaluationReport.LossPoint(10, 0.69, Optional.empty()),
                        new EvaluationReport.LossPoint(20, 0.52, Optional.of(0.58)),
                        new EvaluationReport.LossPoint(30, 0.41, Optional.of(0.50))));
    }

    @Test
    void htmlIsWellFormedSelfContainedAndCarriesEveryChart() throws Exception {
        String html = ReportRenderer.html(report());
        // Kept for looking at in a browser: target/sample-evaluation.html.
        java.nio.file.Files.writeString(
                java.nio.file.Path.of("target/sample-evaluation.html"), html);
        // Well-formed as XML (so every SVG is too), once the HTML5 doctype is set aside.
        Document doc =
                DocumentBuilderFactory.newInstance()
                        .newDocumentBuilder()
                        .parse(
                                new ByteArrayInputStream(
                                        html.replace("<!DOCTYPE html>", "")
                                                .getBytes(StandardCharsets.UTF_8)));
        assertThat(doc.getElementsByTagName("svg").getLength()).isEqualTo(3);
        assertThat(doc.getElementsByTagName("polyline").getLength()).isEqualTo(2);
        // Nothing to fetch: no scripts, no external images or styles (the SVG namespace is not a
        // fetch).
        assertThat(html).doesNotContain("<script", "src=", "href=").contains("&lt;pos&gt;");
        assertThat(html)
                .contains("class=\"fail\">failed")
                .contains("macro_f1 0.8286 &lt; minimum 0.9000");
        // accuracy 5/6 on the tuned model, 3/6 on the base: +0.3333.
        assertThat(html).contains("0.8333").contains("+0.3333");
    }

    /**
     * Chromium (Debian's {@code chromium}, which {@code .ci/run} installs) opens the report as a
     * browser would open it from a presigned URL: it parses into the same three charts and the
     * tables, logs no console message, and renders to a screenshot.
     */
    @Test
    void theHtmlReportRendersInHeadlessChromium(
            @org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        java.nio.file.Path page = dir.resolve("evaluation.html");
        java.nio.file.Files.writeString(page, ReportRenderer.html(report()));
        java.nio.file.Path screenshot =
                java.nio.file.Paths.get("target/evaluation-report.png").toAbsolutePath();
        java.nio.file.Files.deleteIfExists(screenshot);

        Chromium.Result dom = Chromium.run(dir, "--dump-dom", page.toUri().toString());
        assertThat(dom.exitCode()).as(dom.log()).isZero();
        assertThat(dom.stdout()).contains("<svg", "<table", "Training loss", "Quality gate");
        assertThat(dom.stdout().split("<svg", -1)).hasSize(4); // three charts

        Chromium.Result shot =
                Chromium.run(
                        dir,
                        "--screenshot=" + screenshot,
                        "--window-size=1200,2400",
                        page.toUri().toString());
        assertThat(shot.exitCode()).as(shot.log()).isZero();
        assertThat(shot.log()).doesNotContain("CONSOLE");
        byte[] png = java.nio.file.Files.readAllBytes(screenshot);
        assertThat(png).startsWith((byte) 0x89, (byte) 'P', (byte) 'N', (byte) 'G');
        assertThat(png.length).isGreaterThan(20_000);
    }

    @Test
    void markdownHasTheTablesAReviewerReads() {
        String md = ReportRenderer.markdown(report());
        assertThat(md)
                .contains("Quality gate: **failed**")
                .contains("- macro_f1 0.8286 < minimum 0.9000");
        assertThat(md).contains("| **macro_f1** |");
        assertThat(md)
                .containsPattern(
                        "\\| accuracy \\| 0\\.8333 \\[[0-9.]+, [0-9.]+\\] \\| 0\\.5000 \\[[0-9.]+, [0-9.]+\\] \\| \\+0\\.3333 \\|");
        // Rows are true labels: every neg predicted neg; one <pos> (0.7 vs 0.3) predicted neg.
        assertThat(md).contains("| neg | 3 | 0 |").contains("| <pos> | 1 | 2 |");
        assertThat(md).contains("| word_dropout@0.2 | 0.6667 | 0.1667 | 0.2000 |");
    }
}
