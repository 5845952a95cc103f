package io.tuneline.engine.model.gpt2;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import io.tuneline.engine.runtime.EngineRuntime;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A small random GPT-2 written in Hugging Face's layout, loaded into the DJL decoder and checked
 * against the plain-Java reference forward pass.
 */
class Gpt2LmModelTest {
    private static final double TOLERANCE = 1e-4;
    private static final long[][] SEQUENCES = {
        {3, 17, 42, 8, 8, 1, 49, 0, 25, 11},
        {49, 2, 7},
        {5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5}
    };

    private static EngineRuntime runtime;

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    static float[][] forward(Model model, long[][] ids, long[][] mask) {
        Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
        int b = ids.length;
        int t = ids[0].length;
        try (NDManager m = model.getNDManager().newSubManager()) {
            NDList in = new NDList(m.create(flatten(ids), new Shape(b, t)));
            if (mask != null) {
                in.add(m.create(flatten(mask), new Shape(b, t)));
            }
            NDArray logits = lm.forward(new ParameterStore(m, false), in, false).singletonOrThrow();
            assertThat(logits.getShape()).isEqualTo(new Shape(b, t, lm.config().vocabSize()));
            float[] flat = logits.toFloatArray();
            int v = lm.config().vocabSize();
            float[][] out = new float[b * t][];
            for (int i = 0; i < b * t; i++) {
                out[i] = java.util.Arrays.copyOfRange(flat, i * v, (i + 1) * v);
            }
            return out;
        }
    }

    private static long[] flatten(long[][] rows) {
        return java.util.Arrays.stream(rows).flatMapToLong(java.util.Arrays::stream).toArray();
    }

    static void assertClose(float[] actual, double[] expected, String what) {
        assertThat(actual).hasSize(expected.length);
        for (int i = 0; i < expected.length; i++) {
            assertThat((double) actual[i])
                    .as("%s, logit %d", what, i)
                    .isCloseTo(expected[i], org.assertj.core.data.Offset.offset(TOLERANCE));
        }
    }

    @Test
    void logitsMatchThePlainJavaReferenceWithAndWithoutTheTransformerPrefix(@TempDir Path dir)
            throws Exception {
        Map<String, float[]> weights = TinyGpt2.randomWeights(1);
        Gpt2Reference reference = new Gpt2Reference(TinyGpt2.CONFIG, weights);
        for (boolean prefixed : new boolean[] {true, false}) {
            Path modelDir = TinyGpt2.write(dir.resolve("p" + prefixed), weights, prefixed);
            try (Model model = Gpt2Checkpoint.load(modelDir, runtime.device())) {
                assertThat(((Gpt2LmModel) model.getBlock()).config()).isEqualTo(TinyGpt2.CONFIG);
                for (long[] seq : SEQUENCES) {
                    float[][] logits = forward(model, new long[][] {seq}, null);
                    double[][] expected = reference.logits(seq);
                    double spread = 0;
                    for (int t = 0; t < seq.length; t++) {
                        assertClose(logits[t], expected[t], "prefixed " + prefixed + " t=" + t);
                        spread = Math.max(spread, Math.abs(expected[t][0] - expected[t][1]));
                    }
                    // The check means something only if the logits are not all alike.
                    assertThat(spread).isGreaterThan(0.1);
                }
            }
        }
    }

    @Test
    void aPaddingMaskHidesPaddedKeysAndRightPaddingLeavesRealPositionsAlone(@TempDir Path dir)
            throws Exception {
        Map<String, float[]> weights = TinyGpt2.randomWeights(2);
        Gpt2Reference reference = new Gpt2Reference(TinyGpt2.CONFIG, weights);
        try (Model model =
                Gpt2Checkpoint.load(TinyGpt2.write(dir, weights, true), runtime.device())) {
            long[][] ids = {{4, 9, 13, 21, 30, 2}, {7, 8, 9, 0, 0, 0}, {0, 0, 11, 12, 13, 14}};
            long[][] mask = {{1, 1, 1, 1, 1, 1}, {1, 1, 1, 0, 0, 0}, {0, 0, 1, 1, 1, 1}};
            float[][] logits = forward(model, ids, mask);
            int t = ids[0].length;
            // Row 0: no padding. Row 1: right padding, real positions as the unpadded sequence.
            double[][] row0 = reference.logits(ids[0]);
            double[][] row1 = reference.logits(new long[] {7, 8, 9});
            double[][] row2 = reference.logits(ids[2], mask[2]);
            for (int i = 0; i < t; i++) {
                assertClose(logits[i], row0[i], "row 0, t=" + i);
            }
            for (int i = 0; i < 3; i++) {
                assertClose(logits[t + i], row1[i], "row 1, t=" + i);
            }
            // Row 2: left padding is hidden from the real tokens (positions stay 0..T-1).
            for (int i = 2; i < t; i++) {
                assertClose(logits[2 * t + i], row2[i], "row 2, t=" + i);
            }
            double[][] unmasked = reference.logits(ids[2]);
            assertThat(Math.abs(unmasked[5][0] - row2[5][0])).isGreaterThan(1e-3);
        }
    }

