package io.tuneline.engine.method;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.training.GradientCollector;
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
    /** Methods the trainers run whole (no layer segments): virtual tokens, a key/value prefix. */
    private static final FineTuningMethod PROMPT =
            new FineTuningMethod.Prompt(4, FineTuningMethod.Prompt.Init.RANDOM, List.of());

    private static final FineTuningMethod PREFIX = new FineTuningMethod.Prefix(4, 16);

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
        // LoRA runs layer by layer (the segments); the prompt methods run the model whole, in a
        // manager closed before backward, so whatever the forward pass made from Java data and
        // autograd saved (Llama's rotary tables) must not be freed with it.
        for (FineTuningMethod method :
                List.of(
                        lora,
                        PROMPT,
                        PREFIX,
                        new FineTuningMethod.PTuning(
                                4, FineTuningMethod.PTuning.Encoder.LSTM, 8, 0f))) {
            List<Double> quiet = new ArrayList<>();
            TrainingOutcome calm =
                    train(family, base, method, (model, step) -> quiet.add(step.loss()));
            List<Double> pressed = new ArrayList<>();
            TrainingOutcome busy;
            try (Pressure ignored = new Pressure()) {
                busy = train(family, base, method, (model, step) -> pressed.add(step.loss()));
            }
            assertThat(calm.skippedSteps()).as("%s", method).isZero();
            assertThat(busy.skippedSteps())
                    .as("%s: steps skipped for NaN gradients", method)
                    .isZero();
            assertThat(pressed).hasSameSizeAs(quiet).hasSize(12);
            for (int i = 0; i < quiet.size(); i++) {
                assertThat(pressed.get(i))
                        .as("%s: loss of step %d", method, i + 1)
                        .isCloseTo(quiet.get(i), Offset.offset(1e-6));
            }
        }
    }

    /**
     * A model with virtual tokens or a key/value prefix has no segments, and the trainers run it
     * whole; that pass runs in a manager of its own, closed before backward, so that once the loss
     * is known the step's manager holds the batch and the loss and nothing else: not the logits (B,
     * T, vocab) nor any layer's intermediates, which the Java handles would otherwise keep until
     * the step ends where PyTorch frees them as soon as nothing refers to them.
     */
    @ParameterizedTest
    @EnumSource(
            value = PromptFamilies.class,
            names = {"BERT", "GPT2", "LLAMA_GQA"})
    void aModelRunWholeLeavesOnlyTheBatchAndTheLossBeforeBackward(
            PromptFamilies family, @TempDir Path dir) throws Exception {
        Path base = family.write(dir.resolve("base"), runtime, 3);
        for (FineTuningMethod method : List.of(PROMPT, PREFIX)) {
            try (Model model = family.load(base, runtime)) {
                method.apply(PromptFamilies.tunable(model), model.getNDManager());
                try (NDManager step = model.getNDManager().newSubManager();
                        GradientCollector collector = Engine.getInstance().newGradientCollector()) {
                    NDArray ids =
                            step.create(new long[][] {{5, 7, 9, 11, 13, 4}, {6, 8, 10, 3, 2, 1}});
                    NDArray mask = step.ones(ids.getShape(), DataType.INT64);
                    NDArray labels;
                    NDArray loss;
                    if (family == PromptFamilies.BERT) {
                        labels = step.create(new float[] {0, 2});
                        loss =
                                new ClassifierTrainer(
                                                tokenizer,
                                                new ClassificationLoss(0.0, Optional.empty()))
                                        .lossAndBackward(
                                                (SequenceClassifier) model.getBlock(),
                                                step,
                                                ids,
                                                mask,
                                                labels,
                                                false,
                                                collector,
                                                1);
                    } else {
                        labels = ids.duplicate();
                        loss =
                                CausalLmTrainer.lossAndBackward(
                                        (CausalLanguageModel) model.getBlock(),
                                        step,
                                        ids,
                                        mask,
                                        labels,
                                        false,
                                        collector,
                                        1);
                    }
                    assertThat(loss.getManager()).isSameAs(step);
                    List<NDArray> batch = List.of(ids, mask, labels);
                    List<String> others =
                            step.getManagedArrays().stream()
                                    .filter(a -> batch.stream().noneMatch(b -> b == a))
                                    .filter(a -> a.size() > 1)
                                    .map(a -> a.getShape().toString())
                                    .toList();
                    assertThat(others)
                            .as("%s: arrays beyond the batch and the loss after backward", method)
                            .isEmpty();
                    assertThat(
                                    PromptFamilies.tunable(model)
                                            .namedParameters()
                                            .values()
                                            .stream()
                                            .filter(p -> p.requiresGradient())
                                            .allMatch(
                                                    p ->
                                                            p.getArray()
                                                                            .getGradient()
                                                                            .abs()
                                                                            .sum()
                                                                            .getFloat()
                                                                    > 0))
                            .as("%s: every trained parameter got a gradient", method)
                            .isTrue();
                }
            }
        }
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
