package io.tuneline.engine.train;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.export.AdapterHubAdapter;
import io.tuneline.engine.export.ClassifierWeights;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.method.AdapterReference;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.FineTuningMethod.Adapter.Placement;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.runtime.EngineRuntime;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bottleneck adapters on the BERT-family classifier (post-LN: the adapters library's {@code
 * BertSelfOutput} / {@code BertOutput} pass their LayerNorm to the adapter, which Pfeiffer applies
 * before the adapter too), on a tiny random BERT: the library's parameter count and names, the
 * untrained model equal to the base bit for bit, forward and gradients (adapters and head) equal to
 * the plain-PyTorch reference, the export (adapter and head) read back by the reference, training
 * that moves only the adapters and the head, the method state restored and an exact resume.
 */
class AdapterBertTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final BertConfig CONFIG =
            new BertConfig(60, 32, 2, 4, 64, 16, 2, 1e-12f).withoutDropout();
    private static final long[][] IDS = {{2, 5, 7, 9, 11, 3, 0, 0}, {2, 14, 15, 16, 17, 18, 19, 3}};
    private static final long[][] MASK = {{1, 1, 1, 1, 1, 1, 0, 0}, {1, 1, 1, 1, 1, 1, 1, 1}};
    private static EngineRuntime runtime;

    static final List<FineTuningMethod.Adapter> METHODS =
            List.of(
                    new FineTuningMethod.Adapter(Placement.PFEIFFER, 0, 4, null, 0f),
                    new FineTuningMethod.Adapter(Placement.HOULSBY, 6, 16, "", 0f));

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    private static long[] flat(long[][] rows) {
        return java.util.Arrays.stream(rows).flatMapToLong(java.util.Arrays::stream).toArray();
    }

    private static SequenceClassifier newClassifier(Model model) {
        SequenceClassifier c = new SequenceClassifier(new BertEncoder(CONFIG), 2, 0f);
        c.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(1, 8), new Shape(1, 8));
        model.setBlock(c);
        return c;
    }

    /** A random base (weights N(0, 0.2), norms 1 and 0) as a model directory. */
    private static Path writeBase(Path dir) throws Exception {
        try (Model model = Model.newInstance("base", runtime.device(), EngineRuntime.ENGINE)) {
            SequenceClassifier c = newClassifier(model);
            Map<String, Parameter> random = new LinkedHashMap<>();
            c.namedParameters()
                    .forEach(
                            (n, p) -> {
                                if (!n.contains("LayerNorm")) {
                                    random.put(n, p);
                                }
                            });
            AdapterReference.randomize(random, 51, 0.2);
            Files.createDirectories(dir);
            ClassifierWeights.writeMerged(c, dir.resolve("model.safetensors"));
            Files.writeString(dir.resolve("config.json"), JSON.writeValueAsString(CONFIG.toJson()));
        }
        return dir;
    }

    private static SequenceClassifier load(Model model, Path dir) {
        SequenceClassifier c = newClassifier(model);
        ClassifierWeights.load(c, dir.resolve("model.safetensors"));
        return c;
    }

    private static float[] logits(SequenceClassifier c, Model model) {
        try (NDManager m = model.getNDManager().newSubManager()) {
            return c.forward(
                            new ParameterStore(m, false),
                            new NDList(
                                    m.create(flat(IDS), new Shape(2, 8)),
                                    m.create(flat(MASK), new Shape(2, 8))),
                            false)
                    .singletonOrThrow()
                    .toFloatArray();
        }
    }

    @Test
    void adaptersCountAsTheLibraryLeaveTheBaseExactAndMatchTheReferenceAndTheExport(
            @TempDir Path dir) throws Exception {
        Path base = writeBase(dir.resolve("base"));
        int hidden = CONFIG.hiddenSize();
        int layers = CONFIG.layers();
        List<ObjectNode> cases = new ArrayList<>();
        List<AdapterReference.Pass> passes = new ArrayList<>();
        int k = 0;
        for (FineTuningMethod.Adapter adapter : METHODS) {
            String what = "BERT " + adapter.placement().name();
            try (Model model = Model.newInstance("bert", runtime.device(), EngineRuntime.ENGINE)) {
                SequenceClassifier c = load(model, base);
                float[] before = logits(c, model);
                long baseTotal = ParameterCounts.of(c).total();

                ParameterCounts counts = adapter.apply(c, model.getNDManager());
                int m = adapter.bottleneck(hidden);
                int perLayer = adapter.placement() == Placement.HOULSBY ? 2 : 1;
                long adapters = (long) layers * perLayer * AdapterReference.perAdapter(hidden, m);
                long head = 2L * hidden + 2;
                assertThat(counts.trainable()).as(what).isEqualTo(adapters + head);
                assertThat(counts.total()).as(what).isEqualTo(baseTotal + adapters);
                System.out.printf(
                        "Adapter %s on a tiny BERT: m %d, trainable %d (adapters %d + head %d) of"
                                + " %d%n",
                        what, m, counts.trainable(), adapters, head, counts.total());
                Map<String, Parameter> added = c.methodParameters();
                assertThat(added)
                        .hasSize(layers * perLayer * 4)
                        .containsKeys(
                                "encoder.layer.0.output.adapters.tuneline.adapter_down.0.weight",
                                "encoder.layer.1.output.adapters.tuneline.adapter_up.bias");
                assertThat(
                                added.keySet().stream()
                                        .anyMatch(n -> n.contains("attention.output.adapters")))
                        .isEqualTo(adapter.placement() == Placement.HOULSBY);
                c.namedParameters()
                        .forEach(
                                (n, p) ->
                                        assertThat(p.requiresGradient())
                                                .as(n)
                                                .isEqualTo(
                                                        added.containsKey(n)
                                                                || n.startsWith("classifier.")));
                assertThat(
                                c.decays(
                                        "encoder.layer.0.output.adapters.tuneline.adapter_down.0.weight"))
                        .isTrue();
                assertThat(c.decays("encoder.layer.0.output.adapters.tuneline.adapter_down.0.bias"))
                        .isFalse();
                assertThat(logits(c, model)).as("%s untrained = base", what).isEqualTo(before);

                AdapterReference.randomize(added, 7 + k, 0.3);
                Map<String, Parameter> trainable = new LinkedHashMap<>(added);
                trainable.put("classifier.weight", c.namedParameters().get("classifier.weight"));
                trainable.put("classifier.bias", c.namedParameters().get("classifier.bias"));
                float[] probe = AdapterReference.probe(2 * 2, 5 + k);
                AdapterReference.Pass pass =
                        AdapterReference.forwardBackward(
                                model,
                                trainable,
                                (ps, mg) ->
                                        c.forward(
                                                        ps,
                                                        new NDList(
                                                                mg.create(
                                                                        flat(IDS), new Shape(2, 8)),
                                                                mg.create(
                                                                        flat(MASK),
                                                                        new Shape(2, 8))),
                                                        true)
                                                .singletonOrThrow(),
                                probe);
                assertThat(AdapterReference.maxDiff(pass.output(), before, what))
                        .as("%s: random adapters change the logits", what)
                        .isGreaterThan(0.05);
                passes.add(pass);
                Path trained = dir.resolve("trained-" + k + ".safetensors");
                AdapterReference.writeTensors(trainable, trained);
                cases.add(
                        AdapterReference.trainedCase(
                                "bert",
                                base,
                                trained,
                                adapter,
                                IDS,
                                MASK,
                                probe,
                                dir.resolve("ref-" + k + ".json")));

                Path export = dir.resolve("export-" + k);
                AdapterHubAdapter.write(c, adapter, "tiny-bert", List.of("neg", "pos"), export);
                JsonNode config = JSON.readTree(export.resolve("adapter_config.json").toFile());
                assertThat(config.path("model_type").asText()).isEqualTo("bert");
                assertThat(config.path("model_class").asText()).isEqualTo("BertAdapterModel");
                assertThat(config.path("name").asText()).isEqualTo("tuneline");
                assertThat(config.path("version").asText()).isEqualTo("adapters.1.2.0");
                assertThat(config.path("config").path("original_ln_before").asBoolean())
                        .isEqualTo(adapter.placement() == Placement.PFEIFFER);
                assertThat(config.path("config").path("non_linearity").asText())
                        .isEqualTo(adapter.placement() == Placement.PFEIFFER ? "relu" : "swish");
                JsonNode headConfig = JSON.readTree(export.resolve("head_config.json").toFile());
                assertThat(headConfig.path("config").path("head_type").asText())
                        .isEqualTo("classification");
                assertThat(headConfig.path("config").path("label2id").path("pos").asInt())
                        .isEqualTo(1);
                try (SafetensorsFile f =
                        SafetensorsFile.open(export.resolve("adapter.safetensors"))) {
                    assertThat(f.names())
                            .containsExactlyInAnyOrderElementsOf(
                                    added.keySet().stream()
                                            .map(n -> "bert." + n)
                                            .collect(Collectors.toList()));
                }
                try (SafetensorsFile f =
                        SafetensorsFile.open(export.resolve("model_head.safetensors"))) {
                    assertThat(f.names())
                            .containsExactlyInAnyOrder(
                                    "heads.tuneline.1.weight", "heads.tuneline.1.bias");
                }
                cases.add(
                        AdapterReference.exportCase(
                                "bert",
                                base,
                                export,
                                IDS,
                                MASK,
                                dir.resolve("export-" + k + ".json")));
            }
            k++;
        }
        List<JsonNode> ref = AdapterReference.run(dir, cases);
        for (int i = 0; i < METHODS.size(); i++) {
            String what = "BERT " + METHODS.get(i).placement();
            double[] d = AdapterReference.compare(passes.get(i), ref.get(2 * i), what);
            double export =
                    AdapterReference.maxDiff(
                            passes.get(i).output(),
                            AdapterReference.flatten(ref.get(2 * i + 1).path("output")),
                            what + " export");
            System.out.printf(
                    "%s vs reference: logits %.2e, gradients %.2e; export read by the reference:"
                            + " %.2e%n",
                    what, d[0], d[1], export);
            assertThat(export).as(what + " export").isLessThanOrEqualTo(AdapterReference.TOLERANCE);
        }
    }

    /** Eight labelled sequences: the label is whether token 30 occurs. */
    private static final long[][] DATA = {
        {2, 30, 5, 6, 3, 0, 0, 0}, {2, 5, 6, 7, 3, 0, 0, 0}, {2, 8, 30, 9, 10, 3, 0, 0},
        {2, 8, 9, 10, 11, 3, 0, 0}, {2, 12, 13, 30, 3, 0, 0, 0}, {2, 12, 13, 14, 3, 0, 0, 0},
        {2, 30, 30, 15, 16, 17, 3, 0}, {2, 15, 16, 17, 18, 3, 0, 0}
    };

    private static TrainingLoop.Task<Integer> task(SequenceClassifier c) {
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
            public TrainingLoop.BatchLoss loss(NDManager m, List<Integer> batch) {
                long[] ids = new long[batch.size() * 8];
                long[] mask = new long[ids.length];
                float[] labels = new float[batch.size()];
                for (int i = 0; i < batch.size(); i++) {
                    long[] row = DATA[batch.get(i)];
                    for (int j = 0; j < 8; j++) {
                        ids[i * 8 + j] = row[j];
                        mask[i * 8 + j] = row[j] == 0 ? 0 : 1;
                    }
                    labels[i] = batch.get(i) % 2 == 0 ? 1 : 0;
                }
                Shape s = new Shape(batch.size(), 8);
                NDArray logits =
                        c.forward(
                                        new ParameterStore(m, false),
                                        new NDList(m.create(ids, s), m.create(mask, s)),
                                        true)
                                .singletonOrThrow();
                NDArray loss = ClassificationLoss.PLAIN.evaluate(logits, m.create(labels));
                return new TrainingLoop.BatchLoss(loss, ids.length);
            }

            @Override
            public double validationLoss(List<Integer> examples) {
                return 0;
            }
        };
    }

    private static double meanLoss(SequenceClassifier c, Model model) {
        try (NDManager m = model.getNDManager().newSubManager()) {
            return task(c).loss(m, IntStream.range(0, DATA.length).boxed().toList())
                    .loss()
                    .getFloat();
        }
    }

    /**
     * Pfeiffer with adapter dropout 0.1: loss falls, every base weight stays bit-identical, the
     * method state (beside the merged base + head) rebuilds the tuned model exactly, and a run
     * resumed at step 4 continues the uninterrupted one (dropout masks replayed).
     */
    @Test
    void trainingMovesOnlyTheAdaptersAndTheHeadAndTheStateRestoresAndResumes(@TempDir Path dir)
            throws Exception {
        Path base = writeBase(dir.resolve("base"));
        FineTuningMethod.Adapter adapter =
                new FineTuningMethod.Adapter(Placement.PFEIFFER, 8, 16, null, 0.1f);
        TrainingSettings settings = new TrainingSettings(3, 4, 2e-2f, 0.01f, 0.1f, 1f, 16, 42);
        List<Integer> examples = IntStream.range(0, DATA.length).boxed().toList();
        List<TrainingListener.StepReport> full = new ArrayList<>();
        float[] tuned;
        try (Model model = Model.newInstance("bert", runtime.device(), EngineRuntime.ENGINE)) {
            SequenceClassifier c = load(model, base);
            double lossBefore = meanLoss(c, model);
            ai.djl.engine.Engine.getInstance().setRandomSeed(3);
            adapter.apply(c, model.getNDManager());
            Map<String, Parameter> frozen = new LinkedHashMap<>(c.baseParameters());
            frozen.keySet().removeIf(n -> n.startsWith("classifier."));
            Map<String, float[]> baseBefore = AdapterReference.snapshot(frozen);
            Map<String, float[]> adaptersBefore = AdapterReference.snapshot(c.methodParameters());
            TrainingLoop.run(
                    model,
                    task(c),
                    examples,
                    settings,
                    Validation.none(),
                    full::add,
                    ResumeRuns.every(dir.resolve("ckpt"), 2));
            double lossAfter = meanLoss(c, model);
            System.out.printf(
                    "Pfeiffer on a tiny BERT: loss %.4f -> %.4f in %d steps%n",
                    lossBefore, lossAfter, full.size());
            assertThat(lossAfter).isLessThan(lossBefore - 0.1);
            AdapterReference.snapshot(frozen)
                    .forEach((n, v) -> assertThat(v).as(n).isEqualTo(baseBefore.get(n)));
            AdapterReference.snapshot(c.methodParameters())
                    .forEach((n, v) -> assertThat(v).as(n).isNotEqualTo(adaptersBefore.get(n)));
            tuned = logits(c, model);
            Path tunedDir = dir.resolve("tuned");
            Files.createDirectories(tunedDir);
            ClassifierWeights.writeMerged(c, tunedDir.resolve("model.safetensors"));
            MethodState.write(c, adapter, tunedDir);
            try (SafetensorsFile f = SafetensorsFile.open(tunedDir.resolve("model.safetensors"))) {
                assertThat(f.names()).noneMatch(n -> n.contains(".adapters."));
            }
        }
        try (Model model = Model.newInstance("bert", runtime.device(), EngineRuntime.ENGINE)) {
            SequenceClassifier c = load(model, dir.resolve("tuned"));
            FineTuningMethod restored =
                    MethodState.restore(c, dir.resolve("tuned"), model.getNDManager());
            assertThat(restored).isEqualTo(adapter);
            assertThat(logits(c, model)).as("restored = tuned").isEqualTo(tuned);
        }
        List<TrainingListener.StepReport> resumed = new ArrayList<>();
        try (Model model = Model.newInstance("bert", runtime.device(), EngineRuntime.ENGINE)) {
            SequenceClassifier c = load(model, base);
            ai.djl.engine.Engine.getInstance().setRandomSeed(99);
            adapter.apply(c, model.getNDManager());
            TrainingLoop.run(
                    model,
                    task(c),
                    examples,
                    settings,
                    Validation.none(),
                    resumed::add,
                    ResumeRuns.resumeFrom(dir.resolve("ckpt"), 4, dir.resolve("ckpt2")));
        }
        ResumeRuns.assertContinues(full, resumed, 6, 4);
    }
}
