package io.tuneline.engine.method;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import ai.djl.training.GradientCollector;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.model.TunableModel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * Runs {@code bench/prefix_reference.py} (plain PyTorch, written from PEFT's and transformers'
 * source, sharing no code with the engine) with Debian's {@code /usr/bin/python3} and compares.
 */
public final class PrefixReference {
    public static final double TOLERANCE = 1e-4;
    private static final String PYTHON = "/usr/bin/python3";
    private static final ObjectMapper JSON = new ObjectMapper();

    private PrefixReference() {}

    /** What the reference computed for one case. */
    public record Result(
            double[] logits,
            double loss,
            Map<String, double[]> grads,
            Map<String, Boolean> checks) {}

    /** What the engine computed for the same case. */
    public record EngineRun(float[] logits, double loss, Map<String, float[]> grads) {}

    static Path script() {
        Path dir = Path.of("").toAbsolutePath();
        while (dir != null) {
            Path s = dir.resolve("bench/prefix_reference.py");
            if (Files.isRegularFile(s)) {
                return s;
            }
            dir = dir.getParent();
        }
        throw new IllegalStateException("bench/prefix_reference.py not found above " + dir);
    }

    /** A request case; {@code method} as the script documents it. */
    public static ObjectNode newCase(
            String family,
            Path modelDir,
            ObjectNode method,
            long[][] ids,
            long[][] mask,
            Object labels,
            boolean grads) {
        ObjectNode c = JSON.createObjectNode();
        c.put("family", family);
        c.put("model_dir", modelDir.toString());
        c.set("method", method);
        c.set("input_ids", JSON.valueToTree(ids));
        c.set("attention_mask", mask == null ? null : JSON.valueToTree(mask));
        c.set("labels", JSON.valueToTree(labels));
        c.put("grads", grads);
        return c;
    }

    public static ObjectNode tunelineMethod(Path file, int virtualTokens, int projection) {
        ObjectNode m = JSON.createObjectNode();
        m.put("format", "tuneline");
        m.put("file", file.toString());
        m.put("virtual_tokens", virtualTokens);
        m.put("projection_hidden_size", projection);
        return m;
    }

    public static ObjectNode peftMethod(Path dir) {
        ObjectNode m = JSON.createObjectNode();
        m.put("format", "peft");
        m.put("dir", dir.toString());
        return m;
    }

