package io.tuneline.engine.quant;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import ai.djl.ndarray.NDManager;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.runtime.EngineRuntime;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The engine's NF4 against {@code bench/nf4_reference.py}, bitsandbytes' algorithm written again in
 * plain PyTorch from bitsandbytes' source, sharing no code with the engine: the same inputs, read
 * by both from one safetensors file, must give the same packed bytes and 8-bit codes bit for bit,
 * and each side must read the other's bitsandbytes state dict.
 */
class Nf4ReferenceTest {
    @TempDir static Path dir;

    private static final Map<String, Nf4Weight> quantized = new LinkedHashMap<>();
    private static SafetensorsFile inputs;
    private static SafetensorsFile expected;

    @BeforeAll
    static void runTheReference() throws Exception {
        python("generate", dir.toString());
        inputs = SafetensorsFile.open(dir.resolve("inputs.safetensors"));
        expected = SafetensorsFile.open(dir.resolve("expected.safetensors"));
        // The settings of each tensor travel in the inputs' metadata: "blocksize,doubleQuant".
        for (Map.Entry<String, String> e : inputs.metadata().entrySet()) {
            String[] setting = e.getValue().split(",");
            quantized.putAll(
                    Nf4Checkpoint.quantize(
                            inputs,
                            e.getKey()::equals,
                            Integer.parseInt(setting[0]),
                            Boolean.parseBoolean(setting[1])));
        }
        assertThat(quantized).hasSize(9);
    }

    @AfterAll
    static void close() {
        inputs.close();
        expected.close();
    }

    @Test
    void packedCodesAndScalesAreBitsandbytesBitForBit() {
        for (Map.Entry<String, Nf4Weight> e : quantized.entrySet()) {
            String name = e.getKey();
            Nf4Weight w = e.getValue();
            assertThat(w.packed())
                    .as(name + " packed codes")
                    .isEqualTo(expected.bytes(name + ".packed"));
            assertThat(expected.info(name + ".packed").shape())
                    .containsExactly(w.packed().length, 1);
            if (w.absmax() instanceof Nf4Absmax.DoubleQuantized d) {
                assertThat(d.codes())
                        .as(name + " 8-bit absmax codes")
                        .isEqualTo(expected.bytes(name + ".qabsmax"));
                float offset = expected.floats(name + ".offset")[0];
                // PyTorch takes the mean with a float32 reduction, the engine in double.
                assertThat(Math.abs(d.offset() - offset))
                        .as(name + " offset")
                        .isLessThanOrEqualTo(Math.ulp(offset));
                float[] nested = expected.floats(name + ".nested_absmax");
                assertThat(d.nestedAbsmax()).hasSameSizeAs(nested);
                for (int i = 0; i < nested.length; i++) {
                    assertThat(Math.abs(d.nestedAbsmax()[i] - nested[i]))
                            .as(name + " nested absmax " + i)
                            .isLessThanOrEqualTo(2 * Math.ulp(offset));
                }
                assertThat(d.nestedMap()).isEqualTo(Blockwise8Bit.dynamicMap());
            } else {
                assertThat(w.absmax().values())
                        .as(name + " absmax")
                        .isEqualTo(expected.floats(name + ".absmax"));
            }
        }
        // create_dynamic_map goes through torch.linspace, whose CPU kernel (vectorised, with or
        // without fused multiply-adds depending on the build) moves some entries by one float32
        // step; bitsandbytes stores the map it used, and dequantization reads it from the file.
        float[] theirs = expected.floats("dynamic_map");
        float[] ours = Blockwise8Bit.dynamicMap();
        int moved = 0;
        for (int i = 0; i < 256; i++) {
            assertThat(Math.abs(ours[i] - theirs[i]))
                    .as("create_dynamic_map()[%d]", i)
                    .isLessThanOrEqualTo(2 * Math.ulp(theirs[i]));
            moved += ours[i] == theirs[i] ? 0 : 1;
        }
        System.out.println(
                "create_dynamic_map: " + moved + " of 256 entries differ in the last bits");
    }

