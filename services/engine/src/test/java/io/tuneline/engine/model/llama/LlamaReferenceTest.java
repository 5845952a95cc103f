package io.tuneline.engine.model.llama;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.runtime.EngineRuntime;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The engine's Llama-family decoder against an independent reference: {@code
 * bench/llama_reference.py}, a plain-PyTorch forward pass written from transformers' modeling
 * files, sharing no code with the engine and reading the safetensors files itself. Every variant
 * (untied, tied, GQA with biases, Mistral's sliding window shorter than the sequence, Qwen2's q/k/v
 * bias with a sliding window on its second layer only, Qwen3's q/k norms with head_dim != hidden /
 * heads, rope_scaling llama3, linear, yarn and dynamic) is written as a small random checkpoint,
 * plus a BF16 and a sharded checkpoint; logits of an unpadded batch, of a right- and left-padded
 * batch and of one 300-token sequence (beyond every max_position_embeddings and window here) must
 * agree within 1e-4 at every real token. Without /usr/bin/python3 and torch the test fails, saying
 * {@code apt-get install python3-torch}.
 */
class LlamaReferenceTest {
    private static final double TOLERANCE = 1e-4;
    private static final String PYTHON = "/usr/bin/python3";
    private static final ObjectMapper JSON = new ObjectMapper();

    private static final long[][] PLAIN = {
        {1, 17, 42, 8, 8, 3, 59, 0, 25, 11}, {1, 5, 5, 5, 5, 5, 5, 5, 5, 60}
    };
    private static final long[][] PADDED = {
        {1, 9, 33, 21, 30, 2, 14, 44, 7, 52},
        {1, 7, 8, 9, 40, 6, 0, 0, 0, 0},
        {0, 0, 1, 12, 13, 14, 15, 16, 17, 18}
    };
    private static final long[][] PADDED_MASK = {
        {1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
        {1, 1, 1, 1, 1, 1, 0, 0, 0, 0},
        {0, 0, 1, 1, 1, 1, 1, 1, 1, 1}
    };

    /** 300 tokens: rotation angles far beyond max_position_embeddings and every window. */
    private static final long[][] LONG = {new java.util.Random(3).longs(300, 0, 61).toArray()};

    private static EngineRuntime runtime;

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    /** The reference needs Debian's PyTorch; without it the test fails saying how to get it. */
    static void requireTorch() throws Exception {
        String hint =
                "the Llama reference needs "
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
            Path s = dir.resolve("bench/llama_reference.py");
            if (Files.isRegularFile(s)) {
                return s;
            }
            dir = dir.getParent();
        }
        throw new IllegalStateException(
                "bench/llama_reference.py not found above the working directory");
    }

