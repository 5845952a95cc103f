package io.tuneline.engine.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The loss scaler's state machine against PyTorch's GradScaler update ({@code
 * bench/grad_scaler_reference.py}: torch's own kernel where this torch has it on CPU, else its CUDA
 * kernel transcribed, sharing no code with the engine), step by step over the same found-inf flags:
 * torch's defaults over 5000 steps (the scale grows after 2000 clean steps), odd factors whose
 * products round (0.3, 1.5), and a scale that would grow past float32's range. Without
 * /usr/bin/python3 and torch the test fails, saying what to install.
 */
class LossScalerTest {
    private static final String PYTHON = "/usr/bin/python3";
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void followsGradScalersUpdateStepByStep(@TempDir Path dir) throws Exception {
        record Case(LossScaler.Config config, boolean[] foundInf) {}
        List<Case> cases =
                List.of(
                        new Case(
                                LossScaler.Config.TORCH_DEFAULTS,
                                overflowsAt(6500, 3, 2100, 4100, 4101)),
                        new Case(new LossScaler.Config(3f, 1.5, 0.3, 3), flags(300, 0.25, 2)),
                        new Case(new LossScaler.Config(0x1p125f, 4, 0.7, 1), flags(60, 0.1, 3)));
        ArrayNode requests = JSON.createArrayNode();
        for (int i = 0; i < cases.size(); i++) {
            Case c = cases.get(i);
            ObjectNode r = requests.addObject();
            r.put("init_scale", c.config().initScale());
            r.put("growth_factor", c.config().growthFactor());
            r.put("backoff_factor", c.config().backoffFactor());
            r.put("growth_interval", c.config().growthInterval());
            ArrayNode flags = r.putArray("found_inf");
            for (boolean f : c.foundInf()) {
                flags.add(f);
            }
            r.put("output", dir.resolve("case-" + i + ".json").toString());
        }
        Path request = dir.resolve("request.json");
        ObjectNode root = JSON.createObjectNode();
        root.set("cases", requests);
        Files.writeString(request, JSON.writeValueAsString(root));
        runReference(request);

        for (int i = 0; i < cases.size(); i++) {
            Case c = cases.get(i);
            JsonNode ref = JSON.readTree(dir.resolve("case-" + i + ".json").toFile());
            LossScaler scaler = new LossScaler(c.config());
            int grew = 0;
            int backedOff = 0;
            for (int step = 0; step < c.foundInf().length; step++) {
                float before = scaler.scale();
                scaler.update(c.foundInf()[step]);
                grew += scaler.scale() > before ? 1 : 0;
                backedOff += scaler.scale() < before ? 1 : 0;
                assertThat(scaler.scale())
                        .as("case %d step %d (%s)", i, step, ref.path("source").asText())
                        .isEqualTo((float) ref.path("scale").get(step).asDouble());
                assertThat(scaler.growthTracker())
                        .as("case %d step %d growth tracker", i, step)
                        .isEqualTo(ref.path("growth_tracker").get(step).asInt());
            }
            // Each case moves the scale both ways, so the comparison covers both branches.
            assertThat(grew).as("case %d growths", i).isPositive();
            assertThat(backedOff).as("case %d backoffs", i).isPositive();
        }
        // The last case reached float32's top: a growth to infinity is not taken.
        LossScaler top = new LossScaler(new LossScaler.Config(0x1p127f, 2, 0.5, 1));
        top.update(false);
        assertThat(top.scale()).isEqualTo(0x1p127f);
        assertThat(top.growthTracker()).isZero();
    }

    @Test
    void aScalerResumedFromItsStateContinuesAsTheOriginal() {
        LossScaler.Config config = new LossScaler.Config(1024f, 2, 0.5, 4);
        boolean[] flags = flags(200, 0.2, 7);
        LossScaler whole = new LossScaler(config);
        LossScaler first = new LossScaler(config);
        for (int i = 0; i < 77; i++) {
            whole.update(flags[i]);
            first.update(flags[i]);
        }
        LossScaler resumed = new LossScaler(config, first.scale(), first.growthTracker());
        for (int i = 77; i < flags.length; i++) {
            whole.update(flags[i]);
            resumed.update(flags[i]);
            assertThat(resumed.scale()).as("step %d", i).isEqualTo(whole.scale());
            assertThat(resumed.growthTracker()).as("step %d", i).isEqualTo(whole.growthTracker());
        }
    }

    @Test
    void settingsAndSavedStatesOutsideTheirRangesAreRefused() {
        assertThatThrownBy(() -> new LossScaler.Config(0f, 2, 0.5, 2000))
                .hasMessageContaining("initial scale");
        assertThatThrownBy(() -> new LossScaler.Config(Float.POSITIVE_INFINITY, 2, 0.5, 2000))
                .hasMessageContaining("initial scale");
        assertThatThrownBy(() -> new LossScaler.Config(65536f, 1, 0.5, 2000))
                .hasMessageContaining("growth factor");
        assertThatThrownBy(() -> new LossScaler.Config(65536f, 2, 1, 2000))
                .hasMessageContaining("backoff factor");
        assertThatThrownBy(() -> new LossScaler.Config(65536f, 2, 0.5, 0))
                .hasMessageContaining("growth interval");
        assertThatThrownBy(() -> new LossScaler(LossScaler.Config.TORCH_DEFAULTS, 0f, 0))
                .hasMessageContaining("saved scale");
        assertThatThrownBy(() -> new LossScaler(LossScaler.Config.TORCH_DEFAULTS, 1f, 2000))
                .hasMessageContaining("[0, 2000)");
    }

    /** {@code n} found-inf flags set at {@code steps} only. */
    private static boolean[] overflowsAt(int n, int... steps) {
        boolean[] f = new boolean[n];
        for (int s : steps) {
            f[s] = true;
        }
        return f;
    }

    /** {@code n} found-inf flags, each set with probability {@code p}; seeded. */
    private static boolean[] flags(int n, double p, long seed) {
        Random random = new Random(seed);
        boolean[] f = new boolean[n];
        for (int i = 0; i < n; i++) {
            f[i] = random.nextDouble() < p;
        }
        return f;
    }

    private static void runReference(Path request) throws Exception {
        String hint = "the GradScaler reference needs " + PYTHON + " with torch";
        if (!Files.isExecutable(Path.of(PYTHON))) {
            fail(PYTHON + " is missing; " + hint);
        }
        Process p =
                new ProcessBuilder(PYTHON, script().toString(), request.toString())
                        .redirectErrorStream(true)
                        .start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(300, TimeUnit.SECONDS)).as("reference finished").isTrue();
        assertThat(p.exitValue()).as("reference failed (%s):\n%s", hint, log).isZero();
    }

    private static Path script() {
        Path dir = Path.of("").toAbsolutePath();
        List<Path> tried = new ArrayList<>();
        while (dir != null) {
            Path s = dir.resolve("bench/grad_scaler_reference.py");
            if (Files.isRegularFile(s)) {
                return s;
            }
            tried.add(s);
            dir = dir.getParent();
        }
        throw new IllegalStateException("bench/grad_scaler_reference.py not found: " + tried);
    }
}
