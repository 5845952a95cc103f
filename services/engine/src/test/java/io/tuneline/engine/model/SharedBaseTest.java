package io.tuneline.engine.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.Model;
import ai.djl.nn.Parameter;
import io.tuneline.engine.export.PeftAdapter;
import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.model.gpt2.Gpt2Checkpoint;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.nn.NativeCopy;
import io.tuneline.engine.runtime.EngineRuntime;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two LoRA versions of one GPT-2 base, each built on the base's arrays with its PEFT adapter beside
 * them, answer as the same versions loaded whole from their merged directories, and hold no copy of
 * the base.
 */
class SharedBaseTest {
    private static final Gpt2Config CONFIG = Gpt2Config.of(60, 24, 32, 2, 4);
    private static final long[] PROMPT = {3, 17, 42, 5, 11, 29};

    @TempDir Path tmp;

    @Test
    void twoLoraVersionsOnOneBaseAnswerAsTheirMergedCopiesAndShareItsArrays() throws Exception {
        EngineRuntime runtime = EngineRuntime.start(0);
        Path baseDir = tmp.resolve("base");
        Gpt2Checkpoint.saveRandom(CONFIG, 11, baseDir);
        Version a = tune(runtime, baseDir, "a", List.of("c_attn"), 21);
        Version b = tune(runtime, baseDir, "b", List.of("c_attn", "c_proj", "c_fc"), 22);

        try (Model base = CausalLmCheckpoint.load(baseDir, runtime.device());
                Model wholeA = CausalLmCheckpoint.load(a.merged, runtime.device());
                Model wholeB = CausalLmCheckpoint.load(b.merged, runtime.device())) {
            CausalLanguageModel baseLm = (CausalLanguageModel) base.getBlock();
            Model onA = CausalLmCheckpoint.loadOnBase(a.merged, baseLm, runtime.device());
            PeftAdapter.restore(
                    (CausalLanguageModel) onA.getBlock(), a.adapter, onA.getNDManager());
            try (Model onB = CausalLmCheckpoint.loadOnBase(b.merged, baseLm, runtime.device())) {
                PeftAdapter.restore(
                        (CausalLanguageModel) onB.getBlock(), b.adapter, onB.getNDManager());

                assertSameAnswers(onA, wholeA);
                assertSameAnswers(onB, wholeB);
                // The adapters differ, so equal answers are not the base's answers.
                assertThat(greedy(onA)).isNotEqualTo(greedy(onB));

                // The load-time check serving runs: at rounding level against its own merged
                // copy, far off against another version's.
                TunableModel sharedA = (TunableModel) onA.getBlock();
                assertThat(
                                SharedBase.largestDifference(
                                                (TunableModel) wholeA.getBlock(), sharedA)
                                        .value())
                        .isLessThanOrEqualTo(1e-5);
                assertThat(
                                SharedBase.largestDifference(
                                                (TunableModel) wholeB.getBlock(), sharedA)
                                        .value())
                        .isGreaterThan(1e-2);

                // Every base parameter of both versions is the base's own array, not a copy.
                int baseParameters = base.getBlock().getParameters().size();
                assertThat(SharedBase.sharedArrays(baseLm, onA.getBlock())).hasSize(baseParameters);
                assertThat(SharedBase.sharedArrays(baseLm, onB.getBlock())).hasSize(baseParameters);
                Parameter wte = baseLm.namedParameters().get("transformer.wte.weight");
                assertThat(
                                ((TunableModel) onA.getBlock())
                                        .namedParameters()
                                        .get("transformer.wte.weight")
                                        .getArray())
                        .isSameAs(wte.getArray());

                // Unloading one version leaves the base, and so the other version, intact.
                onA.close();
                assertThat(wte.getArray().isReleased()).isFalse();
                assertSameAnswers(onB, wholeB);
            }
        }
    }

    @Test
    void aDirectoryOfAnotherConfigurationIsRefused() throws Exception {
        EngineRuntime runtime = EngineRuntime.start(0);
        Path baseDir = tmp.resolve("base");
        Gpt2Checkpoint.saveRandom(CONFIG, 11, baseDir);
        Path other = tmp.resolve("other");
        Gpt2Checkpoint.saveRandom(Gpt2Config.of(60, 24, 32, 3, 4), 12, other);
        try (Model base = CausalLmCheckpoint.load(baseDir, runtime.device())) {
            assertThatThrownBy(
                            () ->
                                    CausalLmCheckpoint.loadOnBase(
                                            other,
                                            (CausalLanguageModel) base.getBlock(),
                                            runtime.device()))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("is not the base's configuration");
        }
    }

    private record Version(Path merged, Path adapter) {}

    /** A LoRA run's outputs: the merged directory and the PEFT adapter, as the worker writes. */
    private Version tune(
            EngineRuntime runtime, Path baseDir, String name, List<String> targets, long seed)
            throws Exception {
        Path merged = tmp.resolve(name);
        Path adapter = tmp.resolve(name + "-adapter");
        try (Model model = CausalLmCheckpoint.load(baseDir, runtime.device())) {
            CausalLanguageModel lm = (CausalLanguageModel) model.getBlock();
            FineTuningMethod.Lora lora = new FineTuningMethod.Lora(4, 8f, 0f, targets);
            lora.apply(lm, model.getNDManager());
            Random random = new Random(seed);
            for (Parameter p : lm.deltaParameters().values()) {
                float[] v = new float[(int) p.getArray().size()];
                for (int i = 0; i < v.length; i++) {
                    v[i] = (float) (random.nextGaussian() * 0.3);
                }
                NativeCopy.copyInto(p.getArray(), v);
            }
            CausalLmCheckpoint.save(lm, merged, Dtype.F32);
            assertThat(PeftAdapter.write(lm, lora, baseDir.toString(), adapter)).isTrue();
        }
        assertThat(Files.isRegularFile(merged.resolve("model.safetensors"))).isTrue();
        return new Version(merged, adapter);
    }

    /** The next-token logits at every step of a greedy answer agree within 1e-5. */
    private static void assertSameAnswers(Model shared, Model whole) {
        List<float[]> s = new ArrayList<>();
        List<float[]> w = new ArrayList<>();
        long[] fromShared = run(shared, s);
        long[] fromWhole = run(whole, w);
        assertThat(fromShared).isEqualTo(fromWhole);
        for (int step = 0; step < s.size(); step++) {
            float[] x = s.get(step);
            float[] y = w.get(step);
            for (int v = 0; v < x.length; v++) {
                assertThat(Math.abs(x[v] - y[v]))
                        .as("step %d, token %d", step, v)
                        .isLessThanOrEqualTo(1e-5f);
            }
        }
    }

    private static long[] greedy(Model model) {
        return run(model, new ArrayList<>());
    }

    private static long[] run(Model model, List<float[]> logits) {
        return CausalLmInference.of(model)
                .generate(
                        PROMPT,
                        8,
                        l -> {
                            logits.add(l.clone());
                            return CausalLmInference.argmax(l);
                        },
                        t -> true);
    }
}
