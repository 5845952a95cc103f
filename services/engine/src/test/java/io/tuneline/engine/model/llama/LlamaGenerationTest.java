package io.tuneline.engine.model.llama;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import io.tuneline.engine.runtime.EngineRuntime;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Generation with the key/value cache gives exactly what generation without it gives. */
class LlamaGenerationTest {
    private static EngineRuntime runtime;

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    @Test
    void greedyGenerationWithTheCacheGivesTheTokensOfGenerationWithout(@TempDir Path dir)
            throws Exception {
        long[] prompt = {1, 17, 42, 8, 3};
        // GQA with biases; Mistral's window (4) shorter than prompt + generated tokens; Qwen2 with
        // a sliding second layer; Qwen3's q/k norms; yarn-scaled RoPE.
        for (String variant :
                new String[] {
                    "llama-gqa", "mistral-sliding", "qwen2-bias", "qwen3-qknorm", "rope-yarn"
                }) {
            Path checkpoint = TinyLlamas.write(variant, dir.resolve(variant), 6);
            try (Model model = LlamaCheckpoint.load(checkpoint, runtime.device())) {
                LlamaLmModel lm = (LlamaLmModel) model.getBlock();
                long[] without = LlamaInference.greedy(lm, model.getNDManager(), prompt, 12, false);
                long[] with = LlamaInference.greedy(lm, model.getNDManager(), prompt, 12, true);
                assertThat(with).as(variant).containsExactly(without);
                // Not a degenerate repetition of one token.
                assertThat(java.util.Arrays.stream(without).distinct().count())
                        .as(variant)
                        .isGreaterThan(1);
            }
        }
    }

    @Test
    void cachedStepsGiveTheLogitsOfTheFullForwardPass(@TempDir Path dir) throws Exception {
        Path checkpoint = TinyLlamas.write("mistral-sliding", dir, 7);
        long[] ids = {1, 9, 33, 21, 30, 2, 14, 44, 7, 52};
        try (Model model = LlamaCheckpoint.load(checkpoint, runtime.device());
                NDManager m = model.getNDManager().newSubManager()) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            ParameterStore ps = new ParameterStore(m, false);
            float[] full =
                    lm.logits(ps, m.create(ids, new Shape(1, ids.length)), null, null, false)
                            .toFloatArray();
            int v = lm.config().vocabSize();
            try (LlamaKvCache cache = new LlamaKvCache(m, lm.config().layers())) {
                // A prompt of 4 in one step, then one token at a time.
                NDArray first =
                        lm.logits(
                                ps,
                                m.create(java.util.Arrays.copyOf(ids, 4), new Shape(1, 4)),
                                null,
                                cache,
                                false);
                assertClose(first.toFloatArray(), full, 0, 4 * v);
                for (int t = 4; t < ids.length; t++) {
                    NDArray step =
                            lm.logits(
                                    ps,
                                    m.create(new long[] {ids[t]}, new Shape(1, 1)),
                                    null,
                                    cache,
                                    false);
                    assertThat(cache.length()).isEqualTo(t + 1);
                    assertClose(step.get(new NDIndex("0, 0")).toFloatArray(), full, t * v, v);
                }
            }
        }
    }

    private static void assertClose(float[] actual, float[] full, int from, int n) {
        assertThat(actual).hasSize(n);
        for (int i = 0; i < n; i++) {
            assertThat(actual[i])
                    .as("logit %d", from + i)
                    .isCloseTo(full[from + i], org.assertj.core.data.Offset.offset(1e-5f));
        }
    }
}