    /** One reference run over every case: case name -> logits [B][T][V]. */
    static Map<String, double[][][]> reference(Path work, Map<String, Case> cases)
            throws Exception {
        ObjectNode request = JSON.createObjectNode();
        ArrayNode list = request.putArray("cases");
        Map<String, Path> outputs = new LinkedHashMap<>();
        for (Map.Entry<String, Case> e : cases.entrySet()) {
            ObjectNode c = list.addObject();
            c.put("model_dir", e.getValue().dir().toString());
            c.put("bf16_weights", e.getValue().bf16Weights());
            c.put("fp16_autocast", e.getValue().fp16Autocast());
            c.set("input_ids", JSON.valueToTree(e.getValue().ids()));
            if (e.getValue().mask() == null) {
                c.putNull("attention_mask");
            } else {
                c.set("attention_mask", JSON.valueToTree(e.getValue().mask()));
            }
            Path out = work.resolve(e.getKey() + ".logits.json");
            c.put("output", out.toString());
            outputs.put(e.getKey(), out);
        }
        Path requestFile = work.resolve("request.json");
        Files.writeString(requestFile, JSON.writeValueAsString(request));
        Process p =
                new ProcessBuilder(PYTHON, script().toString(), requestFile.toString())
                        .redirectErrorStream(true)
                        .start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(300, TimeUnit.SECONDS)).as("reference finished").isTrue();
        assertThat(p.exitValue()).as("reference failed:\n%s", log).isZero();
        Map<String, double[][][]> result = new LinkedHashMap<>();
        for (Map.Entry<String, Path> e : outputs.entrySet()) {
            JsonNode logits = JSON.readTree(e.getValue().toFile()).path("logits");
            result.put(e.getKey(), JSON.treeToValue(logits, double[][][].class));
        }
        return result;
    }

    /**
     * One reference forward pass; {@code bf16Weights}: the projection weights rounded to bfloat16
     * first (the engine's precision {@code bf16}); {@code fp16Autocast}: the projections run as
     * {@code torch.autocast(float16)} runs them (the engine's precision {@code fp16} with half
     * matmuls).
     */
    record Case(Path dir, long[][] ids, long[][] mask, boolean bf16Weights, boolean fp16Autocast) {
        Case(Path dir, long[][] ids, long[][] mask, boolean bf16Weights) {
            this(dir, ids, mask, bf16Weights, false);
        }

        Case(Path dir, long[][] ids, long[][] mask) {
            this(dir, ids, mask, false);
        }
    }

    static float[] forward(Model model, long[][] ids, long[][] mask) {
        LlamaLmModel lm = (LlamaLmModel) model.getBlock();
        int b = ids.length;
        int t = ids[0].length;
        try (NDManager m = model.getNDManager().newSubManager()) {
            NDArray in = m.create(flatten(ids), new Shape(b, t));
            NDArray maskArray = mask == null ? null : m.create(flatten(mask), new Shape(b, t));
            NDArray logits = lm.logits(new ParameterStore(m, false), in, maskArray, null, false);
            assertThat(logits.getShape()).isEqualTo(new Shape(b, t, lm.config().vocabSize()));
            return logits.toFloatArray();
        }
    }

    static long[] flatten(long[][] rows) {
        return Arrays.stream(rows).flatMapToLong(Arrays::stream).toArray();
    }

    /** Max |engine - reference| over the real tokens; also checks the logits are not all alike. */
    static double maxDifference(float[] actual, double[][][] expected, long[][] mask, String what) {
        int b = expected.length;
        int t = expected[0].length;
        int v = expected[0][0].length;
        double max = 0;
        double spread = 0;
        for (int i = 0; i < b; i++) {
            for (int j = 0; j < t; j++) {
                if (mask != null && mask[i][j] == 0) {
                    continue;
                }
                for (int k = 0; k < v; k++) {
                    double diff = Math.abs(actual[(i * t + j) * v + k] - expected[i][j][k]);
                    if (!(diff <= TOLERANCE)) {
                        fail(
                                "%s: logit (%d, %d, %d) is %s, reference %s",
                                what, i, j, k, actual[(i * t + j) * v + k], expected[i][j][k]);
                    }
                    max = Math.max(max, diff);
                }
                spread = Math.max(spread, Math.abs(expected[i][j][0] - expected[i][j][1]));
            }
        }
        // The comparison means something only if the logits differ from each other.
        assertThat(spread).as("%s: spread of the reference logits", what).isGreaterThan(0.1);
        return max;
    }

    @Test
    void everyVariantMatchesThePlainPyTorchReferenceWithAndWithoutPadding(@TempDir Path dir)
            throws Exception {
        requireTorch();
        Map<String, Path> checkpoints = new LinkedHashMap<>();
        long seed = 11;
        for (String variant : TinyLlamas.variants().keySet()) {
            checkpoints.put(variant, TinyLlamas.write(variant, dir.resolve(variant), seed++));
        }
        Path bf16 = TinyLlamas.write("llama-gqa", dir.resolve("llama-gqa-bf16"), 99);
        TinyLlamas.toBf16(bf16);
        checkpoints.put("llama-gqa-bf16", bf16);
        Path sharded = TinyLlamas.write("qwen3-qknorm", dir.resolve("qwen3-sharded"), 98);
        TinyLlamas.shard(sharded);
        checkpoints.put("qwen3-sharded", sharded);
        // The engine's own sharded export, as transformers reads it (by the index's weight_map).
        Path saved = dir.resolve("llama-untied-saved-shards");
        try (Model m = LlamaCheckpoint.load(checkpoints.get("llama-untied"), runtime.device())) {
            LlamaCheckpoint.save(
                    (LlamaLmModel) m.getBlock(),
                    saved,
                    io.tuneline.engine.io.safetensors.Dtype.F32,
                    Files.size(checkpoints.get("llama-untied").resolve("model.safetensors")) / 3);
        }
        assertThat(saved.resolve(LlamaCheckpoint.INDEX)).exists();
        checkpoints.put("llama-untied-saved-shards", saved);

        Map<String, Case> cases = new LinkedHashMap<>();
        checkpoints.forEach(
                (name, path) -> {
                    cases.put(name + ".plain", new Case(path, PLAIN, null));
                    cases.put(name + ".padded", new Case(path, PADDED, PADDED_MASK));
                    cases.put(name + ".long", new Case(path, LONG, null));
                });
        Map<String, double[][][]> expected = reference(dir, cases);

        List<String> report = new ArrayList<>();
        for (Map.Entry<String, Path> e : checkpoints.entrySet()) {
            try (Model model = LlamaCheckpoint.load(e.getValue(), runtime.device())) {
                double plain =
                        maxDifference(
                                forward(model, PLAIN, null),
                                expected.get(e.getKey() + ".plain"),
                                null,
                                e.getKey() + " unpadded");
                double padded =
                        maxDifference(
                                forward(model, PADDED, PADDED_MASK),
                                expected.get(e.getKey() + ".padded"),
                                PADDED_MASK,
                                e.getKey() + " padded");
                double longer =
                        maxDifference(
                                forward(model, LONG, null),
                                expected.get(e.getKey() + ".long"),
                                null,
                                e.getKey() + " 300 tokens");
                report.add(String.format("%s %.2e %.2e %.2e", e.getKey(), plain, padded, longer));
            }
        }
        // The numbers the engine README quotes (max |difference|: unpadded, padded, 300 tokens).
        System.out.println(
                "Llama reference, max abs logit difference:\n" + String.join("\n", report));
        assertThat(report).hasSize(checkpoints.size());
    }
}
