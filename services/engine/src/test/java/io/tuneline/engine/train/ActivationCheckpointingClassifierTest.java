package io.tuneline.engine.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.model.ClassifierHead;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.quant.Nf4Loading;
import io.tuneline.engine.quant.Nf4Weight;
import io.tuneline.engine.runtime.EngineRuntime;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * QLoRA's memory levers on the BERT-family classifier, as on the decoders: activation checkpointing
 * gives the gradients, the loss curve and the exact resume of a run without it (hidden, attention
 * and head dropout on; both heads), and the streaming load holds every linear layer of the base in
 * NF4, bit for bit as quantizing the loaded model, without allocating its float32 weight, from a
 * Hugging Face directory and from the built-in MiniLM's ONNX file.
 */
class ActivationCheckpointingClassifierTest {
    /** A tiny BERT on MiniLM's vocabulary, so the built-in tokenizer feeds it. */
    private static final BertConfig TINY = new BertConfig(30522, 32, 3, 4, 48, 64, 2, 1e-12f);

    private static final List<String> ALL_LINEAR = List.of("query", "key", "value", "dense");
    private static EngineRuntime runtime;

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    @Test
    void gradientsWithCheckpointingEqualThoseWithoutForQloraWithDropoutAndForAFullFineTune(
            @TempDir Path dir) throws Exception {
        for (ClassifierHead head : ClassifierHead.values()) {
            PretrainedModel base = writeBase(dir.resolve(head.name()), head, 51);
            try (Model model = Model.newInstance("qlora-ckpt", runtime.device())) {
                SequenceClassifier c = load(model, base, head, 0.2f, Optional.empty());
                Engine.getInstance().setRandomSeed(3);
                new FineTuningMethod.Qlora(new FineTuningMethod.Lora(4, 8f, 0.1f, ALL_LINEAR))
                        .apply(c, model.getNDManager());
                CheckpointingChecks.randomizeLoraB(c);
                Map<String, float[]> plain = gradients(model, c, false, 11);
                Map<String, float[]> checkpointed = gradients(model, c, true, 11);
                // LoRA A and B on 6 linears of 3 layers, (the pooler's too), the head.
                int pooler = head == ClassifierHead.CLS_POOLER ? 2 : 0;
                assertThat(plain).as(head.name()).hasSize(3 * 6 * 2 + pooler + 2);
                CheckpointingChecks.assertEqual(plain, checkpointed, 1e-6);
                // Dropout is really on, and replayed: another seed draws other masks.
                Map<String, float[]> otherMasks = gradients(model, c, true, 12);
                assertThat(CheckpointingChecks.maxDiff(plain, otherMasks)).isGreaterThan(1e-4);
            }
        }
        // Every parameter trains, dropout off: the segmented passes also equal the classifier's
        // own forward, backpropagated whole.
        PretrainedModel base = writeBase(dir.resolve("full"), ClassifierHead.MEAN, 53);
        try (Model model = Model.newInstance("full-ckpt", runtime.device())) {
            SequenceClassifier c = load(model, base, ClassifierHead.MEAN, 0f, Optional.empty());
            new FineTuningMethod.Full().apply(c, model.getNDManager());
            ClassifierTrainer trainer = new ClassifierTrainer(null);
            Map<String, float[]> whole =
                    CheckpointingChecks.collect(
                            model,
                            c,
                            (m, collector) -> {
                                NDArray[] b = batch(m);
                                collector.backward(trainer.trainingLoss(c, m, b[0], b[1], b[2]));
                            });
            Map<String, float[]> plain = gradients(model, c, false, 11);
            Map<String, float[]> checkpointed = gradients(model, c, true, 11);
            assertThat(plain.keySet())
                    .contains(
                            "embeddings.word_embeddings.weight",
                            "embeddings.LayerNorm.bias",
                            "encoder.layer.2.output.dense.weight",
                            "classifier.weight");
            CheckpointingChecks.assertEqual(whole, plain, 1e-6);
            CheckpointingChecks.assertEqual(plain, checkpointed, 1e-6);
        }
    }

