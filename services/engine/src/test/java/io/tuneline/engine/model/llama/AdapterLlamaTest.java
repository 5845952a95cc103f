package io.tuneline.engine.model.llama;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.export.AdapterHubAdapter;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.method.AdapterReference;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.FineTuningMethod.Adapter.Placement;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.ResumeRuns;
import io.tuneline.engine.train.TrainingListener;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.engine.train.Validation;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bottleneck adapters on the Llama family (pre-RMSNorm: {@code attention_adapters} and {@code
 * output_adapters} of {@code LlamaDecoderLayerWithAdapters}, no norm passed), on a GQA Llama with
 * biases and a Qwen3 with q/k norms: the library's parameter count and names, the untrained model
 * equal to the base bit for bit, forward and gradients equal to the plain-PyTorch reference, the
 * export read back by the reference, training that moves only the adapters, the method state
 * restored and an exact resume.
 */
class AdapterLlamaTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long[][] IDS = {
        {1, 2, 3, 4, 5, 6, 20, 22}, {40, 41, 40, 41, 7, 7, 49, 13}
    };
    private static EngineRuntime runtime;

    /** Pfeiffer with reduction factor 4 (m = 8), Houlsby with an explicit bottleneck of 6. */
    static final List<FineTuningMethod.Adapter> METHODS =
            List.of(
                    new FineTuningMethod.Adapter(Placement.PFEIFFER, 0, 4, null, 0f),
                    new FineTuningMethod.Adapter(Placement.HOULSBY, 6, 16, "", 0f));

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    private static float[] logits(LlamaLmModel lm, Model model, boolean training) {
        try (NDManager m = model.getNDManager().newSubManager()) {
            return lm.logits(
                            new ParameterStore(m, false),
                            m.create(flat(), new Shape(2, 8)),
                            null,
                            null,
                            training)
                    .toFloatArray();
        }
    }

    private static long[] flat() {
        long[] f = new long[16];
        for (int i = 0; i < 2; i++) {
            System.arraycopy(IDS[i], 0, f, i * 8, 8);
        }
        return f;
    }

    @Test
    void adaptersCountAsTheLibraryLeaveTheBaseExactAndMatchTheReferenceAndTheExport(
            @TempDir Path dir) throws Exception {
        List<String> variants = List.of("llama-gqa", "qwen3-qknorm");
        List<ObjectNode> cases = new ArrayList<>();
        List<AdapterReference.Pass> passes = new ArrayList<>();
        int k = 0;
        for (FineTuningMethod.Adapter adapter : METHODS) {
            String what = variants.get(k) + " " + adapter.placement().name();
            Path base = TinyLlamas.write(variants.get(k), dir.resolve("base-" + k), 41 + k);
            try (Model model =
                    LlamaCheckpoint.load(base, runtime.device(), LlamaConfig::withoutDropout)) {
                LlamaLmModel lm = (LlamaLmModel) model.getBlock();
                int hidden = lm.config().hiddenSize();
                int layers = lm.config().layers();
                float[] before = logits(lm, model, false);
                long baseTotal = ParameterCounts.of(lm).total();

                ParameterCounts counts = adapter.apply(lm, model.getNDManager());
                int m = adapter.bottleneck(hidden);
                int perLayer = adapter.placement() == Placement.HOULSBY ? 2 : 1;
                long expected = (long) layers * perLayer * AdapterReference.perAdapter(hidden, m);
                assertThat(counts.trainable()).as(what).isEqualTo(expected);
                assertThat(counts.total()).as(what).isEqualTo(baseTotal + expected);
                System.out.printf(
                        "Adapter %s: m %d, trainable %d of %d%n",
                        what, m, counts.trainable(), counts.total());
                Map<String, Parameter> added = lm.methodParameters();
                assertThat(added)
                        .hasSize(layers * perLayer * 4)
                        .containsKeys(
                                "model.layers.0.output_adapters.adapters.tuneline.adapter_down.0.weight",
                                "model.layers.1.output_adapters.adapters.tuneline.adapter_up.bias");
                assertThat(added.keySet().stream().anyMatch(n -> n.contains("attention_adapters")))
                        .isEqualTo(adapter.placement() == Placement.HOULSBY);
                assertThat(lm.deltaParameters()).isEqualTo(added);
                lm.namedParameters()
                        .forEach(
                                (n, p) ->
                                        assertThat(p.requiresGradient())
                                                .as(n)
                                                .isEqualTo(added.containsKey(n)));
                assertThat(
                                lm.decays(
                                        "model.layers.0.output_adapters.adapters.tuneline.adapter_up.weight"))
                        .isTrue();
                assertThat(
                                lm.decays(
                                        "model.layers.0.output_adapters.adapters.tuneline.adapter_up.bias"))
                        .isFalse();
                assertThat(logits(lm, model, false))
                        .as("%s untrained = base", what)
                        .isEqualTo(before);

                AdapterReference.randomize(added, 7 + k, 0.2);
                float[] probe = AdapterReference.probe(2 * 8 * lm.config().vocabSize(), 5 + k);
                AdapterReference.Pass pass =
                        AdapterReference.forwardBackward(
                                model,
                                added,
                                (ps, mg) ->
                                        lm.logits(
                                                ps,
                                                mg.create(flat(), new Shape(2, 8)),
                                                null,
                                                null,
                                                true),
                                probe);
                assertThat(AdapterReference.maxDiff(pass.output(), before, what))
                        .as("%s: random adapters change the logits", what)
                        .isGreaterThan(0.1);
                passes.add(pass);
                Path trained = dir.resolve("trained-" + k + ".safetensors");
                AdapterReference.writeTensors(added, trained);
                cases.add(
                        AdapterReference.trainedCase(
                                "llama",
                                base,
                                trained,
                                adapter,
                                IDS,
                                null,
                                probe,
                                dir.resolve("ref-" + k + ".json")));

                Path export = dir.resolve("export-" + k);
                AdapterHubAdapter.write(lm, adapter, variants.get(k), export);
                JsonNode config = JSON.readTree(export.resolve("adapter_config.json").toFile());
                assertThat(config.path("model_type").asText()).isEqualTo(lm.config().modelType());
                assertThat(config.path("model_class").asText())
                        .isEqualTo(k == 0 ? "LlamaAdapterModel" : "Qwen3ForCausalLM");
                assertThat(config.path("hidden_size").asInt()).isEqualTo(hidden);
                assertThat(config.path("config").path("mh_adapter").asBoolean())
                        .isEqualTo(adapter.placement() == Placement.HOULSBY);
                assertThat(config.path("config").size()).isEqualTo(33);
                assertThat(
                                (int)
                                        Math.floor(
                                                hidden
                                                        / config.path("config")
                                                                .path("reduction_factor")
                                                                .asDouble()))
                        .isEqualTo(m);
                try (SafetensorsFile f =
                        SafetensorsFile.open(export.resolve("adapter.safetensors"))) {
                    assertThat(f.names()).containsExactlyInAnyOrderElementsOf(added.keySet());
                }
                cases.add(
                        AdapterReference.exportCase(
                                "llama",
                                base,
                                export,
                                IDS,
                                null,
                                dir.resolve("export-" + k + ".json")));
            }
            k++;
        }
        List<JsonNode> ref = AdapterReference.run(dir, cases);
        for (int i = 0; i < METHODS.size(); i++) {
            String what = variants.get(i) + " " + METHODS.get(i).placement();
            double[] d = AdapterReference.compare(passes.get(i), ref.get(2 * i), what);
            double export =
                    AdapterReference.maxDiff(
                            passes.get(i).output(),
                            AdapterReference.flatten(ref.get(2 * i + 1).path("output")),
                            what + " export");
            System.out.printf(
                    "%s vs reference: logits %.2e, gradients %.2e; export read by the reference: %.2e%n",
                    what, d[0], d[1], export);
            assertThat(export).as(what + " export").isLessThanOrEqualTo(AdapterReference.TOLERANCE);
        }
    }

    /**
     * Houlsby with adapter dropout 0.1: loss falls, every base weight stays bit-identical, the
     * method state rebuilds the tuned model exactly, a run resumed at step 4 continues the
     * uninterrupted one (dropout masks replayed).
     */
    @Test
    void trainingMovesOnlyTheAdaptersAndTheStateRestoresAndResumes(@TempDir Path dir)
            throws Exception {
        Path base = LlamaTrainingTest.write(dir.resolve("base"), LlamaTrainingTest.UNTIED, 32);
        FineTuningMethod.Adapter adapter =
                new FineTuningMethod.Adapter(Placement.HOULSBY, 8, 16, null, 0.1f);
        TrainingSettings settings = new TrainingSettings(3, 4, 1e-2f, 0.01f, 0.1f, 1f, 16, 42);
        List<TrainingListener.StepReport> full = new ArrayList<>();
        float[] tuned;
        try (Model model =
                LlamaCheckpoint.load(base, runtime.device(), LlamaConfig::withoutDropout)) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            double lossBefore = LlamaTrainingTest.meanLoss(model, LlamaTrainingTest.dataset());
            ai.djl.engine.Engine.getInstance().setRandomSeed(3);
            adapter.apply(lm, model.getNDManager());
            Map<String, float[]> baseBefore = AdapterReference.snapshot(lm.baseParameters());
            Map<String, float[]> adaptersBefore = AdapterReference.snapshot(lm.methodParameters());
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            LlamaTrainingTest.dataset(),
                            settings,
                            Validation.none(),
                            full::add,
                            ResumeRuns.every(dir.resolve("ckpt"), 2));
            double lossAfter = LlamaTrainingTest.meanLoss(model, LlamaTrainingTest.dataset());
            System.out.printf(
                    "Houlsby on a tiny GQA Llama: loss %.4f -> %.4f in %d steps%n",
                    lossBefore, lossAfter, full.size());
            assertThat(lossAfter).isLessThan(lossBefore - 0.2);
            AdapterReference.snapshot(lm.baseParameters())
                    .forEach((n, v) -> assertThat(v).as(n).isEqualTo(baseBefore.get(n)));
            AdapterReference.snapshot(lm.methodParameters())
                    .forEach((n, v) -> assertThat(v).as(n).isNotEqualTo(adaptersBefore.get(n)));
            tuned = logits(lm, model, false);
            Path tunedDir = dir.resolve("tuned");
            LlamaCheckpoint.save(lm, tunedDir, io.tuneline.engine.io.safetensors.Dtype.F32);
            MethodState.write(lm, adapter, tunedDir);
        }
        try (Model model =
                LlamaCheckpoint.load(
                        dir.resolve("tuned"), runtime.device(), LlamaConfig::withoutDropout)) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            FineTuningMethod restored =
                    MethodState.restore(lm, dir.resolve("tuned"), model.getNDManager());
            assertThat(restored).isEqualTo(adapter);
            assertThat(restored.mergeable()).isFalse();
            assertThat(logits(lm, model, false)).as("restored = tuned").isEqualTo(tuned);
        }
        List<TrainingListener.StepReport> resumed = new ArrayList<>();
        try (Model model =
                LlamaCheckpoint.load(base, runtime.device(), LlamaConfig::withoutDropout)) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            ai.djl.engine.Engine.getInstance().setRandomSeed(99);
            adapter.apply(lm, model.getNDManager());
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            LlamaTrainingTest.dataset(),
                            settings,
                            Validation.none(),
                            resumed::add,
                            ResumeRuns.resumeFrom(dir.resolve("ckpt"), 4, dir.resolve("ckpt2")));
        }
        ResumeRuns.assertContinues(full, resumed, 6, 4);
    }
}
