package io.tuneline.engine.model.llama;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.training.GradientCollector;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.nn.Scalars;
import io.tuneline.engine.quant.Nf4Loading;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.Checkpointing;
import io.tuneline.engine.train.LmExample;
import io.tuneline.engine.train.ResumeRuns;
import io.tuneline.engine.train.TrainingListener;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.engine.train.Validation;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * QLoRA's memory levers on the Llama family: activation checkpointing gives the gradients, the loss
 * curve and the exact resume of a run without it (dropout on and off), and the streaming load holds
 * every projection in NF4, bit for bit as quantizing the loaded model, without allocating its
 * float32 weight.
 */
class ActivationCheckpointingLlamaTest {
    private static final List<String> ALL_LINEAR =
            List.of("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj");
    private static final String THREE_LAYERS =
            LlamaTrainingTest.UNTIED.replace(
                    "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
    private static EngineRuntime runtime;

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    @Test
    void gradientsWithCheckpointingEqualThoseWithoutForQloraWithDropoutAndForAFullFineTune(
            @TempDir Path dir) throws Exception {
        Path base = LlamaTrainingTest.write(dir.resolve("base"), THREE_LAYERS, 31);
        // QLoRA on all seven projections, LoRA and attention dropout on.
        try (Model model = LlamaCheckpoint.load(base, runtime.device(), withDropout(0.2f))) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            Engine.getInstance().setRandomSeed(3);
            new FineTuningMethod.Qlora(new FineTuningMethod.Lora(4, 8f, 0.1f, ALL_LINEAR))
                    .apply(lm, model.getNDManager());
            // LoRA's B starts at zero, so A's gradient would be zero: one step moves B first.
            randomizeLoraB(lm);
            Map<String, float[]> plain = gradients(model, lm, false, 11);
            Map<String, float[]> checkpointed = gradients(model, lm, true, 11);
            assertThat(plain).hasSize(3 * 7 * 2);
            assertEqual(plain, checkpointed, 1e-5);
            // Dropout is really on: another seed draws other masks and other gradients.
            Map<String, float[]> otherMasks = gradients(model, lm, true, 12);
            assertThat(maxDiff(plain, otherMasks)).isGreaterThan(1e-4);
        }
        // Every parameter trains (embedding, norms, biases, untied head), dropout off: the
        // segmented passes also equal the model's own forward, backpropagated whole.
        try (Model model =
                LlamaCheckpoint.load(base, runtime.device(), LlamaConfig::withoutDropout)) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            new FineTuningMethod.Full().apply(lm, model.getNDManager());
            Map<String, float[]> whole = wholeModelGradients(model, lm);
            Map<String, float[]> plain = gradients(model, lm, false, 11);
            Map<String, float[]> checkpointed = gradients(model, lm, true, 11);
            assertThat(plain.keySet()).contains("model.embed_tokens.weight", "lm_head.weight");
            assertEqual(whole, plain, 1e-5);
            assertEqual(plain, checkpointed, 1e-5);
        }
    }

    @Test
    void aCheckpointedQloraRunHasTheSameLossesAndResumesExactly(@TempDir Path dir)
            throws Exception {
        Path base = LlamaTrainingTest.write(dir.resolve("base"), THREE_LAYERS, 33);
        TrainingSettings settings = new TrainingSettings(3, 4, 1e-2f, 0.01f, 0.1f, 1f, 16, 42);
        List<TrainingListener.StepReport> plain = new ArrayList<>();
        train(base, settings, plain, Checkpointing.none());
        List<TrainingListener.StepReport> full = new ArrayList<>();
        train(
                base,
                settings.withActivationCheckpointing(true),
                full,
                ResumeRuns.every(dir.resolve("ckpt"), 2));
        assertThat(full).hasSize(plain.size());
        for (int i = 0; i < plain.size(); i++) {
            assertThat(full.get(i).loss())
                    .as("step %d", i + 1)
                    .isCloseTo(plain.get(i).loss(), org.assertj.core.api.Assertions.within(1e-5));
        }
        List<TrainingListener.StepReport> resumed = new ArrayList<>();
        train(
                base,
                settings.withActivationCheckpointing(true),
                resumed,
                ResumeRuns.resumeFrom(dir.resolve("ckpt"), 4, dir.resolve("ckpt2")));
        ResumeRuns.assertContinues(full, resumed, 6, 4);
    }

    @Test
    void aStreamedQloraLoadHoldsTheSameNf4BytesAndNeverAllocatesTheProjections(@TempDir Path dir)
            throws Exception {
        Path base = LlamaTrainingTest.write(dir.resolve("base"), THREE_LAYERS, 35);
        FineTuningMethod.Qlora qlora =
                new FineTuningMethod.Qlora(new FineTuningMethod.Lora(4, 8f, 0f, ALL_LINEAR));
        Map<String, Dense.WeightStore.Nf4> afterLoad = new LinkedHashMap<>();
        float[] loadedThenQuantized;
        try (Model model = LlamaCheckpoint.load(base, runtime.device())) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            qlora.apply(lm, model.getNDManager());
            lm.linears().forEach((m, d) -> afterLoad.put(m, (Dense.WeightStore.Nf4) d.base()));
            loadedThenQuantized = LlamaTrainingTest.logits(model, new long[] {1, 2, 3, 4, 5});
        }
        try (Model model =
                LlamaCheckpoint.load(
                        base,
                        runtime.device(),
                        UnaryOperator.identity(),
                        Optional.of(qlora.loading()))) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            assertThat(lm.linears()).hasSize(3 * 7);
            lm.linears()
                    .forEach(
                            (m, d) -> {
                                var nf4 = ((Dense.WeightStore.Nf4) d.base()).weight();
                                var ref = afterLoad.get(m).weight();
                                assertThat(nf4.packed()).as(m).isEqualTo(ref.packed());
                                assertThat(nf4.absmax())
                                        .as(m)
                                        .usingRecursiveComparison()
                                        .isEqualTo(ref.absmax());
                                assertThat(nf4.shape()).as(m).isEqualTo(ref.shape());
                                assertThat(nf4.dtype()).as(m).isEqualTo(ref.dtype());
                                // The float32 weight was never allocated: no array, no parameter.
                                assertThat(lm.namedParameters()).doesNotContainKey(m + ".weight");
                            });
            qlora.apply(lm, model.getNDManager());
            assertThat(LlamaTrainingTest.logits(model, new long[] {1, 2, 3, 4, 5}))
                    .isEqualTo(loadedThenQuantized);
        }
        // A QLoRA that asks for other blocks than the load used fails instead of mixing them.
        try (Model model =
                LlamaCheckpoint.load(
                        base,
                        runtime.device(),
                        UnaryOperator.identity(),
                        Optional.of(new Nf4Loading(qlora.loading().modules(), 128, true)))) {
            assertThatThrownBy(
                            () ->
                                    qlora.apply(
                                            (LlamaLmModel) model.getBlock(), model.getNDManager()))
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("blocks of 128");
        }
    }

    private static UnaryOperator<LlamaConfig> withDropout(float rate) {
        return c -> c.withAttentionDropout(rate);
    }

    private static void train(
            Path base,
            TrainingSettings settings,
            List<TrainingListener.StepReport> steps,
            Checkpointing checkpointing)
            throws Exception {
        FineTuningMethod.Qlora qlora =
                new FineTuningMethod.Qlora(new FineTuningMethod.Lora(4, 8f, 0.1f, ALL_LINEAR));
        try (Model model =
                LlamaCheckpoint.load(
                        base, runtime.device(), withDropout(0.2f), Optional.of(qlora.loading()))) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            Engine.getInstance().setRandomSeed(7);
            qlora.apply(lm, model.getNDManager());
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            LlamaTrainingTest.dataset(),
                            settings,
                            Validation.none(),
                            steps::add,
                            checkpointing);
        }
    }

    private static void randomizeLoraB(LlamaLmModel lm) {
        lm.namedParameters()
                .forEach(
                        (name, p) -> {
                            if (name.endsWith("lora_B.weight")) {
                                NDArray a = p.getArray();
                                try (NDArray r =
                                        a.getManager()
                                                .randomNormal(
                                                        0f, 0.1f, a.getShape(), a.getDataType())) {
                                    a.set(new NDIndex("..."), r);
                                }
                            }
                        });
    }

    /** One batch of the test data through the trainer's pass; every trained tensor's gradient. */
    private static Map<String, float[]> gradients(
            Model model, LlamaLmModel lm, boolean checkpoint, int seed) {
        return collect(
                model,
                lm,
                (m, b, collector) -> {
                    Engine.getInstance().setRandomSeed(seed);
                    CausalLmTrainer.lossAndBackward(
                            lm, m, b[0], b[1], b[2], checkpoint, collector, 1);
                });
    }

    /** The same batch through the model's own forward, backpropagated in one pass. */
    private static Map<String, float[]> wholeModelGradients(Model model, LlamaLmModel lm) {
        return collect(
                model,
                lm,
                (m, b, collector) ->
                        collector.backward(
                                Scalars.div(
                                        CausalLmTrainer.trainingLoss(lm, m, b[0], b[1], b[2], true),
                                        1)));
    }

    interface Pass {
        void run(NDManager manager, NDArray[] batch, GradientCollector collector);
    }

    private static Map<String, float[]> collect(Model model, LlamaLmModel lm, Pass pass) {
        Map<String, Parameter> trained = new LinkedHashMap<>();
        lm.namedParameters()
                .forEach(
                        (name, p) -> {
                            if (p.requiresGradient()) {
                                p.getArray().setRequiresGradient(true);
                                trained.put(name, p);
                            }
                        });
        try (NDManager m = model.getNDManager().newSubManager();
                GradientCollector collector = Engine.getInstance().newGradientCollector()) {
            pass.run(m, batch(m, LlamaTrainingTest.dataset().subList(0, 4)), collector);
        }
        Map<String, float[]> out = new LinkedHashMap<>();
        trained.forEach(
                (name, p) -> {
                    try (NDArray g = p.getArray().getGradient()) {
                        out.put(name, g.toFloatArray());
                        g.set(new NDIndex("..."), 0f);
                    }
                });
        return out;
    }

    /** Ids, mask and labels, right-padded with id 0, mask 0 and label -100. */
    private static NDArray[] batch(NDManager m, List<LmExample> examples) {
        int t = examples.stream().mapToInt(e -> e.inputIds().length).max().orElseThrow();
        long[] ids = new long[examples.size() * t];
        long[] mask = new long[ids.length];
        long[] labels = new long[ids.length];
        Arrays.fill(labels, -100);
        for (int i = 0; i < examples.size(); i++) {
            LmExample e = examples.get(i);
            System.arraycopy(e.inputIds(), 0, ids, i * t, e.inputIds().length);
            System.arraycopy(e.labels(), 0, labels, i * t, e.labels().length);
            Arrays.fill(mask, i * t, i * t + e.inputIds().length, 1);
        }
        Shape s = new Shape(examples.size(), t);
        return new NDArray[] {m.create(ids, s), m.create(mask, s), m.create(labels, s)};
    }

    private static void assertEqual(Map<String, float[]> a, Map<String, float[]> b, double tol) {
        assertThat(b.keySet()).isEqualTo(a.keySet());
        a.forEach(
                (name, g) -> {
                    float[] h = b.get(name);
                    double max = 0;
                    for (int i = 0; i < g.length; i++) {
                        max = Math.max(max, Math.abs(g[i] - h[i]));
                    }
                    assertThat(max).as(name).isLessThanOrEqualTo(tol);
                });
        // Not all zero: the comparison means something.
        assertThat(a.values().stream().anyMatch(g -> maxAbs(g) > 1e-4)).isTrue();
    }

    private static double maxDiff(Map<String, float[]> a, Map<String, float[]> b) {
        double max = 0;
        for (String name : a.keySet()) {
            float[] g = a.get(name);
            float[] h = b.get(name);
            for (int i = 0; i < g.length; i++) {
                max = Math.max(max, Math.abs(g[i] - h[i]));
            }
        }
        return max;
    }

    private static double maxAbs(float[] g) {
        double max = 0;
        for (float v : g) {
            max = Math.max(max, Math.abs(v));
        }
        return max;
    }
}
