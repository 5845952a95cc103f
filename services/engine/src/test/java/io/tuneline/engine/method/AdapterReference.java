package io.tuneline.engine.method;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import io.tuneline.engine.nn.NativeCopy;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.function.BiFunction;

/**
 * Runs {@code bench/adapter_reference.py} (plain PyTorch, the {@code adapters} library's forward
 * rewritten from its source, sharing no code with the engine) and compares its outputs and
 * gradients with the engine's; shared by the per-family adapter tests.
 */
public final class AdapterReference {
    public static final double TOLERANCE = 1e-4;
    private static final String PYTHON = "/usr/bin/python3";
    private static final ObjectMapper JSON = new ObjectMapper();

    private AdapterReference() {}

    /** One adapter's parameters in the library's {@code Adapter}: Linear(H, m) and Linear(m, H). */
    public static long perAdapter(int hidden, int bottleneck) {
        return (long) hidden * bottleneck + bottleneck + (long) bottleneck * hidden + hidden;
    }

    public static void requireTorch() throws Exception {
        String hint =
                "the adapter reference needs "
                        + PYTHON
                        + " with torch: apt-get install python3-torch";
        if (!Files.isExecutable(Path.of(PYTHON))) {
            fail(PYTHON + " is missing; " + hint);
        }
        Process p =
                new ProcessBuilder(PYTHON, "-c", "import torch").redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
            fail("cannot import torch (" + out.strip() + "); " + hint);
        }
    }

    static Path script() {
        Path dir = Path.of("").toAbsolutePath();
        while (dir != null) {
            Path s = dir.resolve("bench/adapter_reference.py");
            if (Files.isRegularFile(s)) {
                return s;
            }
            dir = dir.getParent();
        }
        throw new IllegalStateException(
                "bench/adapter_reference.py not found above the working directory");
    }

    /** A case comparing with the engine's trained tensors (adapters and, for BERT, the head). */
    public static ObjectNode trainedCase(
            String family,
            Path modelDir,
            Path trained,
            FineTuningMethod.Adapter adapter,
            long[][] ids,
            long[][] mask,
            float[] probe,
            Path output) {
        ObjectNode c = baseCase(family, modelDir, ids, mask, output);
        c.put("trained", trained.toString());
        ObjectNode a = c.putObject("adapter");
        a.put("original_ln_before", adapter.placement().originalLnBefore());
        a.put("non_linearity", adapter.effectiveActivation());
        c.set("probe", JSON.valueToTree(probe));
        return c;
    }

    /** A case reading an export in the adapters library's layout. */
    public static ObjectNode exportCase(
            String family,
            Path modelDir,
            Path adapterDir,
            long[][] ids,
            long[][] mask,
            Path output) {
        ObjectNode c = baseCase(family, modelDir, ids, mask, output);
        c.put("adapter_dir", adapterDir.toString());
        c.putNull("probe");
        return c;
    }

    private static ObjectNode baseCase(
            String family, Path modelDir, long[][] ids, long[][] mask, Path output) {
        ObjectNode c = JSON.createObjectNode();
        c.put("family", family);
        c.put("model_dir", modelDir.toString());
        c.set("input_ids", JSON.valueToTree(ids));
        if (mask == null) {
            c.putNull("attention_mask");
        } else {
            c.set("attention_mask", JSON.valueToTree(mask));
        }
        c.put("output", output.toString());
        return c;
    }

    /** Runs every case in one reference process; their outputs in order. */
    public static List<JsonNode> run(Path work, List<ObjectNode> cases) throws Exception {
        requireTorch();
        ObjectNode request = JSON.createObjectNode();
        request.putArray("cases").addAll(cases);
        Path file = work.resolve("adapter-request.json");
        Files.writeString(file, JSON.writeValueAsString(request));
        Process p =
                new ProcessBuilder(PYTHON, script().toString(), file.toString())
                        .redirectErrorStream(true)
                        .start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(300, TimeUnit.SECONDS)).as("reference finished").isTrue();
        assertThat(p.exitValue()).as("reference failed:\n%s", log).isZero();
        List<JsonNode> out = new ArrayList<>();
        for (ObjectNode c : cases) {
            out.add(JSON.readTree(Path.of(c.path("output").asText()).toFile()));
        }
        return out;
    }

    /** Writes parameters as float32 safetensors under their names. */
    public static void writeTensors(Map<String, Parameter> params, Path file) throws Exception {
        SafetensorsWriter w = new SafetensorsWriter();
        params.forEach(
                (name, p) ->
                        w.addF32(
                                name,
                                p.getArray().getShape().getShape(),
                                p.getArray().toFloatArray()));
        w.write(file);
    }

    /** Fills parameters with N(0, std) values, so an adapter's every path carries signal. */
    public static void randomize(Map<String, Parameter> params, long seed, double std) {
        Random r = new Random(seed);
        params.values()
                .forEach(
                        p -> {
                            float[] v = new float[(int) p.getArray().size()];
                            for (int i = 0; i < v.length; i++) {
                                v[i] = (float) (r.nextGaussian() * std);
                            }
                            NativeCopy.copyInto(p.getArray(), v);
                        });
    }

    public static Map<String, float[]> snapshot(Map<String, Parameter> params) {
        Map<String, float[]> s = new LinkedHashMap<>();
        params.forEach((n, p) -> s.put(n, p.getArray().toFloatArray()));
        return s;
    }

    /** Row-major values of a nested JSON array. */
    public static float[] flatten(JsonNode nested) {
        List<Float> values = new ArrayList<>();
        collect(nested, values);
        float[] out = new float[values.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = values.get(i);
        }
        return out;
    }

    private static void collect(JsonNode n, List<Float> out) {
        if (n.isArray()) {
            n.forEach(c -> collect(c, out));
        } else {
            out.add((float) n.asDouble());
        }
    }

    /** Max |a - b|; fails when the lengths differ. */
    public static double maxDiff(float[] a, float[] b, String what) {
        assertThat(a.length).as("%s: number of values", what).isEqualTo(b.length);
        double max = 0;
        for (int i = 0; i < a.length; i++) {
            double d = Math.abs(a[i] - b[i]);
            if (!(d <= max)) {
                max = d;
            }
        }
        return max;
    }

    public static double maxAbs(float[] a) {
        double m = 0;
        for (float v : a) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }

    /** An output and the gradients of {@code sum(output * probe)} for {@code trainable}. */
    public record Pass(float[] output, Map<String, float[]> gradients) {}

    /**
     * One forward pass in training mode (the tests switch dropout off) and one backward pass of
     * {@code sum(output * probe)}.
     */
    public static Pass forwardBackward(
            Model model,
            Map<String, Parameter> trainable,
            BiFunction<ParameterStore, NDManager, NDArray> forward,
            float[] probe) {
        for (Parameter p : trainable.values()) {
            NDArray g = p.getArray().getGradient();
            g.muli(0f);
        }
        try (NDManager m = model.getNDManager().newSubManager();
                GradientCollector gc = Engine.getInstance().newGradientCollector()) {
            NDArray out = forward.apply(new ParameterStore(m, false), m);
            NDArray loss = out.mul(m.create(probe, out.getShape())).sum();
            gc.backward(loss);
            Map<String, float[]> grads = new LinkedHashMap<>();
            trainable.forEach((n, p) -> grads.put(n, p.getArray().getGradient().toFloatArray()));
            return new Pass(out.toFloatArray(), grads);
        }
    }

    /** A probe of N(0, 1) coefficients. */
    public static float[] probe(int n, long seed) {
        Random r = new Random(seed);
        float[] p = new float[n];
        for (int i = 0; i < n; i++) {
            p[i] = (float) r.nextGaussian();
        }
        return p;
    }

    /**
     * Compares a pass with the reference's output and gradients within {@link #TOLERANCE}; returns
     * {max output difference, max gradient difference}.
     */
    public static double[] compare(Pass pass, JsonNode reference, String what) {
        double out = maxDiff(pass.output(), flatten(reference.path("output")), what + " output");
        assertThat(out).as("%s: max |output - reference|", what).isLessThanOrEqualTo(TOLERANCE);
        double grad = 0;
        assertThat(reference.path("grads").size())
                .as("%s: gradients from the reference", what)
                .isEqualTo(pass.gradients().size());
        for (Map.Entry<String, float[]> e : pass.gradients().entrySet()) {
            JsonNode ref = reference.path("grads").path(e.getKey());
            assertThat(ref.isMissingNode())
                    .as("%s: reference gradient of %s", what, e.getKey())
                    .isFalse();
            float[] expected = flatten(ref);
            double d = maxDiff(e.getValue(), expected, what + " gradient " + e.getKey());
            assertThat(d)
                    .as(
                            "%s: max |gradient - reference| of %s (max |g| %s)",
                            what, e.getKey(), maxAbs(expected))
                    .isLessThanOrEqualTo(TOLERANCE);
            assertThat(maxAbs(expected))
                    .as("%s: gradient of %s is not zero", what, e.getKey())
                    .isGreaterThan(0);
            grad = Math.max(grad, d);
        }
        return new double[] {out, grad};
    }
}
