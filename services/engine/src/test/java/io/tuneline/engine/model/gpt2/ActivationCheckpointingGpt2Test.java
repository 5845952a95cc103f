package io.tuneline.engine.model.gpt2;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.model.CausalLmCheckpoint;
import io.tuneline.engine.quant.Nf4Weight;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.Checkpointing;
import io.tuneline.engine.train.CheckpointingChecks;
import io.tuneline.engine.train.TrainingListener;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.engine.train.Validation;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * QLoRA's memory levers on GPT-2, as on the Llama family: activation checkpointing gives the
 * gradients, the loss curve and the exact resume of a run without it (embedding, attention and
 * residual dropout on), and the streaming load holds every Conv1D projection in NF4, bit for bit as
 * quantizing the loaded model, without allocating its float32 weight.
 */
class ActivationCheckpointingGpt2Test {
    private static final List<String> ALL_CONV1D = List.of("c_attn", "c_proj", "c_fc");
    private static final long[] PROBE = {1, 2, 3, 4, 5, 6, 20, 22, 24, 40, 41, 40};
    private static EngineRuntime runtime;

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    @Test
    void gradientsWithCheckpointingEqualThoseWithoutForQloraWithDropoutAndForAFullFineTune(
            @TempDir Path dir) throws Exception {
        Path base = TinyGpt2.write(dir.resolve("base"), TinyGpt2.randomWeights(41), true);
        // QLoRA on all four Conv1D projections, LoRA dropout and every GPT-2 dropout on.
        try (Model model = Gpt2Checkpoint.load(base, runtime.device(), withDropout(0.2f))) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            Engine.getInstance().setRandomSeed(3);
            new FineTuningMethod.Qlora(new FineTuningMethod.Lora(4, 8f, 0.1f, ALL_CONV1D))
                    .apply(lm, model.getNDManager());
            CheckpointingChecks.randomizeLoraB(lm);
            Map<String, float[]> plain = gradients(model, lm, false, 11);
            Map<String, float[]> checkpointed = gradients(model, lm, true, 11);
            assertThat(plain).hasSize(2 * 4 * 2);
            CheckpointingChecks.assertEqual(plain, checkpointed, 1e-6);
            // Dropout is really on, and replayed: another seed draws other masks and gradients.
            Map<String, float[]> otherMasks = gradients(model, lm, true, 12);
            assertThat(CheckpointingChecks.maxDiff(plain, otherMasks)).isGreaterThan(1e-4);
        }
        // Every parameter trains (wte, which is also the head, wpe, norms, biases), dropout off:
        // the segmented passes also equal the model's own forward, backpropagated whole.
        try (Model model =
                Gpt2Checkpoint.load(base, runtime.device(), Gpt2Config::withoutDropout)) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            new FineTuningMethod.Full().apply(lm, model.getNDManager());
            Map<String, float[]> whole =
                    CheckpointingChecks.collect(
                            model,
                            lm,
                            (m, collector) -> {
                                NDArray[] b = batch(m);
                                collector.backward(
                                        CausalLmTrainer.trainingLoss(
                                                lm, m, b[0], b[1], b[2], true));
                            });
            Map<String, float[]> plain = gradients(model, lm, false, 11);
            Map<String, float[]> checkpointed = gradients(model, lm, true, 11);
            assertThat(plain.keySet())
                    .contains(
                            "transformer.wte.weight",
                            "transformer.wpe.weight",
                            "transformer.h.0.attn.c_attn.weight",
                            "transformer.ln_f.bias");
            CheckpointingChecks.assertEqual(whole, plain, 1e-6);
            CheckpointingChecks.assertEqual(plain, checkpointed, 1e-6);
        }
    }

    @Test
    void aCheckpointedStreamedQloraRunHasTheSameLossesAndResumesExactly(@TempDir Path dir)
            throws Exception {
        Path base = TinyGpt2.write(dir.resolve("base"), TinyGpt2.randomWeights(43), true);
        TrainingSettings settings = new TrainingSettings(3, 4, 1e-2f, 0.01f, 0.1f, 1f, 16, 42);
        CheckpointingChecks.assertSameLossesAndExactResume(
                (st, steps, checkpointing) -> train(base, st, steps, checkpointing),
                settings,
                dir,
                1e-6);
    }

    @Test
    void aStreamedQloraLoadHoldsTheSameNf4BytesAndNeverAllocatesTheProjections(@TempDir Path dir)
            throws Exception {
        Path base = TinyGpt2.write(dir.resolve("base"), TinyGpt2.randomWeights(45), true);
        FineTuningMethod.Qlora qlora =
                new FineTuningMethod.Qlora(new FineTuningMethod.Lora(4, 8f, 0f, ALL_CONV1D));
        Map<String, Nf4Weight> afterLoad;
        float[] loadedThenQuantized;
        try (Model model = Gpt2Checkpoint.load(base, runtime.device())) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            qlora.apply(lm, model.getNDManager());
            afterLoad = CheckpointingChecks.nf4Bases(lm);
            loadedThenQuantized = logits(model, lm);
        }
        // Through the loader the worker calls, with the job's dropout override.
        try (Model model =
                CausalLmCheckpoint.load(
                        base,
                        runtime.device(),
                        OptionalDouble.of(0.0),
                        Optional.of(qlora.loading()))) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            CheckpointingChecks.assertSameNf4(lm, afterLoad, 2 * 4);
            // The biases, embeddings and norms loaded as before.
            assertThat(lm.namedParameters()).containsKeys("transformer.h.1.mlp.c_fc.bias");
            qlora.apply(lm, model.getNDManager());
            assertThat(logits(model, lm)).isEqualTo(loadedThenQuantized);
        }
    }

    private static UnaryOperator<Gpt2Config> withDropout(float rate) {
        return c -> c.withDropout(rate);
    }

    private static void train(
            Path base,
            TrainingSettings settings,
            List<TrainingListener.StepReport> steps,
            Checkpointing checkpointing)
            throws Exception {
        FineTuningMethod.Qlora qlora =
                new FineTuningMethod.Qlora(new FineTuningMethod.Lora(4, 8f, 0.1f, ALL_CONV1D));
        try (Model model =
                Gpt2Checkpoint.load(
                        base, runtime.device(), withDropout(0.2f), Optional.of(qlora.loading()))) {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            Engine.getInstance().setRandomSeed(7);
            qlora.apply(lm, model.getNDManager());
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            Gpt2TrainingTest.dataset(),
                            settings,
                            Validation.none(),
                            steps::add,
                            checkpointing);
        }
    }

    /** One batch of the test data through the trainer's pass; every trained tensor's gradient. */
    private static Map<String, float[]> gradients(
            Model model, Gpt2LmModel lm, boolean checkpoint, int seed) {
        return CheckpointingChecks.collect(
                model,
                lm,
                (m, collector) -> {
                    NDArray[] b = batch(m);
                    Engine.getInstance().setRandomSeed(seed);
                    CausalLmTrainer.lossAndBackward(
                            lm, m, b[0], b[1], b[2], checkpoint, collector, 1);
                });
    }

    private static NDArray[] batch(NDManager m) {
        return CheckpointingChecks.lmBatch(m, Gpt2TrainingTest.dataset().subList(0, 4));
    }

    private static float[] logits(Model model, Gpt2LmModel lm) {
        try (NDManager m = model.getNDManager().newSubManager()) {
            return lm.forward(
                            new ParameterStore(m, false),
                            new NDList(m.create(PROBE, new Shape(1, PROBE.length))),
                            false)
                    .singletonOrThrow()
                    .toFloatArray();
        }
    }
}