    @Test
    void aCheckpointedStreamedQloraRunHasTheSameLossesAndResumesExactly(@TempDir Path dir)
            throws Exception {
        PretrainedModel base = writeBase(dir.resolve("base"), ClassifierHead.MEAN, 55);
        TrainingSettings settings = new TrainingSettings(3, 4, 1e-2f, 0.01f, 0.1f, 1f, 16, 42);
        try (HuggingFaceTokenizer tokenizer = tokenizer()) {
            CheckpointingChecks.assertSameLossesAndExactResume(
                    (st, steps, checkpointing) -> train(base, tokenizer, st, steps, checkpointing),
                    settings,
                    dir,
                    1e-6);
        }
    }

    @Test
    void aStreamedQloraLoadHoldsTheSameNf4BytesFromADirectoryAndFromTheBuiltInOnnx(
            @TempDir Path dir) throws Exception {
        FineTuningMethod.Qlora qlora =
                new FineTuningMethod.Qlora(new FineTuningMethod.Lora(4, 8f, 0f, ALL_LINEAR));
        // A BERT directory with its pooler (the Hugging Face head reads it; it is a linear of
        // the base, so QLoRA holds it in NF4 too).
        PretrainedModel tiny = writeBase(dir.resolve("pooler"), ClassifierHead.CLS_POOLER, 57);
        assertStreamedEqualsQuantizedAfterLoad(tiny, ClassifierHead.CLS_POOLER, qlora, 3 * 6 + 1);
        PretrainedModel miniLm = ModelCatalog.resolve(ModelCatalog.MINILM_L6);
        assertStreamedEqualsQuantizedAfterLoad(miniLm, ClassifierHead.MEAN, qlora, 6 * 6);
        // Too late once the classifier is initialized: its float32 weights exist already.
        try (Model model = Model.newInstance("late", runtime.device())) {
            SequenceClassifier c = load(model, tiny, ClassifierHead.MEAN, 0f, Optional.empty());
            assertThatThrownBy(
                            () ->
                                    tiny.initializeAndLoad(
                                            c,
                                            model.getNDManager(),
                                            8,
                                            Optional.of(qlora.loading())))
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("the classifier is initialized already");
        }
    }

    private static void assertStreamedEqualsQuantizedAfterLoad(
            PretrainedModel base, ClassifierHead head, FineTuningMethod.Qlora qlora, int linears)
            throws Exception {
        BertConfig config = base.config().withoutDropout();
        Map<String, Nf4Weight> afterLoad;
        float[] hiddenAfterLoad;
        try (Model model = Model.newInstance("after-load", runtime.device())) {
            SequenceClassifier c = load(model, base, config, head, Optional.empty());
            qlora.apply(c, model.getNDManager());
            afterLoad = CheckpointingChecks.nf4Bases(c);
            hiddenAfterLoad = hidden(model, c);
        }
        try (Model model = Model.newInstance("streamed", runtime.device())) {
            SequenceClassifier c = load(model, base, config, head, Optional.of(qlora.loading()));
            CheckpointingChecks.assertSameNf4(c, afterLoad, linears);
            qlora.apply(c, model.getNDManager());
            // The encoder (the head's random start aside) computes what the other load gives.
            assertThat(hidden(model, c)).isEqualTo(hiddenAfterLoad);
        }
    }

