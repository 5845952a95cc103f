package io.tuneline.engine.model.llama;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.export.PeftAdapter;
import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.io.safetensors.SafetensorsStreamWriter;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.model.CausalLmCheckpoint;
import io.tuneline.engine.model.CausalLmInference;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmLoss;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.LmExample;
import io.tuneline.engine.train.ResumeRuns;
import io.tuneline.engine.train.TrainingListener;
import io.tuneline.engine.train.TrainingOutcome;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.engine.train.Validation;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Llama family as a {@link io.tuneline.engine.model.TunableModel}: every method applies through
 * the seam, LoRA trains only its matrices, the merged export is {@code W + (alpha/r) B A} computed
 * by hand, a saved model loads back through the catalogue with the same logits, and a resumed run
 * continues the uninterrupted one with attention dropout on.
 */
class LlamaTrainingTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    /**
     * Llama with 8 query heads on 2 key/value heads, q/k/v/o biases but none on the MLP, its own
     * lm_head.
     */
    static final String UNTIED =
            "{\"model_type\": \"llama\", \"vocab_size\": 61, \"hidden_size\": 32,"
                    + " \"intermediate_size\": 48, \"num_hidden_layers\": 2,"
                    + " \"num_attention_heads\": 8, \"num_key_value_heads\": 2, \"head_dim\": 8,"
                    + " \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-6,"
                    + " \"rope_theta\": 10000.0, \"attention_bias\": true, \"mlp_bias\": false,"
                    + " \"tie_word_embeddings\": false, \"bos_token_id\": 1, \"eos_token_id\": 2}";

    private static EngineRuntime runtime;

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    static Path write(Path dir, String json, long seed) throws Exception {
        LlamaCheckpoint.saveRandom(LlamaConfig.parse(json), dir, seed, 0.1);
        return dir;
    }

    /** Four fixed sequences, repeated, one with an unscored prompt. */
    static List<LmExample> dataset() {
        List<LmExample> data = new ArrayList<>();
        for (int copy = 0; copy < 2; copy++) {
            data.add(LmExample.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12));
            data.add(LmExample.of(20, 22, 24, 26, 28, 30, 32, 34, 36, 38));
            data.add(LmExample.of(40, 41, 40, 41, 40, 41, 40, 41, 40, 41, 40, 41, 40, 41));
            data.add(
                    new LmExample(
                            new long[] {7, 7, 7, 49, 13, 14, 15, 16},
                            new long[] {-100, -100, -100, -100, 13, 14, 15, 16}));
        }
        return data;
    }

    static double meanLoss(Model model, List<LmExample> data) {
        LlamaLmModel lm = (LlamaLmModel) model.getBlock();
        double sum = 0;
        double count = 0;
        for (LmExample e : data) {
            try (NDManager m = model.getNDManager().newSubManager()) {
                Shape s = new Shape(1, e.inputIds().length);
                NDArray logits =
                        lm.logits(
                                new ParameterStore(m, false),
                                m.create(e.inputIds(), s),
                                null,
                                null,
                                false);
                NDArray[] sc = CausalLmLoss.sumAndCount(logits, m.create(e.labels(), s));
                sum += sc[0].getFloat();
                count += sc[1].getFloat();
            }
        }
        return sum / count;
    }

    static float[] logits(Model model, long[] ids) {
        LlamaLmModel lm = (LlamaLmModel) model.getBlock();
        try (NDManager m = model.getNDManager().newSubManager()) {
            return lm.logits(
                            new ParameterStore(m, false),
                            m.create(ids, new Shape(1, ids.length)),
                            null,
                            null,
                            false)
                    .toFloatArray();
        }
    }

    private static Map<String, float[]> snapshot(LlamaLmModel lm) {
        Map<String, float[]> out = new LinkedHashMap<>();
        lm.namedParameters().forEach((n, p) -> out.put(n, p.getArray().toFloatArray()));
        return out;
    }

    @Test
    void theSeamSpeaksHuggingFaceNamesAndDecaysNeitherNormsNorBiases(@TempDir Path dir)
            throws Exception {
        try (Model model = LlamaCheckpoint.load(write(dir, UNTIED, 1), runtime.device())) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            assertThat(lm.linears().keySet())
                    .hasSize(14)
                    .startsWith(
                            "model.layers.0.self_attn.q_proj",
                            "model.layers.0.self_attn.k_proj",
                            "model.layers.0.self_attn.v_proj",
                            "model.layers.0.self_attn.o_proj",
                            "model.layers.0.mlp.gate_proj",
                            "model.layers.0.mlp.up_proj",
                            "model.layers.0.mlp.down_proj")
                    .doesNotContain("lm_head");
            assertThat(lm.defaultLoraTargets()).containsExactly("q_proj", "v_proj");
            assertThat(lm.layerPrefix()).isEqualTo("model.layers.");
            assertThat(lm.layerCount()).isEqualTo(2);
            assertThat(lm.headModules()).isEmpty();
            assertThat(lm.outputModules()).containsExactly("model.norm");
            assertThat(lm.embeddingModules()).containsExactly("model.embed_tokens", "lm_head");
            assertThat(lm.namedParameters())
                    .containsKeys(
                            "model.layers.0.self_attn.q_proj.bias",
                            "model.layers.0.self_attn.o_proj.bias")
                    .doesNotContainKeys("model.layers.0.mlp.gate_proj.bias", "lm_head.bias");
            assertThat(lm.decays("model.layers.0.self_attn.q_proj.weight")).isTrue();
            assertThat(lm.decays("model.embed_tokens.weight")).isTrue();
            assertThat(lm.decays("lm_head.weight")).isTrue();
            assertThat(lm.decays("model.layers.0.self_attn.q_proj.bias")).isFalse();
            assertThat(lm.decays("model.layers.0.input_layernorm.weight")).isFalse();
            assertThat(lm.decays("model.layers.1.post_attention_layernorm.weight")).isFalse();
            assertThat(lm.decays("model.norm.weight")).isFalse();
        }
    }

    @Test
    void freezeTrainsTheTopLayersAndTheFinalNormAndTheHeadOnlyWithTheEmbeddings(@TempDir Path dir)
            throws Exception {
        try (Model model = LlamaCheckpoint.load(write(dir, UNTIED, 2), runtime.device())) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            new FineTuningMethod.Freeze(1, false, List.of()).apply(lm, model.getNDManager());
            lm.namedParameters()
                    .forEach(
                            (name, p) ->
                                    assertThat(p.requiresGradient())
                                            .as(name)
                                            .isEqualTo(
                                                    name.startsWith("model.layers.1.")
                                                            || name.equals("model.norm.weight")));
            new FineTuningMethod.Freeze(0, true, List.of()).apply(lm, model.getNDManager());
            lm.namedParameters()
                    .forEach(
                            (name, p) ->
                                    assertThat(p.requiresGradient())
                                            .as(name)
                                            .isEqualTo(
                                                    name.equals("model.embed_tokens.weight")
                                                            || name.equals("lm_head.weight")
                                                            || name.equals("model.norm.weight")));
            // Biases the architecture lacks stay frozen under every method.
            new FineTuningMethod.Full().apply(lm, model.getNDManager());
            Parameter absent =
                    lm.linears().get("model.layers.0.mlp.gate_proj").namedParameters().get("bias");
            assertThat(absent.requiresGradient()).isFalse();
        }
    }

    @Test
    void loraOnPeftsDefaultTargetsTrainsOnlyItsMatricesAndMergesAsWPlusScaledBa(@TempDir Path dir)
            throws Exception {
        try (Model model =
                LlamaCheckpoint.load(write(dir.resolve("base"), UNTIED, 3), runtime.device())) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            ai.djl.engine.Engine.getInstance().setRandomSeed(5);
            FineTuningMethod.Lora lora =
                    new FineTuningMethod.Lora(4, 8f, 0f, lm.defaultLoraTargets());
            ParameterCounts counts = lora.apply(lm, model.getNDManager());
            // Per layer: q A (4, 32) + B (64, 4); v A (4, 32) + B (16, 4).
            long adapters = 2 * (4 * 32 + 64 * 4 + 4 * 32 + 16 * 4);
            // Hugging Face's parameters only: embed 61x32; per layer q 64x32+64, k and v 16x32+16,
            // o 32x64+32, gate/up/down 3x1536, two norms of 32; the final norm; lm_head 61x32.
            // The zero MLP and lm_head biases nn.Dense holds are not counted.
            long base = 1952 + 2 * (2112 + 528 + 528 + 2080 + 3 * 1536 + 64) + 32 + 1952;
            assertThat(counts).isEqualTo(new ParameterCounts(adapters, base + adapters));
            System.out.printf(
                    "Llama tiny, LoRA r=4 on q_proj/v_proj: trainable %d of %d (%.2f%%)%n",
                    counts.trainable(), counts.total(), 100 * counts.trainableFraction());
            assertThat(lm.deltaParameters().keySet())
                    .containsExactly(
                            "model.layers.0.self_attn.q_proj.lora_A.weight",
                            "model.layers.0.self_attn.q_proj.lora_B.weight",
                            "model.layers.0.self_attn.v_proj.lora_A.weight",
                            "model.layers.0.self_attn.v_proj.lora_B.weight",
                            "model.layers.1.self_attn.q_proj.lora_A.weight",
                            "model.layers.1.self_attn.q_proj.lora_B.weight",
                            "model.layers.1.self_attn.v_proj.lora_A.weight",
                            "model.layers.1.self_attn.v_proj.lora_B.weight");

            List<LmExample> data = dataset();
            double before = meanLoss(model, data);
            Map<String, float[]> start = snapshot(lm);
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            data,
                            new TrainingSettings(5, 4, 2e-2f, 0.01f, 0f, 1f, 16, 42),
                            r -> {});
            double after = meanLoss(model, data);
            System.out.printf("Llama tiny, LoRA: loss %.3f -> %.3f%n", before, after);
            assertThat(after).isLessThan(before - 0.5);
            Map<String, float[]> end = snapshot(lm);
            for (String name : start.keySet()) {
                if (name.contains(".lora_")) {
                    assertThat(end.get(name)).as(name + " trained").isNotEqualTo(start.get(name));
                } else {
                    assertThat(end.get(name))
                            .as(name + " is bit-identical")
                            .containsExactly(start.get(name));
                }
            }

            // The merged export against a hand computation in doubles: W + (alpha/r) B A.
            Path merged = dir.resolve("merged");
            LlamaCheckpoint.save(lm, merged, Dtype.F32);
            String q = "model.layers.1.self_attn.q_proj";
            float[] w = end.get(q + ".weight");
            float[] a = end.get(q + ".lora_A.weight");
            float[] b = end.get(q + ".lora_B.weight");
            double maxDiff = 0;
            try (SafetensorsFile f = SafetensorsFile.open(merged.resolve("model.safetensors"))) {
                assertThat(f.names()).noneMatch(n -> n.contains("lora_"));
                assertThat(f.names()).contains("lm_head.weight");
                assertThat(f.info(q + ".weight").dtype()).isEqualTo(Dtype.F32);
                float[] stored = f.floats(q + ".weight", new long[] {64, 32});
                for (int o = 0; o < 64; o++) {
                    for (int i = 0; i < 32; i++) {
                        double ba = 0;
                        for (int k = 0; k < 4; k++) {
                            ba += (double) b[o * 4 + k] * a[k * 32 + i];
                        }
                        double expected = w[o * 32 + i] + (8.0 / 4) * ba;
                        maxDiff = Math.max(maxDiff, Math.abs(stored[o * 32 + i] - expected));
                    }
                }
                // Unadapted weights are written as they are.
                assertThat(f.floats("model.layers.1.self_attn.k_proj.weight"))
                        .containsExactly(end.get("model.layers.1.self_attn.k_proj.weight"));
            }
            System.out.printf(
                    "Llama merged q_proj vs W + (alpha/r) B A: max |diff| %.2e%n", maxDiff);
            assertThat(maxDiff).isLessThan(1e-6);

            // The merged model computes what the adapted one computes.
            long[] probe = {1, 2, 3, 4, 5, 6, 7};
            float[] adapted = logits(model, probe);
            try (Model plain = LlamaCheckpoint.load(merged, runtime.device())) {
                float[] reloaded = logits(plain, probe);
                for (int i = 0; i < adapted.length; i++) {
                    assertThat(reloaded[i]).isCloseTo(adapted[i], within(1e-4f));
                }
            }

            // The PEFT adapter, with Llama module names.
            Path adapter = dir.resolve("adapter");
            assertThat(PeftAdapter.write(lm, lora, "tiny-llama", adapter)).isTrue();
            try (SafetensorsFile f =
                    SafetensorsFile.open(adapter.resolve("adapter_model.safetensors"))) {
                assertThat(f.names())
                        .hasSize(8)
                        .contains(
                                "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
                                "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight");
                assertThat(
                                f.info(
                                                "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight")
                                        .shape())
                        .containsExactly(16, 4);
            }
            JsonNode config = JSON.readTree(adapter.resolve("adapter_config.json").toFile());
            assertThat(config.path("task_type").asText()).isEqualTo("CAUSAL_LM");
            assertThat(config.path("fan_in_fan_out").asBoolean()).isFalse();
            assertThat(config.path("target_modules").toString())
                    .isEqualTo("[\"q_proj\",\"v_proj\"]");
        }
    }

    /**
     * A tuned model saved as a Hugging Face directory is the base of the next job: through the
     * catalogue it loads with the same logits, bit for bit in F32; the tied head is written once;
     * BF16 stores each value rounded to nearest even.
     */
    @Test
    void aSavedModelLoadsBackThroughTheCatalogueWithTheSameLogits(@TempDir Path dir)
            throws Exception {
        String tied =
                "{\"model_type\": \"qwen3\", \"vocab_size\": 30522, \"hidden_size\": 32,"
                        + " \"intermediate_size\": 48, \"num_hidden_layers\": 2,"
                        + " \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
                        + " \"head_dim\": 16, \"max_position_embeddings\": 64,"
                        + " \"rope_theta\": 1000000.0, \"tie_word_embeddings\": true,"
                        + " \"attention_dropout\": 0.1, \"eos_token_id\": 102}";
        Path base = write(dir.resolve("base"), tied, 4);
        long[] probe = {101, 7592, 2088, 102, 2003};
        try (Model model = LlamaCheckpoint.load(base, runtime.device())) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            new FineTuningMethod.Full().apply(lm, model.getNDManager());
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            List.of(LmExample.of(probe), LmExample.of(probe)),
                            new TrainingSettings(1, 2, 1e-2f, 0.01f, 0f, 1f, 16, 42),
                            r -> {});
            float[] tuned = logits(model, probe);
            Path saved = dir.resolve("tuned");
            CausalLmCheckpoint.save(lm, saved, Dtype.F32);
            copyTokenizer(saved);
            try (SafetensorsFile f = SafetensorsFile.open(saved.resolve("model.safetensors"))) {
                assertThat(f.names())
                        .contains("model.embed_tokens.weight")
                        .doesNotContain("lm_head.weight");
            }
            PretrainedModel again = ModelCatalog.resolve(saved.toString());
            assertThat(again.architecture()).isEqualTo(PretrainedModel.Architecture.LLAMA);
            assertThat(LlamaConfig.read(saved)).isEqualTo(lm.config());
            try (Model reloaded =
                    CausalLmCheckpoint.load(again.directory().orElseThrow(), runtime.device())) {
                assertThat(logits(reloaded, probe)).containsExactly(tuned);
                // Greedy with the key/value cache equals greedy without it on the tuned model.
                long[] cached =
                        CausalLmInference.of(reloaded).greedyUntil(new long[] {101, 7592}, 6, -1);
                long[] uncached =
                        LlamaInference.greedy(
                                (LlamaLmModel) reloaded.getBlock(),
                                reloaded.getNDManager(),
                                new long[] {101, 7592},
                                6,
                                false);
                assertThat(cached).containsExactly(uncached);
            }

            Path bf16 = dir.resolve("tuned-bf16");
            LlamaCheckpoint.save(lm, bf16, Dtype.BF16);
            assertThat(LlamaCheckpoint.storedDtype(bf16)).isEqualTo(Dtype.BF16);
            assertThat(
                            JSON.readTree(bf16.resolve("config.json").toFile())
                                    .path("torch_dtype")
                                    .asText())
                    .isEqualTo("bfloat16");
            float[] embed = lm.decoder().embedTokens().getArray().toFloatArray();
            try (SafetensorsFile f = SafetensorsFile.open(bf16.resolve("model.safetensors"))) {
                assertThat(f.info("model.embed_tokens.weight").dtype()).isEqualTo(Dtype.BF16);
                float[] stored = f.floats("model.embed_tokens.weight");
                for (int i = 0; i < embed.length; i++) {
                    float rounded =
                            Float.intBitsToFloat(
                                    (SafetensorsStreamWriter.bfloat16(embed[i]) & 0xFFFF) << 16);
                    if (stored[i] != rounded) {
                        throw new AssertionError(
                                "value " + i + ": " + stored[i] + " vs " + rounded);
                    }
                }
            }
        }
    }

    @Test
    void bfloat16RoundsToNearestEvenAsPyTorch() {
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa, 1.
        assertThat(SafetensorsStreamWriter.bfloat16(1f + 0x1p-8f)).isEqualTo((short) 0x3F80);
        // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up to the even one.
        assertThat(SafetensorsStreamWriter.bfloat16(1f + 3 * 0x1p-8f)).isEqualTo((short) 0x3F82);
        assertThat(SafetensorsStreamWriter.bfloat16(-2f)).isEqualTo((short) 0xC000);
        assertThat(SafetensorsStreamWriter.bfloat16(Float.NaN)).isEqualTo((short) 0x7FC0);
        assertThat(SafetensorsStreamWriter.bfloat16(Float.MAX_VALUE)).isEqualTo((short) 0x7F80);
    }

    /**
     * Attention dropout (config.json's {@code attention_dropout}) is on in training only, its masks
     * from the generator the loop seeds per step, so a run resumed from its step-4 checkpoint takes
     * steps 5-6 with the uninterrupted run's losses.
     */
    @Test
    void attentionDropoutIsOnInTrainingOnlyAndAResumedRunContinuesTheLossCurve(@TempDir Path dir)
            throws Exception {
        String withDropout = UNTIED.replace("\"mlp_bias\": false", "\"attention_dropout\": 0.2");
        Path base = write(dir.resolve("base"), withDropout, 6);
        try (Model model = LlamaCheckpoint.load(base, runtime.device())) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            assertThat(lm.config().attentionDropout()).isEqualTo(0.2f);
            long[] ids = {1, 2, 3, 4, 5, 6, 7, 8};
            try (NDManager m = model.getNDManager().newSubManager()) {
                ParameterStore ps = new ParameterStore(m, false);
                NDArray x = m.create(ids, new Shape(1, ids.length));
                float[] eval1 = lm.logits(ps, x, null, null, false).toFloatArray();
                float[] eval2 = lm.logits(ps, x, null, null, false).toFloatArray();
                ai.djl.engine.Engine.getInstance().setRandomSeed(9);
                float[] train1 = lm.logits(ps, x, null, null, true).toFloatArray();
                ai.djl.engine.Engine.getInstance().setRandomSeed(9);
                float[] train2 = lm.logits(ps, x, null, null, true).toFloatArray();
                assertThat(eval2).containsExactly(eval1);
                assertThat(train1).isNotEqualTo(eval1);
                assertThat(train2).containsExactly(train1);
            }
            try (Model off =
                    LlamaCheckpoint.load(base, runtime.device(), LlamaConfig::withoutDropout)) {
                LlamaLmModel plain = (LlamaLmModel) off.getBlock();
                try (NDManager m = off.getNDManager().newSubManager()) {
                    ParameterStore ps = new ParameterStore(m, false);
                    NDArray x = m.create(ids, new Shape(1, ids.length));
                    assertThat(plain.logits(ps, x, null, null, true).toFloatArray())
                            .containsExactly(plain.logits(ps, x, null, null, false).toFloatArray());
                }
            }
        }

        TrainingSettings settings = new TrainingSettings(3, 4, 1e-2f, 0.01f, 0.1f, 1f, 16, 42);
        List<LmExample> heldOut = dataset().subList(0, 3);
        List<TrainingListener.StepReport> full = new ArrayList<>();
        try (Model model = LlamaCheckpoint.load(base, runtime.device())) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            new FineTuningMethod.Full().apply(lm, model.getNDManager());
            TrainingOutcome outcome =
                    new CausalLmTrainer()
                            .train(
                                    model,
                                    lm,
                                    dataset(),
                                    settings,
                                    new Validation<>(heldOut, 0, 0),
                                    full::add,
                                    ResumeRuns.every(dir.resolve("ckpt"), 2));
            assertThat(outcome.validationLoss().getAsDouble())
                    .isCloseTo(meanLoss(model, heldOut), within(1e-4));
        }
        assertThat(full.stream().filter(r -> r.validationLoss().isPresent()).map(r -> r.step()))
                .containsExactly(2L, 4L, 6L);
        List<TrainingListener.StepReport> resumed = new ArrayList<>();
        try (Model model = LlamaCheckpoint.load(base, runtime.device())) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            new FineTuningMethod.Full().apply(lm, model.getNDManager());
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            dataset(),
                            settings,
                            new Validation<>(heldOut, 0, 0),
                            resumed::add,
                            ResumeRuns.resumeFrom(dir.resolve("ckpt"), 4, dir.resolve("ckpt2")));
        }
        assertThat(resumed).hasSize(2);
        double maxDiff = 0;
        for (int i = 0; i < 2; i++) {
            assertThat(resumed.get(i).step()).isEqualTo(full.get(4 + i).step());
            maxDiff = Math.max(maxDiff, Math.abs(resumed.get(i).loss() - full.get(4 + i).loss()));
        }
        System.out.printf(
                "Llama tiny, full with attention dropout 0.2: losses %.4f -> %.4f, resumed steps"
                        + " 5-6 max |diff| %.2e%n",
                full.get(0).loss(), full.get(5).loss(), maxDiff);
        assertThat(maxDiff).isLessThan(1e-5);
    }

    private static void copyTokenizer(Path dir) throws Exception {
        try (InputStream in =
                LlamaTrainingTest.class
                        .getClassLoader()
                        .getResourceAsStream("all-minilm-l6-v2-tokenizer.json")) {
            Files.copy(in, dir.resolve("tokenizer.json"));
        }
    }
}
