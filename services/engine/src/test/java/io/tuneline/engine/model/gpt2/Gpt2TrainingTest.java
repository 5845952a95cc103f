package io.tuneline.engine.model.gpt2;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmLoss;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.LmExample;
import io.tuneline.engine.train.ResumeRuns;
import io.tuneline.engine.train.TrainingDivergedException;
import io.tuneline.engine.train.TrainingListener;
import io.tuneline.engine.train.TrainingOutcome;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.engine.train.Validation;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Causal LM training of the tiny random GPT-2: it learns, and methods train only what they say. */
class Gpt2TrainingTest {
    /** Base parameters of the tiny model: wte, wpe, 2 x 12,704 per layer, ln_f. */
    private static final long BASE = 1600 + 512 + 2 * 12_704 + 64;

    private static EngineRuntime runtime;

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    /** Four fixed sequences, repeated: a model that learns them predicts them almost surely. */
    static List<LmExample> dataset() {
        List<LmExample> data = new ArrayList<>();
        for (int copy = 0; copy < 2; copy++) {
            data.add(LmExample.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12));
            data.add(LmExample.of(20, 22, 24, 26, 28, 30, 32, 34, 36, 38));
            data.add(LmExample.of(40, 41, 40, 41, 40, 41, 40, 41, 40, 41, 40, 41, 40, 41));
            // A prompt whose tokens are not scored, then an answer.
            data.add(
                    new LmExample(
                            new long[] {7, 7, 7, 49, 13, 14, 15, 16},
                            new long[] {-100, -100, -100, -100, 13, 14, 15, 16}));
        }
        return data;
    }

    /** Token-weighted mean loss over {@code data}, one example at a time. */
    static double meanLoss(Model model, List<LmExample> data) {
        Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
        double sum = 0;
        double count = 0;
        for (LmExample e : data) {
            try (NDManager m = model.getNDManager().newSubManager()) {
                Shape s = new Shape(1, e.inputIds().length);
                NDArray logits =
                        lm.forward(
                                        new ParameterStore(m, false),
                                        new NDList(m.create(e.inputIds(), s)),
                                        false)
                                .singletonOrThrow();
                NDArray[] sc = CausalLmLoss.sumAndCount(logits, m.create(e.labels(), s));
                sum += sc[0].getFloat();
                count += sc[1].getFloat();
            }
        }
        return sum / count;
    }

    private static Map<String, float[]> snapshot(Gpt2LmModel lm) {
        Map<String, float[]> out = new LinkedHashMap<>();
        lm.namedParameters().forEach((n, p) -> out.put(n, p.getArray().toFloatArray()));
        return out;
    }

    /**
     * Dropout off: the step losses compared below are training-mode losses, which with GPT-2's 0.1
     * dropout on a 32-wide model carry more noise than the halving this checks for.
     */
    @Test
    void fullFineTuningLowersTheLossClearly(@TempDir Path dir) throws Exception {
        try (Model model =
                Gpt2Checkpoint.load(
                        TinyGpt2.write(dir, TinyGpt2.randomWeights(10), true),
                        runtime.device(),
                        Gpt2Config::withoutDropout)) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            ParameterCounts counts = new FineTuningMethod.Full().apply(lm, model.getNDManager());
            assertThat(counts).isEqualTo(new ParameterCounts(BASE, BASE));
            List<LmExample> data = dataset();
            double before = meanLoss(model, data);
            List<TrainingListener.StepReport> steps = new ArrayList<>();
            TrainingOutcome outcome =
                    new CausalLmTrainer()
                            .train(
                                    model,
                                    lm,
                                    data,
                                    new TrainingSettings(5, 4, 1e-2f, 0.01f, 0.1f, 1f, 16, 42),
                                    steps::add);
            double after = meanLoss(model, data);
            System.out.printf(
                    "GPT-2 tiny, full: %d steps, loss %.3f -> %.3f%n", steps.size(), before, after);
            assertThat(steps).hasSize(10);
            assertThat(outcome.steps()).isEqualTo(10);
            assertThat(before).isGreaterThan(3.0);
            assertThat(after).isLessThan(before / 3);
            assertThat(steps.get(9).loss()).isLessThan(steps.get(0).loss() / 2);
        }
    }

    /**
     * A learning rate far too large sends the weights past float range within a few steps; the run
     * stops at the first step whose loss is not a number, naming it, instead of training on NaN.
     */
    @Test
    void aDivergingRunStopsAtItsFirstNonFiniteLoss(@TempDir Path dir) throws Exception {
        try (Model model =
                Gpt2Checkpoint.load(
                        TinyGpt2.write(dir, TinyGpt2.randomWeights(10), true), runtime.device())) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            new FineTuningMethod.Full().apply(lm, model.getNDManager());
            List<TrainingListener.StepReport> steps = new ArrayList<>();
            assertThatThrownBy(
                            () ->
                                    new CausalLmTrainer()
                                            .train(
                                                    model,
                                                    lm,
                                                    dataset(),
                                                    new TrainingSettings(
                                                            5, 4, 1e30f, 0f, 0f, 1f, 16, 42),
                                                    steps::add))
                    .isInstanceOfSatisfying(
                            TrainingDivergedException.class,
                            e -> {
                                assertThat(e.step()).isEqualTo(steps.size() + 1);
                                assertThat(e.getMessage())
                                        .contains("training diverged at step " + e.step())
                                        .contains("lower the learning rate");
                            });
            assertThat(steps).isNotEmpty().allMatch(r -> Double.isFinite(r.loss()));
        }
    }

    @Test
    void validationIsReportedAndAResumedRunContinuesTheUninterruptedOne(@TempDir Path dir)
            throws Exception {
        Path base = TinyGpt2.write(dir.resolve("base"), TinyGpt2.randomWeights(12), true);
        TrainingSettings settings = new TrainingSettings(3, 4, 1e-2f, 0.01f, 0.1f, 1f, 16, 42);
        List<LmExample> heldOut = dataset().subList(0, 3);
        List<TrainingListener.StepReport> full = new ArrayList<>();
        TrainingOutcome outcome;
        try (Model model =
                Gpt2Checkpoint.load(base, runtime.device(), Gpt2Config::withoutDropout)) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            new FineTuningMethod.Full().apply(lm, model.getNDManager());
            outcome =
                    new CausalLmTrainer()
                            .train(
                                    model,
                                    lm,
                                    dataset(),
                                    settings,
                                    new Validation<>(heldOut, 0, 0),
                                    full::add,
                                    ResumeRuns.every(dir.resolve("ckpt"), 2));
            // The validation loss equals the token-weighted loss computed one example at a time.
            assertThat(outcome.validationLoss().getAsDouble())
                    .isCloseTo(meanLoss(model, heldOut), within(1e-4));
        }
        // Once per epoch (2 steps) and after the last step.
        assertThat(full.stream().filter(r -> r.validationLoss().isPresent()).map(r -> r.step()))
                .containsExactly(2L, 4L, 6L);
        assertThat(full.get(5).validationLoss().getAsDouble())
                .isLessThan(full.get(1).validationLoss().getAsDouble());

        List<TrainingListener.StepReport> resumed = new ArrayList<>();
        try (Model model =
                Gpt2Checkpoint.load(base, runtime.device(), Gpt2Config::withoutDropout)) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
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
        for (int i = 0; i < 2; i++) {
            assertThat(resumed.get(i).step()).isEqualTo(full.get(4 + i).step());
            assertThat(resumed.get(i).loss()).isCloseTo(full.get(4 + i).loss(), within(1e-5));
        }
    }

    @Test
    void loraOnCAttnTrainsOnlyTheAdaptersAndTheMergedExportComputesTheSame(@TempDir Path dir)
            throws Exception {
        try (Model model =
                Gpt2Checkpoint.load(
                        TinyGpt2.write(dir.resolve("base"), TinyGpt2.randomWeights(11), true),
                        runtime.device())) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            ai.djl.engine.Engine.getInstance().setRandomSeed(5);
            ParameterCounts counts =
                    new FineTuningMethod.Lora(8, 16f, 0f, List.of("c_attn"))
                            .apply(lm, model.getNDManager());
            // Per layer: A (8, 32) + B (96, 8).
            long lora = 2 * (8 * 32 + 96 * 8);
            assertThat(counts).isEqualTo(new ParameterCounts(lora, BASE + lora));
            System.out.printf(
                    "GPT-2 tiny, LoRA r=8 on c_attn: trainable %d of %d (%.2f%%)%n",
                    counts.trainable(), counts.total(), 100 * counts.trainableFraction());
            Map<String, Parameter> named = lm.namedParameters();
            assertThat(named)
                    .containsKeys(
                            "transformer.h.0.attn.c_attn.lora_A.weight",
                            "transformer.h.1.attn.c_attn.lora_B.weight")
                    .doesNotContainKey("transformer.h.0.attn.c_proj.lora_A.weight");

            List<LmExample> data = dataset();
            double before = meanLoss(model, data);
            Map<String, float[]> start = snapshot(lm);
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            data,
                            new TrainingSettings(5, 4, 2e-2f, 0f, 0f, 1f, 16, 42),
                            r -> {});
            double after = meanLoss(model, data);
            System.out.printf("GPT-2 tiny, LoRA: loss %.3f -> %.3f%n", before, after);
            assertThat(after).isLessThan(before - 0.5);

            Map<String, float[]> end = snapshot(lm);
            for (String name : start.keySet()) {
                if (name.contains(".lora_")) {
                    assertThat(end.get(name)).as(name + " trained").isNotEqualTo(start.get(name));
                } else {
                    assertThat(end.get(name))
                            .as(name + " is frozen")
                            .containsExactly(start.get(name));
                }
            }

            // The merged export (W + (alpha/r) B A, transposed back to Conv1D) reloads into a
            // plain model computing what the adapted one computes.
            Gpt2Checkpoint.save(lm, dir.resolve("merged"));
            long[][] probe = {{1, 2, 3, 4, 5, 6}};
            float[][] adapted = Gpt2LmModelTest.forward(model, probe, null);
            try (Model merged = Gpt2Checkpoint.load(dir.resolve("merged"), runtime.device())) {
                assertThat(((Gpt2LmModel) merged.getBlock()).namedParameters()).hasSize(28);
                float[][] plain = Gpt2LmModelTest.forward(merged, probe, null);
                for (int t = 0; t < plain.length; t++) {
                    double[] expected = new double[plain[t].length];
                    for (int v = 0; v < expected.length; v++) {
                        expected[v] = adapted[t][v];
                    }
                    Gpt2LmModelTest.assertClose(plain[t], expected, "merged t=" + t);
                }
            }
        }
    }

    @Test
    void freezeTrainsTheTopLayersAndLnFAndLoraNeedsGpt2ModuleNames(@TempDir Path dir)
            throws Exception {
        try (Model model =
                Gpt2Checkpoint.load(
                        TinyGpt2.write(dir, TinyGpt2.randomWeights(12), true), runtime.device())) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            ParameterCounts counts =
                    new FineTuningMethod.Freeze(1, false, List.of())
                            .apply(lm, model.getNDManager());
            assertThat(counts).isEqualTo(new ParameterCounts(12_704 + 64, BASE));
            assertThat(
                            lm.namedParameters()
                                    .get("transformer.h.1.attn.c_attn.weight")
                                    .requiresGradient())
                    .isTrue();
            assertThat(
                            lm.namedParameters()
                                    .get("transformer.h.0.attn.c_attn.weight")
                                    .requiresGradient())
                    .isFalse();
            assertThat(lm.namedParameters().get("transformer.wte.weight").requiresGradient())
                    .isFalse();

            assertThatThrownBy(
                            () -> FineTuningMethod.Lora.defaults().apply(lm, model.getNDManager()))
                    .hasMessageContaining("use c_attn");
            // c_proj means both projections named so, as in PEFT.
            ParameterCounts both =
                    new FineTuningMethod.Lora(4, 8f, 0f, List.of("c_proj"))
                            .apply(lm, model.getNDManager());
            // Per layer: attn.c_proj A (4, 32) + B (32, 4), mlp.c_proj A (4, 128) + B (32, 4).
            assertThat(both.trainable()).isEqualTo(2 * ((4 * 32 + 32 * 4) + (4 * 128 + 32 * 4)));
        }
    }
}