    @Test
    void logitsAtAPositionDoNotDependOnLaterTokens(@TempDir Path dir) throws Exception {
        try (Model model =
                Gpt2Checkpoint.load(
                        TinyGpt2.write(dir, TinyGpt2.randomWeights(3), true), runtime.device())) {
            long[] a = {1, 2, 3, 4, 5, 6, 7, 8};
            long[] b = {1, 2, 3, 4, 40, 41, 42, 43};
            float[][] la = forward(model, new long[][] {a}, null);
            float[][] lb = forward(model, new long[][] {b}, null);
            for (int t = 0; t < 4; t++) {
                assertThat(lb[t]).as("position %d", t).containsExactly(la[t]);
            }
            // ... while a changed token does change its own and later positions.
            assertThat(lb[4]).isNotEqualTo(la[4]);
            assertThat(lb[7]).isNotEqualTo(la[7]);
        }
    }

    @Test
    void parametersCarryHuggingFaceNamesAndSavingTransposesConv1DWeightsBack(@TempDir Path dir)
            throws Exception {
        Map<String, float[]> weights = TinyGpt2.randomWeights(4);
        try (Model model =
                Gpt2Checkpoint.load(
                        TinyGpt2.write(dir.resolve("in"), weights, true), runtime.device())) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            Map<String, ai.djl.nn.Parameter> named = lm.namedParameters();
            assertThat(named).hasSize(weights.size());
            weights.keySet().forEach(n -> assertThat(named).containsKey("transformer." + n));
            // Held as (out, in): transposed relative to the checkpoint's Conv1D (in, out).
            assertThat(named.get("transformer.h.0.attn.c_attn.weight").getArray().getShape())
                    .isEqualTo(new Shape(96, 32));
            assertThat(named.get("transformer.h.1.mlp.c_fc.weight").getArray().getShape())
                    .isEqualTo(new Shape(128, 32));

            Gpt2Checkpoint.save(lm, dir.resolve("out"));
            try (SafetensorsFile f =
                    SafetensorsFile.open(dir.resolve("out").resolve(Gpt2Checkpoint.WEIGHTS))) {
                assertThat(f.names()).hasSize(weights.size());
                for (Map.Entry<String, float[]> e : weights.entrySet()) {
                    String name = "transformer." + e.getKey();
                    assertThat(f.info(name).shape()).isEqualTo(TinyGpt2.shape(e.getKey()));
                    assertThat(f.floats(name)).as(name).containsExactly(e.getValue());
                }
            }
            assertThat(Gpt2Config.read(dir.resolve("out"))).isEqualTo(TinyGpt2.CONFIG);
        }
    }

    @Test
    void aCheckpointThatDoesNotFitFailsNamingTheTensor(@TempDir Path dir) throws Exception {
        Map<String, float[]> weights = TinyGpt2.randomWeights(5);
        Map<String, float[]> missing = new LinkedHashMap<>(weights);
        missing.remove("h.1.mlp.c_fc.bias");
        assertThatThrownBy(
                        () ->
                                Gpt2Checkpoint.load(
                                                TinyGpt2.write(dir.resolve("a"), missing, true),
                                                runtime.device())
                                        .close())
                .hasMessageContaining("transformer.h.1.mlp.c_fc.bias")
                .hasMessageContaining("missing");

        // A (out, in) weight where Conv1D's (in, out) belongs.
        Path transposed = TinyGpt2.write(dir.resolve("b"), weights, true);
        SafetensorsWriter w = new SafetensorsWriter();
        try (SafetensorsFile f = SafetensorsFile.open(transposed.resolve("model.safetensors"))) {
            for (String n : f.names()) {
                long[] s = f.info(n).shape();
                if (n.equals("transformer.h.0.attn.c_attn.weight")) {
                    s = new long[] {s[1], s[0]};
                }
                w.addF32(n, s, f.floats(n));
            }
        }
        w.write(transposed.resolve("model.safetensors"));
        assertThatThrownBy(() -> Gpt2Checkpoint.load(transposed, runtime.device()).close())
                .hasMessageContaining("transformer.h.0.attn.c_attn.weight")
                .hasMessageContaining("Conv1D");

        Path extra = TinyGpt2.write(dir.resolve("c"), weights, true);
        SafetensorsWriter w2 = new SafetensorsWriter();
        try (SafetensorsFile f = SafetensorsFile.open(extra.resolve("model.safetensors"))) {
            for (String n : f.names()) {
                float[] v = f.floats(n);
                if (n.equals("lm_head.weight")) {
                    v[0] += 1;
                }
                w2.addF32(n, f.info(n).shape(), v);
            }
            w2.addF32("score.weight", new long[] {2, 32}, new float[64]);
        }
        w2.write(extra.resolve("model.safetensors"));
        assertThatThrownBy(() -> Gpt2Checkpoint.load(extra, runtime.device()).close())
                .hasMessageContaining("lm_head.weight differs from wte");

        Files.writeString(
                dir.resolve("a").resolve("config.json"),
                TinyGpt2.CONFIG_JSON.replace("gelu_new", "relu"));
        assertThatThrownBy(() -> Gpt2Checkpoint.load(dir.resolve("a"), runtime.device()).close())
                .hasMessageContaining("activation_function 'relu'");
    }
}
