package io.tuneline.evaluation.run;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import io.tuneline.engine.model.CausalLmInference;
import io.tuneline.engine.train.CausalLmLoss;
import io.tuneline.engine.train.LmExample;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.LongPredicate;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** How an evaluated answer ends: at any of the model's stop ids, as the serving service's. */
class CausalLmScorerTest {

    /** A model that says {@code script} whatever the prompt. */
    private record Scripted(long[] script) implements CausalLmInference {
        @Override
        public long[] generate(
                long[] prompt, int maxNewTokens, TokenChooser chooser, LongPredicate accepted) {
            List<Long> out = new ArrayList<>();
            for (long token : script) {
                if (out.size() == maxNewTokens) {
                    break;
                }
                out.add(token);
                if (!accepted.test(token)) {
                    break;
                }
            }
            return out.stream().mapToLong(Long::longValue).toArray();
        }

        @Override
        public TokenStats tokenStats(LmExample example) {
            throw new UnsupportedOperationException();
        }

        @Override
        public long[] greedyUntil(long[] prompt, int maxNewTokens, long stop) {
            throw new UnsupportedOperationException();
        }

        @Override
        public int maxPositions() {
            return 512;
        }
    }

    @Test
    void anAnswerEndsAtTheFirstOfTheModelsStopIdsNotOnlyAtItsEosToken(@TempDir Path dir)
            throws Exception {
        Path file = dir.resolve("tokenizer.json");
        try (InputStream in =
                getClass()
                        .getClassLoader()
                        .getResourceAsStream("all-minilm-l6-v2-tokenizer.json")) {
            Files.copy(in, file);
        }
        try (HuggingFaceTokenizer tokenizer =
                HuggingFaceTokenizer.newInstance(
                        file, Map.of("padding", "false", "truncation", "false"))) {
            long[] words = tokenizer.encode("paris then more words", false, false).getIds();
            long eos = 102; // [SEP], the tokenizer's EOS
            long endOfTurn = words[1]; // "then": a second stop id, as Llama 3's <|eot_id|>
            long[] script = {words[0], endOfTurn, words[2], words[3], eos};
            LmExample example =
                    new LmExample(
                            new long[] {101, 7592, 2003, 3000, 102},
                            new long[] {CausalLmLoss.IGNORE, CausalLmLoss.IGNORE, 2003, 3000, 102});
            Scripted model = new Scripted(script);

            assertThat(
                            CausalLmScorer.answer(
                                    model, tokenizer, example, 64, List.of(eos, endOfTurn)))
                    .isEqualTo("paris");
            // With the EOS token alone the answer would run on past the end of the turn.
            assertThat(CausalLmScorer.answer(model, tokenizer, example, 64, List.of(eos)))
                    .isEqualTo("paris then more words");
            // No stop id at all: the length limit (reference tokens + EXTRA_ANSWER_TOKENS) ends it.
            assertThat(CausalLmScorer.answer(model, tokenizer, example, 64, List.of()))
                    .isEqualTo("paris then more words");
        }
    }
}