    /** Runs every case in one Python process. */
    public static List<Result> run(Path work, List<ObjectNode> cases) throws Exception {
        if (!Files.isExecutable(Path.of(PYTHON))) {
            fail(PYTHON + " is missing; the prefix reference needs apt-get install python3-torch");
        }
        ObjectNode request = JSON.createObjectNode();
        ArrayNode list = request.putArray("cases");
        for (int i = 0; i < cases.size(); i++) {
            ObjectNode c = cases.get(i).deepCopy();
            c.put("output", work.resolve("prefix-ref-" + i + ".json").toString());
            list.add(c);
        }
        Path requestFile = work.resolve("prefix-request.json");
        Files.writeString(requestFile, JSON.writeValueAsString(request));
        Process p =
                new ProcessBuilder(PYTHON, script().toString(), requestFile.toString())
                        .redirectErrorStream(true)
                        .start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(300, TimeUnit.SECONDS)).as("reference finished").isTrue();
        assertThat(p.exitValue()).as("reference failed:\n%s", log).isZero();
        List<Result> out = new java.util.ArrayList<>();
        for (int i = 0; i < cases.size(); i++) {
            JsonNode r = JSON.readTree(work.resolve("prefix-ref-" + i + ".json").toFile());
            Map<String, double[]> grads = new LinkedHashMap<>();
            r.path("grads")
                    .fields()
                    .forEachRemaining(e -> grads.put(e.getKey(), doubles(e.getValue())));
            Map<String, Boolean> checks = new LinkedHashMap<>();
            r.path("checks")
                    .fields()
                    .forEachRemaining(e -> checks.put(e.getKey(), e.getValue().asBoolean()));
            out.add(
                    new Result(
                            doubles(r.path("logits")), r.path("loss").asDouble(), grads, checks));
        }
        return out;
    }

    private static double[] doubles(JsonNode n) {
        List<Double> v = new java.util.ArrayList<>();
        flatten(n, v);
        return v.stream().mapToDouble(Double::doubleValue).toArray();
    }

    private static void flatten(JsonNode n, List<Double> out) {
        if (n.isArray()) {
            n.forEach(c -> flatten(c, out));
        } else {
            out.add(n.asDouble());
        }
    }

    /**
     * The engine's logits, loss and gradients of {@code trained} for one batch: {@code
     * forwardAndLoss} gives {logits, loss} inside a gradient collector.
     */
    public static EngineRun engine(
            TunableModel model,
            NDManager manager,
            List<String> trained,
            Function<NDManager, NDArray[]> forwardAndLoss) {
        Map<String, Parameter> params = model.namedParameters();
        for (String name : trained) {
            params.get(name).getArray().setRequiresGradient(true);
        }
        try (NDManager m = manager.newSubManager()) {
            float[] logits;
            double loss;
            try (GradientCollector c = Engine.getInstance().newGradientCollector()) {
                NDArray[] out = forwardAndLoss.apply(m);
                logits = out[0].toFloatArray();
                loss = out[1].getFloat();
                c.backward(out[1]);
            }
            Map<String, float[]> grads = new LinkedHashMap<>();
            for (String name : trained) {
                grads.put(name, params.get(name).getArray().getGradient().toFloatArray());
            }
            return new EngineRun(logits, loss, grads);
        }
    }

    /**
     * An export read back by the reference: every check of names, shapes and config passed, and the
     * base plus {@code prompt_embeddings} gives the engine's logits; returns the max difference.
     */
    public static double compareExport(
            String what, float[] engineLogits, Result r, int vocab, long[][] mask) {
        assertThat(r.checks()).as("%s: checks", what).isNotEmpty();
        r.checks().forEach((k, ok) -> assertThat(ok).as("%s: export check %s", what, k).isTrue());
        int t = mask == null ? 0 : mask[0].length;
        double d =
                maxDiff(
                        engineLogits,
                        r.logits(),
                        i -> mask == null || mask[(i / vocab) / t][(i / vocab) % t] == 1);
        assertThat(d).as("%s: logits from the export", what).isLessThan(TOLERANCE);
        return d;
    }

    /** Max |a - b| over the positions {@code use} admits; fails beyond {@link #TOLERANCE}. */
    public static double maxDiff(float[] a, double[] b, java.util.function.IntPredicate use) {
        assertThat(a).as("sizes").hasSize(b.length);
        double max = 0;
        for (int i = 0; i < a.length; i++) {
            if (use.test(i)) {
                max = Math.max(max, Math.abs(a[i] - b[i]));
            }
        }
        return max;
    }

    /** Compares logits (all), loss and every gradient; returns {logits diff, max grad diff}. */
    public static double[] compare(String what, EngineRun e, Result r, int vocab, long[][] mask) {
        int t = mask == null ? 0 : mask[0].length;
        double logits =
                maxDiff(
                        e.logits(),
                        r.logits(),
                        i -> mask == null || mask[(i / vocab) / t][(i / vocab) % t] == 1);
        assertThat(logits).as("%s: logits", what).isLessThan(TOLERANCE);
        assertThat(Math.abs(e.loss() - r.loss())).as("%s: loss", what).isLessThan(TOLERANCE);
        double grads = 0;
        for (Map.Entry<String, double[]> g : r.grads().entrySet()) {
            float[] mine = e.grads().get(g.getKey());
            assertThat(mine).as("%s: engine gradient of %s", what, g.getKey()).isNotNull();
            double d = maxDiff(mine, g.getValue(), i -> true);
            assertThat(d).as("%s: gradient of %s", what, g.getKey()).isLessThan(TOLERANCE);
            double norm = 0;
            for (double v : g.getValue()) {
                norm = Math.max(norm, Math.abs(v));
            }
            assertThat(norm)
                    .as("%s: reference gradient of %s is not zero", what, g.getKey())
                    .isGreaterThan(0);
            grads = Math.max(grads, d);
        }
        assertThat(r.grads().keySet()).as(what).containsAll(e.grads().keySet());
        return new double[] {logits, grads};
    }
}
