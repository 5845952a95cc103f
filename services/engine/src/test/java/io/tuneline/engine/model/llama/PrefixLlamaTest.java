package io.tuneline.engine.model.llama;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.method.PrefixReference;
import io.tuneline.engine.model.KvPrefix;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmLoss;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.LmExample;
import io.tuneline.engine.train.TrainingListener;
import io.tuneline.engine.train.TrainingSettings;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Prefix tuning on the Llama family, grouped-query attention included: prefixes sized from
 * num_key_value_heads x head_dim (PEFT's token_dim for GQA), unrotated prefix keys, real tokens at
 * positions N.., against {@code bench/prefix_reference.py}; generation with the cache (pre-filled
 * with the prefix) equals generation without.
 */
class PrefixLlamaTest {
    private static final int N = 3;
    private static final long[][] IDS = {
        {1, 17, 42, 8, 8, 3, 59, 0, 25, 11}, {1, 7, 8, 9, 40, 6, 0, 0, 0, 0}
    };
    private static final long[][] MASK = {
        {1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 0, 0, 0, 0}
    };
    private static final long[][] LABELS = {
        {1, 17, 42, 8, 8, 3, 59, 0, 25, 11}, {-100, -100, 8, 9, 40, 6, -100, -100, -100, -100}
    };

    private static EngineRuntime runtime;

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    /** PEFT's count from the config: token_dim = head_dim * num_key_value_heads. */
    static long peftTrainable(int n, int layers, int tokenDim, int projection) {
        long out = (long) layers * 2 * tokenDim;
        if (projection == 0) {
            return n * out;
        }
        return (long) n * tokenDim
                + (long) tokenDim * projection
                + projection
                + (long) projection * out
                + out;
    }

    @Test
    void everyVariantMatchesThePlainPyTorchReferenceWithGqaSlidingWindowAndQkNorm(@TempDir Path dir)
            throws Exception {
        // variant, projection, token_dim (kv heads x head_dim)
        Object[][] variants = {
            {"llama-gqa", 0, 2 * 8},
            {"llama-gqa", 20, 2 * 8},
            {"mistral-sliding", 0, 2 * 8},
            {"qwen3-qknorm", 12, 2 * 16},
            {"llama-tied", 0, 4 * 8}
        };
        List<ObjectNode> cases = new ArrayList<>();
        List<PrefixReference.EngineRun> runs = new ArrayList<>();
        long seed = 40;
        for (Object[] v : variants) {
            String variant = (String) v[0];
            int projection = (int) v[1];
            String name = variant + "-" + projection;
            Path base = TinyLlamas.write(variant, dir.resolve(name), seed++);
            try (Model model =
                    LlamaCheckpoint.load(base, runtime.device(), LlamaConfig::withoutDropout)) {
                LlamaLmModel lm = (LlamaLmModel) model.getBlock();
                long baseTotal = ParameterCounts.of(lm).total();
                KvPrefix.Sizes sizes = lm.kvPrefixSizes();
                assertThat(sizes.tokenDim()).as(name).isEqualTo((int) v[2]);
                Engine.getInstance().setRandomSeed(7);
                FineTuningMethod.Prefix prefix = new FineTuningMethod.Prefix(N, projection);
                ParameterCounts counts = prefix.apply(lm, model.getNDManager());
                assertThat(counts.trainable())
                        .as(name)
                        .isEqualTo(peftTrainable(N, 2, (int) v[2], projection));
                assertThat(counts.total()).isEqualTo(baseTotal + counts.trainable());
                System.out.printf(
                        "prefix %s, projection %d: token_dim %d, trainable %d of %d%n",
                        variant, projection, sizes.tokenDim(), counts.trainable(), counts.total());
                Path state = dir.resolve(name + "-state");
                MethodState.write(lm, prefix, state);
                cases.add(
                        PrefixReference.newCase(
                                "llama",
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
                                            lm.logits(
                                                    new ParameterStore(m, false),
                                                    m.create(flat(IDS), new Shape(2, 10)),
                                                    m.create(flat(MASK), new Shape(2, 10)),
                                                    null,
                                                    true);
                                    return new NDArray[] {
                                        logits,
                                        CausalLmLoss.mean(
                                                logits, m.create(flat(LABELS), new Shape(2, 10)))
                                    };
                                }));
                // The cache pre-filled with the prefix gives the tokens a full rerun gives.
                long[] prompt = {1, 17, 42, 8};
                assertThat(LlamaInference.greedy(lm, model.getNDManager(), prompt, 6, true))
                        .as(name)
                        .isEqualTo(
                                LlamaInference.greedy(lm, model.getNDManager(), prompt, 6, false));
            }
        }
        List<PrefixReference.Result> ref = PrefixReference.run(dir, cases);
        for (int i = 0; i < variants.length; i++) {
            String what = variants[i][0] + " projection " + variants[i][1];
            double[] d = PrefixReference.compare(what, runs.get(i), ref.get(i), 61, MASK);
            System.out.printf(
                    "prefix %s vs reference: max |logit| diff %.2e, max |grad| diff %.2e%n",
                    what, d[0], d[1]);
        }
    }

    @Test
    void aGqaPrefixRunLearnsKeepsTheBaseAndRestoresFromMethodState(@TempDir Path dir)
            throws Exception {
        Path base = TinyLlamas.write("llama-gqa", dir.resolve("base"), 77);
        FineTuningMethod.Prefix prefix = new FineTuningMethod.Prefix(4, 16);
        List<LmExample> data = new ArrayList<>();
        for (int copy = 0; copy < 2; copy++) {
            data.add(LmExample.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12));
            data.add(LmExample.of(1, 20, 22, 24, 26, 28, 30, 32, 34));
            data.add(LmExample.of(1, 40, 41, 40, 41, 40, 41, 40, 41));
        }
        long[] probe = {1, 2, 3, 4, 5};
        float[] tuned;
        long[] generated;
        Path state = dir.resolve("state");
        try (Model model =
                LlamaCheckpoint.load(base, runtime.device(), LlamaConfig::withoutDropout)) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            Map<String, float[]> frozen = new LinkedHashMap<>();
            lm.namedParameters().forEach((n, p) -> frozen.put(n, p.getArray().toFloatArray()));
            Engine.getInstance().setRandomSeed(3);
            prefix.apply(lm, model.getNDManager());
            double before = meanLoss(model, lm, data);
            List<TrainingListener.StepReport> steps = new ArrayList<>();
            new CausalLmTrainer()
                    .train(
                            model,
                            lm,
                            data,
                            new TrainingSettings(4, 3, 2e-2f, 0.01f, 0.1f, 1f, 32, 42),
                            steps::add);
            double after = meanLoss(model, lm, data);
            System.out.printf(
                    "prefix llama-gqa: loss %.4f -> %.4f after %d steps%n",
                    before, after, steps.size());
            assertThat(after).isLessThan(before - 0.3);
            frozen.forEach(
                    (n, v) ->
                            assertThat(lm.namedParameters().get(n).getArray().toFloatArray())
                                    .as(n)
                                    .isEqualTo(v));
            tuned = logitsOf(model, lm, probe);
            generated = LlamaInference.greedy(lm, model.getNDManager(), probe, 5, true);
            MethodState.write(lm, prefix, state);
        }
        try (Model model = LlamaCheckpoint.load(base, runtime.device())) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            assertThat(MethodState.restore(lm, state, model.getNDManager())).isEqualTo(prefix);
            assertThat(logitsOf(model, lm, probe)).isEqualTo(tuned);
            assertThat(LlamaInference.greedy(lm, model.getNDManager(), probe, 5, true))
                    .isEqualTo(generated);
        }
    }

    @Test
    void theGqaPeftExportReadByAnIndependentReaderReproducesTheTunedLogits(@TempDir Path dir)
            throws Exception {
        Path base = TinyLlamas.write("llama-gqa", dir.resolve("base"), 78);
        FineTuningMethod.Prefix prefix = new FineTuningMethod.Prefix(N, 20);
        float[] tuned;
        Path export = dir.resolve("peft");
        try (Model model =
                LlamaCheckpoint.load(base, runtime.device(), LlamaConfig::withoutDropout)) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            Engine.getInstance().setRandomSeed(8);
            prefix.apply(lm, model.getNDManager());
            try (NDManager m = model.getNDManager().newSubManager()) {
                tuned =
                        lm.logits(
                                        new ParameterStore(m, false),
                                        m.create(flat(IDS), new Shape(2, 10)),
                                        m.create(flat(MASK), new Shape(2, 10)),
                                        null,
                                        false)
                                .toFloatArray();
            }
            io.tuneline.engine.export.PeftPrefixTuning.write(lm, prefix, "tiny-llama-gqa", export);
        }
        String config = java.nio.file.Files.readString(export.resolve("adapter_config.json"));
        // GQA: 2 key/value heads of 8 -> token_dim 16, as PEFT sets it.
        assertThat(config)
                .contains("\"token_dim\" : 16")
                .contains("\"num_attention_heads\" : 2")
                .contains("\"task_type\" : \"CAUSAL_LM\"");
        PrefixReference.Result r =
                PrefixReference.run(
                                dir,
                                List.of(
                                        PrefixReference.newCase(
                                                "llama",
                                                base,
                                                PrefixReference.peftMethod(export),
                                                IDS,
                                                MASK,
                                                LABELS,
                                                false)))
                        .get(0);
        double d = PrefixReference.compareExport("llama-gqa export", tuned, r, 61, MASK);
        System.out.printf("prefix llama-gqa: PEFT export vs engine max |logit| diff %.2e%n", d);
    }

    private static double meanLoss(Model model, LlamaLmModel lm, List<LmExample> data) {
        LlamaInference inference = new LlamaInference(model);
        double sum = 0;
        long count = 0;
        for (LmExample e : data) {
            var s = inference.tokenStats(e);
            sum -= s.logLikelihood();
            count += s.tokens();
        }
        return sum / count;
    }

    private static float[] logitsOf(Model model, LlamaLmModel lm, long[] ids) {
        try (NDManager m = model.getNDManager().newSubManager()) {
            return lm.logits(
                            new ParameterStore(m, false),
                            m.create(ids, new Shape(1, ids.length)),
                            null,
                            null,
                            false)
                    .toFloatArray();
        }
    }

    static long[] flat(long[][] rows) {
        return Arrays.stream(rows).flatMapToLong(Arrays::stream).toArray();
    }
}
