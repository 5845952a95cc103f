package io.tuneline.engine.model.llama;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.quant.Nf4Loading;
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
            CheckpointingChecks.randomizeLoraB(lm);
            Map<String, float[]> plain = gradients(model, lm, false, 11);
            Map<String, float[]> checkpointed = gradients(model, lm, true, 11);
            assertThat(plain).hasSize(3 * 7 * 2);
            CheckpointingChecks.assertEqual(plain, checkpointed, 1e-5);
            // Dropout is really on: another seed draws other masks and other gradients.
            Map<String, float[]> otherMasks = gradients(model, lm, true, 12);
            assertThat(CheckpointingChecks.maxDiff(plain, otherMasks)).isGreaterThan(1e-4);
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
            CheckpointingChecks.assertEqual(whole, plain, 1e-5);
            CheckpointingChecks.assertEqual(plain, checkpointed, 1e-5);
        }
    }

    @Test
    void aCheckpointedQloraRunHasTheSameLossesAndResumesExactly(@TempDir Path dir)
            throws Exception {
        Path base = LlamaTrainingTest.write(dir.resolve("base"), THREE_LAYERS, 33);
        TrainingSettings settings = new TrainingSettings(3, 4, 1e-2f, 0.01f, 0.1f, 1f, 16, 42);
        CheckpointingChecks.assertSameLossesAndExactResume(
                (st, steps, checkpointing) -> train(base, st, steps, checkpointing),
                settings,
                dir,
                1e-5);
    }

    @Test
    void aStreamedQloraLoadHoldsTheSameNf4BytesAndNeverAllocatesTheProjections(@TempDir Path dir)
            throws Exception {
        Path base = LlamaTrainingTest.write(dir.resolve("base"), THREE_LAYERS, 35);
        FineTuningMethod.Qlora qlora =
                new FineTuningMethod.Qlora(new FineTuningMethod.Lora(4, 8f, 0f, ALL_LINEAR));
        Map<String, Nf4Weight> afterLoad;
        float[] loadedThenQuantized;
        try (Model model = LlamaCheckpoint.load(base, runtime.device())) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            qlora.apply(lm, model.getNDManager());
            afterLoad = CheckpointingChecks.nf4Bases(lm);
            loadedThenQuantized = LlamaTrainingTest.logits(model, new long[] {1, 2, 3, 4, 5});
        }
        try (Model model =
                LlamaCheckpoint.load(
                        base,
                        runtime.device(),
                        UnaryOperator.identity(),
                        Optional.of(qlora.loading()))) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            CheckpointingChecks.assertSameNf4(lm, afterLoad, 3 * 7);
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

    /** One batch of the test data through the trainer's pass; every trained tensor's gradient. */
    private static Map<String, float[]> gradients(
            Model model, LlamaLmModel lm, boolean checkpoint, int seed) {
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

    /** The same batch through the model's own forward, backpropagated in one pass. */
    private static Map<String, float[]> wholeModelGradients(Model model, LlamaLmModel lm) {
        return CheckpointingChecks.collect(
                model,
                lm,
                (m, collector) -> {
                    NDArray[] b = batch(m);
                    collector.backward(CausalLmTrainer.trainingLoss(lm, m, b[0], b[1], b[2], true));
                });
    }

    private static NDArray[] batch(NDManager m) {
        return CheckpointingChecks.lmBatch(m, LlamaTrainingTest.dataset().subList(0, 4));
    }
}