    /**
     * A random tiny BERT classifier base written as a Hugging Face directory (config.json,
     * model.safetensors with the head's layout, MiniLM's tokenizer.json), resolved by the catalogue
     * as a job's base model is.
     */
    private static PretrainedModel writeBase(Path dir, ClassifierHead head, long seed)
            throws Exception {
        try (Model model = Model.newInstance("write", runtime.device())) {
            SequenceClassifier c = new SequenceClassifier(new BertEncoder(TINY), 2, 0.1f, head);
            c.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(1, 8), new Shape(1, 8));
            PrefixBertTest.randomize(c, seed);
            PrefixBertTest.writeBase(c, dir);
        }
        try (InputStream in = ModelCatalog.resolve(ModelCatalog.MINILM_L6).tokenizer().open()) {
            Files.copy(in, dir.resolve(ModelCatalog.TOKENIZER));
        }
        return ModelCatalog.resolve(dir.toString());
    }

    private static SequenceClassifier load(
            Model model,
            PretrainedModel base,
            ClassifierHead head,
            float dropout,
            Optional<Nf4Loading> nf4)
            throws Exception {
        return load(model, base, base.config().withDropout(dropout), head, nf4);
    }

    /** As the worker builds a classifier: NF4 first when streaming, then initialize and load. */
    private static SequenceClassifier load(
            Model model,
            PretrainedModel base,
            BertConfig config,
            ClassifierHead head,
            Optional<Nf4Loading> nf4)
            throws Exception {
        SequenceClassifier c =
                new SequenceClassifier(new BertEncoder(config), 2, config.hiddenDropout(), head);
        base.initializeAndLoad(c, model.getNDManager(), 8, nf4);
        model.setBlock(c);
        return c;
    }

    private static void train(
            PretrainedModel base,
            HuggingFaceTokenizer tokenizer,
            TrainingSettings settings,
            List<TrainingListener.StepReport> steps,
            Checkpointing checkpointing)
            throws Exception {
        FineTuningMethod.Qlora qlora =
                new FineTuningMethod.Qlora(new FineTuningMethod.Lora(4, 8f, 0.1f, ALL_LINEAR));
        try (Model model = Model.newInstance("train", runtime.device())) {
            Engine.getInstance().setRandomSeed(7);
            SequenceClassifier c =
                    load(model, base, ClassifierHead.MEAN, 0.2f, Optional.of(qlora.loading()));
            qlora.apply(c, model.getNDManager());
            new ClassifierTrainer(tokenizer)
                    .train(
                            model,
                            c,
                            texts(),
                            settings,
                            Validation.none(),
                            steps::add,
                            checkpointing);
        }
    }

    /** Eight short labelled texts: 2 batches of 4 a step, 3 epochs, 6 steps. */
    private static List<LabelledText> texts() {
        return List.of(
                new LabelledText("a fine and warm film", 1),
                new LabelledText("dull, slow and far too long", 0),
                new LabelledText("the cast is wonderful", 1),
                new LabelledText("I want my evening back", 0),
                new LabelledText("a joy from start to end", 1),
                new LabelledText("the plot makes no sense at all", 0),
                new LabelledText("moving and funny", 1),
                new LabelledText("badly written", 0));
    }

    private static HuggingFaceTokenizer tokenizer() throws Exception {
        try (InputStream in = ModelCatalog.resolve(ModelCatalog.MINILM_L6).tokenizer().open()) {
            return HuggingFaceTokenizer.newInstance(
                    in, Map.of("truncation", "true", "maxLength", "16"));
        }
    }

    /** One batch through the trainer's pass; every trained tensor's gradient. */
    private static Map<String, float[]> gradients(
            Model model, SequenceClassifier c, boolean checkpoint, int seed) {
        ClassifierTrainer trainer = new ClassifierTrainer(null);
        return CheckpointingChecks.collect(
                model,
                c,
                (m, collector) -> {
                    NDArray[] b = batch(m);
                    Engine.getInstance().setRandomSeed(seed);
                    trainer.lossAndBackward(c, m, b[0], b[1], b[2], checkpoint, collector, 1);
                });
    }

    /** Four sequences of 3 to 10 tokens, right-padded, labels 0 and 1. */
    private static NDArray[] batch(NDManager m) {
        int t = 10;
        int[] lengths = {10, 7, 3, 9};
        long[] ids = new long[lengths.length * t];
        long[] mask = new long[ids.length];
        Random r = new Random(5);
        for (int i = 0; i < lengths.length; i++) {
            for (int j = 0; j < lengths[i]; j++) {
                ids[i * t + j] = 1000 + r.nextInt(2000);
                mask[i * t + j] = 1;
            }
        }
        Shape s = new Shape(lengths.length, t);
        return new NDArray[] {
            m.create(ids, s), m.create(mask, s), m.create(new float[] {0, 1, 1, 0})
        };
    }

    /** The encoder's last hidden states over a fixed batch, without dropout. */
    private static float[] hidden(Model model, SequenceClassifier c) {
        try (NDManager m = model.getNDManager().newSubManager()) {
            NDArray[] b = batch(m);
            return c.encoder()
                    .forward(new ParameterStore(m, false), new NDList(b[0], b[1]), false)
                    .singletonOrThrow()
                    .toFloatArray();
        }
    }
}
