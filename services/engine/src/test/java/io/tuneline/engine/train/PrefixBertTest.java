package io.tuneline.engine.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.export.ClassifierWeights;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.method.PrefixEncoder;
import io.tuneline.engine.method.PrefixReference;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.nn.NativeCopy;
import io.tuneline.engine.runtime.EngineRuntime;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Prefix tuning on the BERT-family classifier (a tiny random BERT and RoBERTa, whose positions
 * start at pad_token_id + 1 + N): PEFT's parameter counts, forward pass and one step's gradients
 * against {@code bench/prefix_reference.py}, mean pooling over the real tokens, learning with a
 * frozen base, {@link MethodState} round trip and exact resume.
 */
public class PrefixBertTest {
    static final int N = 5;
    static final long[][] IDS = {{2, 11, 12, 13, 14, 15, 3, 0}, {2, 21, 22, 3, 0, 0, 0, 0}};
    static final long[][] MASK = {{1, 1, 1, 1, 1, 1, 1, 0}, {1, 1, 1, 1, 0, 0, 0, 0}};
    static final int[] LABELS = {1, 0};

    private static EngineRuntime runtime;

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    /** A tiny BERT (or RoBERTa) classifier with random weights of a useful size. */
    public static SequenceClassifier tiny(Model model, String type, long seed) {
        BertConfig config =
                new BertConfig(
                                40,
                                32,
                                2,
                                4,
                                48,
                                24,
                                1,
                                1e-12f,
                                type,
                                type.equals(BertConfig.ROBERTA) ? 2 : 0)
                        .withoutDropout();
        SequenceClassifier c = new SequenceClassifier(new BertEncoder(config), 2, 0f);
        c.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(1, 8), new Shape(1, 8));
        model.setBlock(c);
        randomize(c, seed);
        return c;
    }

    /**
     * Sets every parameter of {@code c} to normal(0, 0.2), LayerNorm scales around 1: values of a
     * useful size, seeded.
     */
    public static void randomize(SequenceClassifier c, long seed) {
        Random r = new Random(seed);
        c.namedParameters()
                .forEach(
                        (name, p) -> {
                            float[] v = new float[(int) p.getArray().size()];
                            boolean norm = name.contains("LayerNorm.weight");
                            for (int i = 0; i < v.length; i++) {
                                v[i] = (float) ((norm ? 1 : 0) + 0.2 * r.nextGaussian());
                            }
                            NativeCopy.copyInto(p.getArray(), v);
                        });
    }

    /** The base as a Hugging Face directory: config.json and model.safetensors. */
    public static Path writeBase(SequenceClassifier c, Path dir) throws Exception {
        Files.createDirectories(dir);
        ClassifierWeights.writeMerged(c, dir.resolve("model.safetensors"));
        ObjectNode config = c.encoder().config().toJson();
        new ObjectMapper().writeValue(dir.resolve("config.json").toFile(), config);
        return dir;
    }

    static long peftTrainable(int n, int layers, int tokenDim, int projection) {
        long out = (long) layers * 2 * tokenDim;
        long encoder =
                projection == 0
                        ? n * out
                        : (long) n * tokenDim
                                + (long) tokenDim * projection
                                + projection
                                + (long) projection * out
                                + out;
        return encoder + 32 * 2 + 2; // + the classifier head (modules_to_save)
    }

    @Test
    void bertAndRobertaMatchThePlainPyTorchReferenceWithAndWithoutProjection(@TempDir Path dir)
            throws Exception {
        Object[][] variants = {
            {BertConfig.BERT, 0}, {BertConfig.BERT, 16}, {BertConfig.ROBERTA, 0}
        };
        List<ObjectNode> cases = new ArrayList<>();
        List<PrefixReference.EngineRun> runs = new ArrayList<>();
        long seed = 60;
        for (Object[] v : variants) {
            String type = (String) v[0];
            int projection = (int) v[1];
            try (Model model = Model.newInstance("bert", runtime.device(), EngineRuntime.ENGINE)) {
                SequenceClassifier c = tiny(model, type, seed++);
                Path base = writeBase(c, dir.resolve(type + projection));
                long baseTotal = ParameterCounts.of(c).total();
                Engine.getInstance().setRandomSeed(9);
                FineTuningMethod.Prefix prefix = new FineTuningMethod.Prefix(N, projection);
                ParameterCounts counts = prefix.apply(c, model.getNDManager());
                assertThat(counts.trainable()).isEqualTo(peftTrainable(N, 2, 32, projection));
                assertThat(counts.total()).isEqualTo(baseTotal + counts.trainable() - 66);
                System.out.printf(
                        "prefix %s tiny, projection %d: trainable %d of %d%n",
                        type, projection, counts.trainable(), counts.total());
                c.namedParameters()
                        .forEach(
                                (name, p) ->
                                        assertThat(p.requiresGradient())
                                                .as(name)
                                                .isEqualTo(
                                                        name.startsWith("prompt_encoder.")
                                                                || name.startsWith("classifier.")));
                assertThat(c.decays(PrefixEncoder.EMBEDDING)).isFalse();
                assertThat(c.decays("classifier.weight")).isTrue();
                Path state = dir.resolve(type + projection + "-state");
                MethodState.write(c, prefix, state);
                cases.add(
                        PrefixReference.newCase(
                                "bert",
                                base,
                                PrefixReference.tunelineMethod(
                                        state.resolve(MethodState.WEIGHTS), N, projection),
                                IDS,
                                MASK,
                                LABELS,
                                true));
                List<String> trained = new ArrayList<>(c.methodParameters().keySet());
                trained.add("classifier.weight");
                trained.add("classifier.bias");
                runs.add(
                        PrefixReference.engine(
                                c,
                                model.getNDManager(),
                                trained,
                                m -> {
                                    NDArray logits = classify(c, m, IDS, MASK, true);
                                    NDArray labels = m.create(new float[] {LABELS[0], LABELS[1]});
                                    return new NDArray[] {
                                        logits, ClassificationLoss.PLAIN.evaluate(logits, labels)
                                    };
                                }));
            }
        }
        List<PrefixReference.Result> ref = PrefixReference.run(dir, cases);
        for (int i = 0; i < variants.length; i++) {
            String what = variants[i][0] + " projection " + variants[i][1];
            double[] d = PrefixReference.compare(what, runs.get(i), ref.get(i), 2, null);
            System.out.printf(
                    "prefix %s vs reference: max |logit| diff %.2e, max |grad| diff %.2e%n",
                    what, d[0], d[1]);
        }
    }

    static NDArray classify(
            SequenceClassifier c, NDManager m, long[][] ids, long[][] mask, boolean training) {
        int b = ids.length;
        int t = ids[0].length;
        return c.forward(
                        new ParameterStore(m, false),
                        new NDList(
                                m.create(flat(ids), new Shape(b, t)),
                                m.create(flat(mask), new Shape(b, t))),
                        training)
                .singletonOrThrow();
    }

    /** Pre-tokenized examples: ids (padded to 8) and a label. */
    record Example(long[] ids, long[] mask, int label) {}

    static List<Example> data() {
        List<Example> d = new ArrayList<>();
        Random r = new Random(5);
        for (int i = 0; i < 16; i++) {
            int label = i % 2;
            int len = 4 + r.nextInt(4);
            long[] ids = new long[8];
            long[] mask = new long[8];
            ids[0] = 2;
            for (int j = 1; j < len; j++) {
                // Label 1 sentences use tokens 10..19, label 0 tokens 20..29.
                ids[j] = (label == 1 ? 10 : 20) + r.nextInt(10);
            }
            for (int j = 0; j < len; j++) {
                mask[j] = 1;
            }
            d.add(new Example(ids, mask, label));
        }
        return d;
    }

    static TrainingLoop.Task<Example> task(SequenceClassifier c) {
        return new TrainingLoop.Task<>() {
            @Override
            public Block block() {
                return c;
            }

            @Override
            public Map<String, Parameter> namedParameters() {
                return c.namedParameters();
            }

            @Override
            public boolean decays(String name) {
                return c.decays(name);
            }

            @Override
            public TrainingLoop.BatchLoss loss(NDManager manager, List<Example> batch) {
                long[][] ids = batch.stream().map(Example::ids).toArray(long[][]::new);
                long[][] mask = batch.stream().map(Example::mask).toArray(long[][]::new);
                float[] labels = new float[batch.size()];
                for (int i = 0; i < labels.length; i++) {
                    labels[i] = batch.get(i).label();
                }
                NDArray logits = classify(c, manager, ids, mask, true);
                return new TrainingLoop.BatchLoss(
                        ClassificationLoss.PLAIN.evaluate(logits, manager.create(labels)),
                        Arrays.stream(mask).flatMapToLong(Arrays::stream).sum());
            }

            @Override
            public double validationLoss(List<Example> examples) {
                return Double.NaN;
            }
        };
    }

    static double meanLoss(Model model, SequenceClassifier c, List<Example> data) {
        try (NDManager m = model.getNDManager().newSubManager()) {
            long[][] ids = data.stream().map(Example::ids).toArray(long[][]::new);
            long[][] mask = data.stream().map(Example::mask).toArray(long[][]::new);
            float[] labels = new float[data.size()];
            for (int i = 0; i < labels.length; i++) {
                labels[i] = data.get(i).label();
            }
            NDArray logits = classify(c, m, ids, mask, false);
            return ClassificationLoss.PLAIN.evaluate(logits, m.create(labels)).getFloat();
        }
    }

    @Test
    void aPrefixClassifierLearnsKeepsTheBaseRestoresAndResumesExactly(@TempDir Path dir)
            throws Exception {
        FineTuningMethod.Prefix prefix = new FineTuningMethod.Prefix(N, 16);
        TrainingSettings settings = new TrainingSettings(3, 4, 1e-2f, 0.01f, 0.1f, 1f, 8, 42);
        List<TrainingListener.StepReport> full = new ArrayList<>();
        float[] tuned;
        Path state = dir.resolve("state");
        try (Model model = Model.newInstance("bert", runtime.device(), EngineRuntime.ENGINE)) {
            SequenceClassifier c = tiny(model, BertConfig.BERT, 70);
            Map<String, float[]> frozen = new LinkedHashMap<>();
            c.encoder()
                    .namedParameters()
                    .forEach((n, p) -> frozen.put(n, p.getArray().toFloatArray()));
            Engine.getInstance().setRandomSeed(3);
            prefix.apply(c, model.getNDManager());
            double before = meanLoss(model, c, data());
            TrainingLoop.run(
                    model,
                    task(c),
                    data(),
                    settings,
                    Validation.none(),
                    full::add,
                    new Checkpointing(dir.resolve("ckpt"), 4, Optional.empty(), (d, st) -> {}));
            double after = meanLoss(model, c, data());
            System.out.printf(
                    "prefix BERT tiny: loss %.4f -> %.4f after %d steps%n",
                    before, after, full.size());
            assertThat(after).isLessThan(before * 0.9);
            frozen.forEach(
                    (n, v) ->
                            assertThat(c.namedParameters().get(n).getArray().toFloatArray())
                                    .as(n)
                                    .isEqualTo(v));
            try (NDManager m = model.getNDManager().newSubManager()) {
                tuned = classify(c, m, IDS, MASK, false).toFloatArray();
            }
            MethodState.write(c, prefix, state);
        }
        try (Model model = Model.newInstance("bert", runtime.device(), EngineRuntime.ENGINE)) {
            SequenceClassifier c = tiny(model, BertConfig.BERT, 70);
            assertThat(MethodState.restore(c, state, model.getNDManager())).isEqualTo(prefix);
            try (NDManager m = model.getNDManager().newSubManager()) {
                assertThat(classify(c, m, IDS, MASK, false).toFloatArray()).isEqualTo(tuned);
            }
        }
        List<TrainingListener.StepReport> resumed = new ArrayList<>();
        try (Model model = Model.newInstance("bert", runtime.device(), EngineRuntime.ENGINE)) {
            SequenceClassifier c = tiny(model, BertConfig.BERT, 70);
            Engine.getInstance().setRandomSeed(99);
            prefix.apply(c, model.getNDManager());
            TrainingLoop.run(
                    model,
                    task(c),
                    data(),
                    settings,
                    Validation.none(),
                    resumed::add,
                    new Checkpointing(
                            dir.resolve("ckpt2"),
                            0,
                            Optional.of(dir.resolve("ckpt").resolve("step-00000008")),
                            (d, st) -> {}));
        }
        assertThat(full).hasSize(12);
        assertThat(resumed).hasSize(4);
        for (int i = 0; i < 4; i++) {
            assertThat(resumed.get(i).step()).isEqualTo(full.get(8 + i).step());
            assertThat(resumed.get(i).loss()).isCloseTo(full.get(8 + i).loss(), within(1e-5));
        }
    }

    @Test
    void thePeftExportWithItsHeadReadByAnIndependentReaderReproducesTheTunedLogits(
            @TempDir Path dir) throws Exception {
        FineTuningMethod.Prefix prefix = new FineTuningMethod.Prefix(N, 16);
        Path export = dir.resolve("peft");
        Path base;
        float[] tuned;
        try (Model model = Model.newInstance("bert", runtime.device(), EngineRuntime.ENGINE)) {
            SequenceClassifier c = tiny(model, BertConfig.BERT, 80);
            base = writeBase(c, dir.resolve("base"));
            Engine.getInstance().setRandomSeed(4);
            prefix.apply(c, model.getNDManager());
            TrainingLoop.run(
                    model,
                    task(c),
                    data(),
                    new TrainingSettings(1, 4, 1e-2f, 0f, 0f, 1f, 8, 42),
                    Validation.none(),
                    r -> {},
                    Checkpointing.none());
            try (NDManager m = model.getNDManager().newSubManager()) {
                tuned = classify(c, m, IDS, MASK, false).toFloatArray();
            }
            io.tuneline.engine.export.PeftPrefixTuning.write(c, prefix, "tiny-bert", export);
        }
        PrefixReference.Result r =
                PrefixReference.run(
                                dir,
                                List.of(
                                        PrefixReference.newCase(
                                                "bert",
                                                base,
                                                PrefixReference.peftMethod(export),
                                                IDS,
                                                MASK,
                                                LABELS,
                                                false)))
                        .get(0);
        double d = PrefixReference.compareExport("bert export", tuned, r, 2, null);
        System.out.printf("prefix BERT tiny: PEFT export vs engine max |logit| diff %.2e%n", d);
    }

    static long[] flat(long[][] rows) {
        return Arrays.stream(rows).flatMapToLong(Arrays::stream).toArray();
    }
}
