package io.tuneline.engine.method;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.model.CausalLanguageModel;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.Checkpointing;
import io.tuneline.engine.train.ClassificationLoss;
import io.tuneline.engine.train.ClassifierTrainer;
import io.tuneline.engine.train.LabelledText;
import io.tuneline.engine.train.LearningRateSchedule;
import io.tuneline.engine.train.LmExample;
import io.tuneline.engine.train.TrainingOutcome;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.engine.train.Validation;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Gradients must not depend on what the garbage collector does. A constant in a forward pass made
 * the DJL way ({@code x.mul(0.5f)}) lives in a Java buffer the collector may free before backward
 * reads it ({@link io.tuneline.engine.nn.Scalars}): runs then took wrong or NaN gradients now and
 * then, and under allocation pressure at once. Here every family trains the same steps twice, once
 * quietly and once while another thread allocates and collects, and the two loss curves must be the
 * same. Each run goes through attention scaling, LoRA's scaling and dropout, GPT-2's GELU, label
 * smoothing and gradient accumulation (the loss divided by the group size).
 */
class MemoryPressureTest {
    private static EngineRuntime runtime;
    private static HuggingFaceTokenizer tokenizer;

    @BeforeAll
    static void start() throws Exception {
        runtime = EngineRuntime.start(2);
        try (InputStream in = ModelCatalog.resolve(ModelCatalog.MINILM_L6).tokenizer().open()) {
            tokenizer =
                    HuggingFaceTokenizer.newInstance(
                            in, Map.of("truncation", "true", "maxLength", "24"));
        }
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    @ParameterizedTest
    @EnumSource(
            value = PromptFamilies.class,
            names = {"BERT", "GPT2", "LLAMA_GQA"})
    void aRunUnderGarbageCollectionPressureTakesExactlyTheStepsOfAQuietOne(
            PromptFamilies family, @TempDir Path dir) throws Exception {
        Path base = family.write(dir.resolve("base"), runtime, 3);
        List<Double> quiet = new ArrayList<>();
        TrainingOutcome calm = train(family, base, quiet);
        List<Double> pressed = new ArrayList<>();
        TrainingOutcome busy;
        try (Pressure ignored = new Pressure()) {
            busy = train(family, base, pressed);
        }
        assertThat(calm.skippedSteps()).isZero();
        assertThat(busy.skippedSteps()).as("steps skipped for NaN gradients").isZero();
        assertThat(pressed).hasSameSizeAs(quiet).hasSize(12);
        for (int i = 0; i < quiet.size(); i++) {
            assertThat(pressed.get(i))
                    .as("loss of step %d", i + 1)
                    .isCloseTo(quiet.get(i), Offset.offset(1e-6));
        }
    }

    private static TrainingOutcome train(PromptFamilies family, Path base, List<Double> losses)
            throws Exception {
        FineTuningMethod.Lora lora =
                new FineTuningMethod.Lora(
                        4,
                        8f,
                        0.1f,
                        switch (family) {
                            case BERT -> List.of("query", "value", "dense");
                            case GPT2 -> List.of("c_attn", "c_fc");
                            default -> List.of("q_proj", "v_proj", "down_proj");
                        });
        return train(family, base, lora, (model, step) -> losses.add(step.loss()));
    }

    /**
     * Every method, on every family: after each step the model's manager holds exactly what it held
     * after the first (the parameters and the optimizer's moments), so a step's activations never
     * outlive it. Virtual tokens are computed from parameters, and DJL gives a result the manager
     * of its first operand: before {@code VirtualTokens.forBatch}, prompt tuning and P-tuning left
     * every activation of every step in the model's manager (10.8 GB after 80 steps of a small
     * decoder).
     */
    @ParameterizedTest
    @EnumSource(
            value = PromptFamilies.class,
            names = {"BERT", "GPT2", "LLAMA_GQA"})
    void noStepLeavesArraysInTheModelsManager(PromptFamilies family, @TempDir Path dir)
            throws Exception {
        Path base = family.write(dir.resolve("base"), runtime, 3);
        List<FineTuningMethod> methods =
                List.of(
                        new FineTuningMethod.Prompt(
                                4, FineTuningMethod.Prompt.Init.RANDOM, List.of()),
                        new FineTuningMethod.PTuning(
                                4, FineTuningMethod.PTuning.Encoder.MLP, 16, 0f),
                        new FineTuningMethod.PTuning(
                                4, FineTuningMethod.PTuning.Encoder.LSTM, 8, 0f),
                        new FineTuningMethod.Prefix(4, 16),
                        FineTuningMethod.Adapter.houlsby());
        for (FineTuningMethod method : methods) {
            List<Integer> held = new ArrayList<>();
            train(
                    family,
                    base,
                    method,
                    (model, step) -> held.add(model.getNDManager().getManagedArrays().size()));
            assertThat(held)
                    .as("%s: arrays in the model's manager after each step", method)
                    .hasSize(12)
                    .containsOnly(held.get(0));
        }
    }

    private static TrainingOutcome train(
            PromptFamilies family,
            Path base,
            FineTuningMethod method,
            java.util.function.BiConsumer<
                            Model, io.tuneline.engine.train.TrainingListener.StepReport>
                    onStep)
            throws Exception {
        // 16 examples in batches of 4, two batches a step, 6 epochs: 12 steps.
        TrainingSettings s =
                new TrainingSettings(
                        6, 4, 5e-3f, 0.01f, 0.1f, 1f, 24, 17, LearningRateSchedule.Shape.LINEAR, 2);
        try (Model model = family.load(base, runtime)) {
            Engine.getInstance().setRandomSeed(5);
            method.apply(PromptFamilies.tunable(model), model.getNDManager());
            if (family == PromptFamilies.BERT) {
                List<LabelledText> data = new ArrayList<>();
                Random r = new Random(1);
                String[] words = {"good", "bad", "fine", "awful", "great", "poor", "nice"};
                for (int i = 0; i < 16; i++) {
                    StringBuilder text = new StringBuilder();
                    for (int w = 0; w <= i % 9; w++) {
                        text.append(words[r.nextInt(words.length)]).append(' ');
                    }
                    data.add(new LabelledText(text.toString(), i % PromptFamilies.LABELS));
                }
                return new ClassifierTrainer(
                                tokenizer, new ClassificationLoss(0.1, Optional.empty()))
                        .train(
                                model,
                                (SequenceClassifier) model.getBlock(),
                                data,
                                s,
                                Validation.none(),
                                step -> onStep.accept(model, step),
                                Checkpointing.none());
            }
            List<LmExample> data = new ArrayList<>();
            Random r = new Random(2);
            for (int i = 0; i < 16; i++) {
                long[] ids = new long[6 + i % 11];
                for (int j = 0; j < ids.length; j++) {
                    ids[j] = 1 + r.nextInt(family.vocab() - 1);
                }
                data.add(LmExample.of(ids));
            }
            return new CausalLmTrainer()
                    .train(
                            model,
                            (CausalLanguageModel) model.getBlock(),
                            data,
                            s,
                            Validation.none(),
                            step -> onStep.accept(model, step),
                            Checkpointing.none());
        }
    }

    /** A thread that allocates and collects until closed. */
    private static final class Pressure implements AutoCloseable {
        private volatile boolean stop;
        private final Thread thread;

        Pressure() {
            thread =
                    new Thread(
                            () -> {
                                while (!stop) {
                                    byte[][] junk = new byte[64][];
                                    for (int i = 0; i < junk.length; i++) {
                                        junk[i] = new byte[1 << 16];
                                    }
                                    System.gc();
                                }
                            },
                            "memory-pressure");
            thread.setDaemon(true);
            thread.start();
        }

        @Override
        public void close() throws InterruptedException {
            stop = true;
            thread.join();
        }
    }
}
