package io.tuneline.engine.model.gpt2;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.method.PrefixEncoder;
import io.tuneline.engine.method.PrefixReference;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmLoss;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.ResumeRuns;
import io.tuneline.engine.train.TrainingListener;
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

/**
 * Prefix tuning (PEFT's PREFIX_TUNING) on the tiny GPT-2: PEFT's parameter counts, forward pass and
 * one step's gradients against {@code bench/prefix_reference.py}, learning with a frozen base,
 * {@link MethodState} round trip, exact resume, and generation that honours the prefix.
 */
class PrefixGpt2Test {
    private static final int N = 4;
    private static final long[][] IDS = {
        {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {20, 22, 24, 26, 28, 30, 0, 0, 0, 0}
    };
    private static final long[][] MASK = {
        {1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 0, 0, 0, 0}
    };
    private static final long[][] LABELS = {
        {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {-100, -100, 24, 26, 28, 30, -100, -100, -100, -100}
    };

    private static EngineRuntime runtime;

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    /** PEFT's count, computed from the config alone: prefix tuning adds only its encoder. */
    static long peftTrainable(int n, int layers, int tokenDim, int projection) {
        long out = (long) layers * 2 * tokenDim;
        if (projection == 0) {
            return n * out; // Embedding(N, num_layers * 2 * token_dim)
        }
        return (long) n * tokenDim // Embedding(N, token_dim)
                + (long) tokenDim * projection
                + projection // Linear(token_dim, hidden)
                + (long) projection * out
                + out; // Linear(hidden, num_layers * 2 * token_dim)
    }

    @Test
    void forwardAndGradientsMatchThePlainPyTorchReferenceWithAndWithoutProjection(@TempDir Path dir)
            throws Exception {
        Path base = TinyGpt2.write(dir.resolve("base"), TinyGpt2.randomWeights(31), true);
        List<ObjectNode> cases = new ArrayList<>();
        List<PrefixReference.EngineRun> runs = new ArrayList<>();
        for (int projection : new int[] {0, 24}) {
            try (Model model =
                    Gpt2Checkpoint.load(base, runtime.device(), Gpt2Config::withoutDropout)) {
                Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
                long baseTotal = ParameterCounts.of(lm).total();
                Engine.getInstance().setRandomSeed(5);
                FineTuningMethod.Prefix prefix = new FineTuningMethod.Prefix(N, projection);
                ParameterCounts counts = prefix.apply(lm, model.getNDManager());
                // GPT-2: token_dim = n_embd = 32, 2 layers.
                assertThat(counts.trainable()).isEqualTo(peftTrainable(N, 2, 32, projection));
                assertThat(counts.total()).isEqualTo(baseTotal + counts.trainable());
                System.out.printf(
                        "prefix GPT-2 tiny, projection %d: trainable %d of %d%n",
                        projection, counts.trainable(), counts.total());
                lm.namedParameters()
                        .forEach(
                                (name, p) ->
                                        assertThat(p.requiresGradient())
                                                .as(name)
                                                .isEqualTo(name.startsWith("prompt_encoder.")));
                assertThat(lm.decays(PrefixEncoder.EMBEDDING)).isFalse();
                if (projection > 0) {
                    assertThat(lm.decays(PrefixEncoder.TRANSFORM_0_WEIGHT)).isTrue();
                    assertThat(lm.decays(PrefixEncoder.TRANSFORM_0_BIAS)).isFalse();
                }
                assertThat(prefix.mergeable()).isFalse();
                Path state = dir.resolve("state-" + projection);
                MethodState.write(lm, prefix, state);
                cases.add(
                        PrefixReference.newCase(
                                "gpt2",
                                base,
                                PrefixReference.tunelineMethod(
                                        state.resolve(MethodState.WEIGHTS), N, projection),
                                IDS,
                                MASK,
                                LABELS,
                                true));
                runs.add(
                        PrefixReference.engine(
                                lm,
                                model.getNDManager(),
                                List.copyOf(lm.methodParameters().keySet()),
                                m -> {
                                    NDArray logits =
                                            lm.forward(
                                                            new ParameterStore(m, false),
                                                            new NDList(
                                                                    m.create(
                                                                            flat(IDS),
                                                                            new Shape(2, 10)),
                                                                    m.create(
                                                                            flat(MASK),
                                                                            new Shape(2, 10))),
                                                            true)
                                                    .singletonOrThrow();
                                    return new NDArray[] {
                                        logits,
                                        CausalLmLoss.mean(
                                                logits, m.create(flat(LABELS), new Shape(2, 10)))
                                    };
                                }));
            }
        }
        List<PrefixReference.Result> ref = PrefixReference.run(dir, cases);
        for (int i = 0; i < 2; i++) {
            double[] d = PrefixReference.compare("gpt2 #" + i, runs.get(i), ref.get(i), 50, MASK);
            System.out.printf(
                    "prefix GPT-2 tiny vs reference, case %d: max |logit| diff %.2e, max |grad|"
                            + " diff %.2e%n",
                    i, d[0], d[1]);
        }
    }

    @Test
    void aPrefixRunLearnsKeepsTheBaseRestoresFromMethodStateAndResumesExactly(@TempDir Path dir)
            throws Exception {
        Path base = TinyGpt2.write(dir.resolve("base"), TinyGpt2.randomWeights(33), true);
        FineTuningMethod.Prefix prefix = new FineTuningMethod.Prefix(N, 16);
        TrainingSettings settings = new TrainingSettings(3, 4, 1e-2f, 0.01f, 0.1f, 1f, 16, 42);
        long[] probe = {1, 2, 3, 4, 5, 6};
        List<TrainingListener.StepReport> full = new ArrayList<>();
        float[] tuned;
        long[] generated;
        Path state = dir.resolve("state");
        try (Model model =
                Gpt2Checkpoint.load(base, runtime.device(), Gpt2Config::withoutDropout)) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            float[] before = logits(model, lm, probe);
            double lossBefore = Gpt2TrainingTest.meanLoss(model, data());
            Map<String, float[]> frozen = new LinkedHashMap<>();
            lm.namedParameters().forEach((n, p) -> frozen.put(n, p.getArray().toFloatArray()));
            Engine.getInstance().setRandomSeed(3);
            prefix.apply(lm, model.getNDManager());
            assertThat(lm.maxPositions()).isEqualTo(16 - N);
            // A forward pass leaves nothing in the model's manager: the prefix's arrays (and the
            // position rows) belong to the step's manager.
            var owner = (ai.djl.ndarray.BaseNDManager) model.getNDManager();
            int managed = owner.getManagedArrays().size();
            logits(model, lm, probe);
            logits(model, lm, probe);
            assertThat(owner.getManagedArrays().size()).isEqualTo(managed);
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            data(),
                            settings,
                            Validation.none(),
                            full::add,
                            ResumeRuns.every(dir.resolve("ckpt"), 2));
            double lossAfter = Gpt2TrainingTest.meanLoss(model, data());
            System.out.printf(
                    "prefix GPT-2 tiny: loss %.4f -> %.4f after %d steps%n",
                    lossBefore, lossAfter, full.size());
            assertThat(lossAfter).isLessThan(lossBefore - 0.3);
            frozen.forEach(
                    (n, v) ->
                            assertThat(lm.namedParameters().get(n).getArray().toFloatArray())
                                    .as(n)
                                    .isEqualTo(v));
            tuned = logits(model, lm, probe);
            assertThat(maxAbsDiff(before, tuned)).isGreaterThan(1e-3);
            MethodState.write(lm, prefix, state);
            generated = new Gpt2Inference(model).greedy(probe, 5);
            assertThatThrownBy(() -> new Gpt2Inference(model).greedy(probe, 16 - N - 5))
                    .hasMessageContaining("positions");
        }
        try (Model model = Gpt2Checkpoint.load(base, runtime.device())) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            FineTuningMethod restored = MethodState.restore(lm, state, model.getNDManager());
            assertThat(restored).isEqualTo(prefix);
            assertThat(logits(model, lm, probe)).isEqualTo(tuned);
            assertThat(new Gpt2Inference(model).greedy(probe, 5)).isEqualTo(generated);
        }
        List<TrainingListener.StepReport> resumed = new ArrayList<>();
        try (Model model =
                Gpt2Checkpoint.load(base, runtime.device(), Gpt2Config::withoutDropout)) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            Engine.getInstance().setRandomSeed(99);
            prefix.apply(lm, model.getNDManager());
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            data(),
                            settings,
                            Validation.none(),
                            resumed::add,
                            ResumeRuns.resumeFrom(dir.resolve("ckpt"), 4, dir.resolve("ckpt2")));
        }
        ResumeRuns.assertContinues(full, resumed, 6, 4);
    }

    @Test
    void thePeftExportReadByAnIndependentReaderReproducesTheTunedLogits(@TempDir Path dir)
            throws Exception {
        Path base = TinyGpt2.write(dir.resolve("base"), TinyGpt2.randomWeights(35), true);
        FineTuningMethod.Prefix prefix = new FineTuningMethod.Prefix(N, 24);
        float[] tuned;
        Path export = dir.resolve("peft");
        try (Model model =
                Gpt2Checkpoint.load(base, runtime.device(), Gpt2Config::withoutDropout)) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            Engine.getInstance().setRandomSeed(8);
            prefix.apply(lm, model.getNDManager());
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            data(),
                            new TrainingSettings(1, 4, 1e-2f, 0f, 0f, 1f, 16, 42),
                            r -> {});
            try (NDManager m = model.getNDManager().newSubManager()) {
                tuned =
                        lm.forward(
                                        new ParameterStore(m, false),
                                        new NDList(
                                                m.create(flat(IDS), new Shape(2, 10)),
                                                m.create(flat(MASK), new Shape(2, 10))),
                                        false)
                                .singletonOrThrow()
                                .toFloatArray();
            }
            io.tuneline.engine.export.PeftPrefixTuning.write(lm, prefix, "tiny-gpt2", export);
        }
        PrefixReference.Result r =
                PrefixReference.run(
                                dir,
                                List.of(
                                        PrefixReference.newCase(
                                                "gpt2",
                                                base,
                                                PrefixReference.peftMethod(export),
                                                IDS,
                                                MASK,
                                                LABELS,
                                                false)))
                        .get(0);
        double d = PrefixReference.compareExport("gpt2 export", tuned, r, 50, MASK);
        System.out.printf("prefix GPT-2 tiny: PEFT export vs engine max |logit| diff %.2e%n", d);
    }

    /** The GPT-2 training set without its 14-token row: 12 positions are left beside 4 prefixes. */
    static List<io.tuneline.engine.train.LmExample> data() {
        return Gpt2TrainingTest.dataset().stream()
                .filter(e -> e.inputIds().length <= 16 - N)
                .toList();
    }

    static long[] flat(long[][] rows) {
        return java.util.Arrays.stream(rows).flatMapToLong(java.util.Arrays::stream).toArray();
    }

    private static float[] logits(Model model, Gpt2LmModel lm, long[] ids) {
        try (NDManager m = model.getNDManager().newSubManager()) {
            return lm.forward(
                            new ParameterStore(m, false),
                            new NDList(m.create(ids, new Shape(1, ids.length))),
                            false)
                    .singletonOrThrow()
                    .toFloatArray();
        }
    }

    private static double maxAbsDiff(float[] a, float[] b) {
        double max = 0;
        for (int i = 0; i < a.length; i++) {
            max = Math.max(max, Math.abs(a[i] - b[i]));
        }
        return max;
    }
}