    @Test
    void dequantizedWeightsMatchTheReferenceAndStayWithinNf4sErrorBound() {
        try (NDManager manager =
                NDManager.newBaseManager(EngineRuntime.start(2).device(), EngineRuntime.ENGINE)) {
            for (Map.Entry<String, Nf4Weight> e : quantized.entrySet()) {
                String name = e.getKey();
                Nf4Weight w = e.getValue();
                var deq = w.dequantize(manager);
                assertThat(deq.getShape().getShape()).containsExactly(w.shape());
                float[] mine = deq.toFloatArray();
                float[] theirs = expected.floats(name + ".dequantized");
                float[] original = inputs.floats(name);
                float[] trueAbsmax = expected.floats(name + ".absmax");
                float[] usedAbsmax = w.absmax().values();
                for (int i = 0; i < mine.length; i++) {
                    int block = i / w.blocksize();
                    // The native lookup and multiply, exactly the float32 product in Java.
                    assertThat(mine[i])
                            .as("%s[%d], native vs code value x scale", name, i)
                            .isEqualTo(Nf4.CODE[w.code(i)] * usedAbsmax[block]);
                    // Equal unless the offsets differ in their last bit (float32 vs double mean).
                    assertThat(Math.abs(mine[i] - theirs[i]))
                            .as("%s[%d] vs reference", name, i)
                            .isLessThanOrEqualTo(
                                    4 * Math.ulp(Math.max(1e-30f, Math.abs(theirs[i]))));
                    float a = usedAbsmax[block];
                    double bound =
                            Math.abs(a) * Nf4.MAX_CODE_GAP / 2
                                    + Math.abs(a - trueAbsmax[block])
                                    + 2 * Math.ulp(Math.abs(a));
                    assertThat((double) Math.abs(original[i] - mine[i]))
                            .as("%s[%d] error, block absmax %s", name, i, trueAbsmax[block])
                            .isLessThanOrEqualTo(bound);
                }
            }
        }
    }

    @Test
    void theReferenceReadsOurStateDictAsBitsandbytesLayout() throws Exception {
        Path file = dir.resolve("engine_state_dict.safetensors");
        Nf4StateDict.write(quantized, file);
        String out = python("check", file.toString(), dir.toString());
        assertThat(out).contains("OK 9 weights");
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            Map<String, Nf4Weight> back = Nf4StateDict.readAll(f);
            assertThat(back.keySet()).containsExactlyInAnyOrderElementsOf(quantized.keySet());
            back.forEach(
                    (name, w) -> {
                        Nf4Weight mine = quantized.get(name);
                        assertThat(w.packed()).isEqualTo(mine.packed());
                        assertThat(w.absmax()).usingRecursiveComparison().isEqualTo(mine.absmax());
                        assertThat(w.shape()).isEqualTo(mine.shape());
                        assertThat(w.dtype()).isEqualTo(mine.dtype());
                    });
            String json =
                    new String(
                            f.bytes("m.c.weight" + Nf4StateDict.QUANT_STATE_SUFFIX),
                            StandardCharsets.UTF_8);
            assertThat(json)
                    .startsWith(
                            "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\","
                                    + " \"shape\": [300, 257], \"nested_blocksize\": 256,"
                                    + " \"nested_dtype\": \"float32\", \"nested_offset\": ");
        }
    }

    @Test
    void weReadTheReferencesBitsandbytesStateDict() throws Exception {
        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve("bnb_state_dict.safetensors"));
                NDManager manager =
                        NDManager.newBaseManager(
                                EngineRuntime.start(2).device(), EngineRuntime.ENGINE)) {
            Map<String, Nf4Weight> read = Nf4StateDict.readAll(f);
            assertThat(read.keySet()).containsExactlyInAnyOrderElementsOf(quantized.keySet());
            assertThat(read.get("m.g.weight").dtype().name()).isEqualTo("BF16");
            for (Map.Entry<String, Nf4Weight> e : read.entrySet()) {
                String name = e.getKey();
                // The same stored numbers give the same float32 operations: exact.
                assertThat(e.getValue().dequantize(manager).toFloatArray())
                        .as(name)
                        .isEqualTo(expected.floats(name + ".dequantized"));
            }
        }
    }

    /** Runs the reference with Debian's Python, failing with what to install when it cannot. */
    private static String python(String... args) throws IOException, InterruptedException {
        Path script = findScript();
        Process probe =
                new ProcessBuilder("/usr/bin/python3", "-c", "import torch")
                        .redirectErrorStream(true)
                        .start();
        probe.getInputStream().readAllBytes();
        if (!probe.waitFor(60, TimeUnit.SECONDS) || probe.exitValue() != 0) {
            fail(
                    "the NF4 reference needs PyTorch for /usr/bin/python3: apt-get install"
                            + " python3-torch");
        }
        List<String> command =
                new java.util.ArrayList<>(List.of("/usr/bin/python3", script.toString()));
        command.addAll(List.of(args));
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(300, TimeUnit.SECONDS) || p.exitValue() != 0) {
            fail("bench/nf4_reference.py " + String.join(" ", args) + " failed:\n" + out);
        }
        return out;
    }

    private static Path findScript() {
        Path at = Path.of("").toAbsolutePath();
        while (at != null) {
            Path script = at.resolve("bench").resolve("nf4_reference.py");
            if (Files.isRegularFile(script)) {
                return script;
            }
            at = at.getParent();
        }
        throw new IllegalStateException(
                "bench/nf4_reference.py not found above " + Path.of("").toAbsolutePath());
    }
}
