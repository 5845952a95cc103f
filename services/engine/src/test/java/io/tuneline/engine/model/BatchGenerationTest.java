package io.tuneline.engine.model;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import io.tuneline.engine.model.gpt2.Gpt2Checkpoint;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.llama.LlamaCheckpoint;
import io.tuneline.engine.model.llama.TinyLlamas;
import io.tuneline.engine.runtime.EngineRuntime;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Prompts of different lengths decoded together (padded on the left, each row numbered from its
 * first real token; the Llama family through one key/value cache) give each the greedy tokens it
 * gets alone, and a sequence that stops leaves the batch while the others go on.
 */
class BatchGenerationTest {
    private static final List<long[]> PROMPTS =
            List.of(
                    new long[] {1, 17, 42, 8, 3, 55, 21, 9, 30},
                    new long[] {5},
                    new long[] {1, 44, 12, 7},
                    new long[] {1, 58, 33, 18, 26, 4});
    private static final int[] BUDGETS = {12, 9, 3, 15};
    private static EngineRuntime runtime;

    @BeforeAll
    static void start() {
        runtime = EngineRuntime.start(2);
    }

    @Test
    void llamaFamilyBatchesGiveEachPromptItsOwnGreedyTokens(@TempDir Path dir) throws Exception {
        // GQA with biases; Mistral's window (4) shorter than the sequences; Qwen2 with a sliding
        // second layer; Qwen3's q/k norms; yarn-scaled RoPE.
        for (String variant :
                new String[] {
                    "llama-gqa", "mistral-sliding", "qwen2-bias", "qwen3-qknorm", "rope-yarn"
                }) {
            Path checkpoint = TinyLlamas.write(variant, dir.resolve(variant), 6);
            try (Model model = LlamaCheckpoint.load(checkpoint, runtime.device())) {
                assertBatchedAsAlone(CausalLmInference.of(model), variant);
            }
        }
    }

    @Test
    void gpt2BatchesGiveEachPromptItsOwnGreedyTokens(@TempDir Path dir) throws Exception {
        Gpt2Checkpoint.saveRandom(Gpt2Config.of(60, 32, 32, 2, 4), 9, dir);
        try (Model model = CausalLmCheckpoint.load(dir, runtime.device())) {
            assertBatchedAsAlone(CausalLmInference.of(model), "gpt2");
        }
    }

    private static void assertBatchedAsAlone(CausalLmInference inference, String label) {
        // A stop token the first sequence meets by its third token, so sequences leave the batch
        // at different steps.
        long stop = inference.generate(PROMPTS.get(0), 3, CausalLmInference::argmax, t -> true)[2];
        List<long[]> alone = new ArrayList<>();
        List<CausalLmInference.Sequence> batch = new ArrayList<>();
        for (int i = 0; i < PROMPTS.size(); i++) {
            alone.add(
                    inference.generate(
                            PROMPTS.get(i), BUDGETS[i], CausalLmInference::argmax, t -> t != stop));
            batch.add(
                    new CausalLmInference.Sequence(
                            PROMPTS.get(i), BUDGETS[i], CausalLmInference::argmax, t -> t != stop));
        }
        List<long[]> together = inference.generateAll(batch);
        for (int i = 0; i < PROMPTS.size(); i++) {
            assertThat(together.get(i)).as("%s, prompt %d", label, i).containsExactly(alone.get(i));
        }
        long[] first = together.get(0);
        assertThat(first).hasSizeLessThanOrEqualTo(3);
        assertThat(first[first.length - 1]).isEqualTo(stop);
        assertThat(together.get(2)).hasSizeLessThanOrEqualTo(3);
        assertThat(together.stream().mapToInt(t -> t.length).max().getAsInt())
                .as("%s: some sequence goes on after the first left", label)
                .isGreaterThan(first.length);
    }
}
