package io.tuneline.registry.comparison;

import io.tuneline.registry.comparison.MethodComparison.Method;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * {@code comparison.html}: the methods' table and an SVG chart of quality (with its interval)
 * against peak memory, one self-contained page a browser opens from the presigned download.
 */
public final class ComparisonPage {
    private static final int WIDTH = 640;
    private static final int HEIGHT = 400;
    private static final int LEFT = 70;
    private static final int RIGHT = 30;
    private static final int TOP = 30;
    private static final int BOTTOM = 50;
    private static final double MIB = 1024.0 * 1024.0;

    private ComparisonPage() {}

    public static String html(MethodComparison c, Optional<Method> chosen) {
        StringBuilder b = new StringBuilder();
        b.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
                .append("<title>Method comparison of ")
                .append(escape(c.jobId()))
                .append("</title><style>body{font-family:sans-serif;margin:2em}")
                .append("table{border-collapse:collapse}td,th{border:1px solid #ccc;")
                .append("padding:4px 8px;text-align:right}td:first-child{text-align:left}")
                .append(
                        "tr.best{background:#e6f4ea}</style></head><body>\n<h1>Method comparison of ")
                .append(escape(c.jobId()))
                .append("</h1>\n<p>Same prepared data, splits, seed and step budget; every method")
                .append(" evaluated on the same test split. Primary metric: <b>")
                .append(escape(c.primaryMetric()))
                .append("</b> (")
                .append(c.lowerIsBetter() ? "lower" : "higher")
                .append(" is better), with its 95% bootstrap interval. Best: <b>")
                .append(escape(chosen.map(Method::name).orElse("none (no method passed the gate)")))
                .append("</b>.</p>\n");
        b.append(chart(c, chosen));
        b.append("\n<table><tr><th>method</th><th>")
                .append(escape(c.primaryMetric()))
                .append("</th><th>95% interval</th><th>trainable parameters</th>")
                .append("<th>peak memory (MiB)</th><th>tokens/s</th><th>wall time (s)</th>")
                .append("<th>steps</th><th>gate</th></tr>\n");
        for (Method m : c.methods()) {
            boolean best = chosen.map(x -> x.name().equals(m.name())).orElse(false);
            b.append(best ? "<tr class=\"best\">" : "<tr>")
                    .append("<td>")
                    .append(escape(m.name()))
                    .append(best ? " (registered)" : "")
                    .append("</td><td>")
                    .append(number(m.value(), 4))
                    .append("</td><td>[")
                    .append(number(m.ciLower(), 4))
                    .append(", ")
                    .append(number(m.ciUpper(), 4))
                    .append("]</td><td>")
                    .append(String.format(Locale.ROOT, "%,d", m.trainableParameters()))
                    .append("</td><td>")
                    .append(number(m.peakMemoryBytes() / MIB, 0))
                    .append("</td><td>")
                    .append(number(m.tokensPerSecond(), 0))
                    .append("</td><td>")
                    .append(number(m.wallSeconds(), 1))
                    .append("</td><td>")
                    .append(m.steps())
                    .append("</td><td>")
                    .append(m.gatePassed() ? "passed" : escape(String.join("; ", m.gateReasons())))
                    .append("</td></tr>\n");
        }
        return b.append("</table>\n</body></html>\n").toString();
    }

    /** Quality (y, with interval bars) against peak memory in MiB (x); the best point filled. */
    static String chart(MethodComparison c, Optional<Method> chosen) {
        List<Method> points = c.methods().stream().filter(m -> Double.isFinite(m.value())).toList();
        double maxX = points.stream().mapToDouble(m -> m.peakMemoryBytes() / MIB).max().orElse(1);
        maxX = maxX <= 0 ? 1 : maxX * 1.1;
        double lo = points.stream().mapToDouble(m -> low(m)).min().orElse(0);
        double hi = points.stream().mapToDouble(m -> high(m)).max().orElse(1);
        if (hi - lo < 1e-9) {
            lo -= 0.5;
            hi += 0.5;
        }
        double pad = (hi - lo) * 0.1;
        lo -= pad;
        hi += pad;
        StringBuilder s = new StringBuilder();
        s.append("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"")
                .append(WIDTH)
                .append("\" height=\"")
                .append(HEIGHT)
                .append("\" role=\"img\" aria-label=\"")
                .append(escape(c.primaryMetric()))
                .append(" against peak memory\">");
        int x0 = LEFT;
        int x1 = WIDTH - RIGHT;
        int y0 = HEIGHT - BOTTOM;
        int y1 = TOP;
        s.append(line(x0, y0, x1, y0, "#333")).append(line(x0, y0, x0, y1, "#333"));
        for (int i = 0; i <= 4; i++) {
            double vx = maxX * i / 4;
            double vy = lo + (hi - lo) * i / 4;
            int px = (int) Math.round(x0 + (x1 - x0) * (double) i / 4);
            int py = (int) Math.round(y0 - (y0 - y1) * (double) i / 4);
            s.append(text(px, y0 + 16, "middle", number(vx, 0)))
                    .append(text(x0 - 6, py + 4, "end", number(vy, 3)));
        }
        s.append(text((x0 + x1) / 2, HEIGHT - 10, "middle", "peak memory (MiB)"))
                .append("<text x=\"16\" y=\"")
                .append((y0 + y1) / 2)
                .append("\" text-anchor=\"middle\" transform=\"rotate(-90 16 ")
                .append((y0 + y1) / 2)
                .append(")\">")
                .append(escape(c.primaryMetric()))
                .append("</text>");
        for (Method m : points) {
            double px = x0 + (x1 - x0) * (m.peakMemoryBytes() / MIB) / maxX;
            double py = y0 - (y0 - y1) * (m.value() - lo) / (hi - lo);
            double pl = y0 - (y0 - y1) * (low(m) - lo) / (hi - lo);
            double ph = y0 - (y0 - y1) * (high(m) - lo) / (hi - lo);
            boolean best = chosen.map(x -> x.name().equals(m.name())).orElse(false);
            s.append(line(px, pl, px, ph, "#888"))
                    .append(
                            String.format(
                                    Locale.ROOT,
                                    "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" stroke=\"#1a73e8\"/>",
                                    px,
                                    py,
                                    best ? "#1a73e8" : "white"))
                    .append(
                            text(
                                    (int) Math.round(px + 8),
                                    (int) Math.round(py - 6),
                                    "start",
                                    m.name()));
        }
        return s.append("</svg>").toString();
    }

    private static double low(Method m) {
        return Double.isFinite(m.ciLower()) ? Math.min(m.ciLower(), m.value()) : m.value();
    }

    private static double high(Method m) {
        return Double.isFinite(m.ciUpper()) ? Math.max(m.ciUpper(), m.value()) : m.value();
    }

    private static String line(double xa, double ya, double xb, double yb, String colour) {
        return String.format(
                Locale.ROOT,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>",
                xa,
                ya,
                xb,
                yb,
                colour);
    }

    private static String text(int x, int y, String anchor, String body) {
        return "<text x=\""
                + x
                + "\" y=\""
                + y
                + "\" text-anchor=\""
                + anchor
                + "\" font-size=\"12\">"
                + escape(body)
                + "</text>";
    }

    private static String number(double v, int decimals) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, "%." + decimals + "f", v) : "-";
    }

    static String escape(String s) {
        return s.replace("&", "&amp;")
                .replace("<", "&lt;")
                .replace(">", "&gt;")
                .replace("\"", "&quot;");
    }
}
