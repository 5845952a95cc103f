package io.tuneline.evaluation.metrics;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import io.tuneline.evaluation.metrics.CausalLmMetrics.AnswerScore;
import io.tuneline.evaluation.metrics.CausalLmMetrics.ExampleScore;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Causal LM metrics on cases computed by hand. */
class CausalLmMetricsTest {
    // Example 0: 2 tokens, log-likelihood -2, 1 argmax hit; example 1: 2 tokens, -4, 2 hits;
    // example 2: nothing scored (a prompt-only line).
    static final List<ExampleScore> SCORES =
            List.of(
                    new ExampleScore(-2, 2, 1),
                    new ExampleScore(-4, 2, 2),
                    new ExampleScore(0, 0, 0));

    @Test
    void perplexityAndTokenAccuracyWeighTokensNotExamples() {
        Map<String, Double> m = CausalLmMetrics.compute(SCORES, List.of(), new int[] {0, 1, 2});
        // loss = (2 + 4) / 4 = 1.5; perplexity = e^1.5 = 4.481689...; accuracy = 3 / 4.
        assertThat(m.get("loss")).isCloseTo(1.5, within(1e-12));
        assertThat(m.get("perplexity")).isCloseTo(4.4816890703380645, within(1e-12));
        assertThat(m.get("token_accuracy")).isCloseTo(0.75, within(1e-12));
        assertThat(m).doesNotContainKeys("exact_match", "token_f1");

        // A bootstrap draw repeating example 1: loss (4 + 4) / 4 = 2, accuracy 1.
        Map<String, Double> again = CausalLmMetrics.compute(SCORES, List.of(), new int[] {1, 1});
        assertThat(again.get("perplexity")).isCloseTo(Math.exp(2), within(1e-12));
        assertThat(again.get("token_accuracy")).isEqualTo(1.0);
        assertThat(CausalLmMetrics.compute(SCORES, List.of(), new int[] {2}).get("perplexity"))
                .isNaN();
    }

    @Test
    void exactMatchAndTokenF1FollowSquadNormalisation() {
        assertThat(CausalLmMetrics.exactMatch("The Paris.", "paris")).isTrue();
        assertThat(CausalLmMetrics.exactMatch("  an  apple ", "Apple!")).isTrue();
        assertThat(CausalLmMetrics.exactMatch("paris france", "paris")).isFalse();
        // [cat, sat, on, mat] vs [cat, on, mat]: 3 common, P 3/4, R 1, F1 6/7.
        assertThat(CausalLmMetrics.tokenF1("the cat sat on mat", "a cat on the mat"))
                .isCloseTo(6.0 / 7, within(1e-12));
        // Repeated tokens count once per occurrence: [red, red, blue] vs [red, blue, blue]: 2.
        assertThat(CausalLmMetrics.tokenF1("red red blue", "red blue blue"))
                .isCloseTo(2.0 / 3, within(1e-12));
        assertThat(CausalLmMetrics.tokenF1("", "the")).isEqualTo(1.0);
        assertThat(CausalLmMetrics.tokenF1("paris", "")).isEqualTo(0.0);
        assertThat(CausalLmMetrics.tokenF1("rome", "paris")).isEqualTo(0.0);
    }

    @Test
    void answerMetricsAverageOverExamplesWithIntervals() {
        List<AnswerScore> answers =
                List.of(
                        AnswerScore.of("paris", "Paris"),
                        AnswerScore.of("red red blue", "red blue blue"),
                        AnswerScore.of("rome", "madrid"));
        Map<String, Double> m = CausalLmMetrics.compute(SCORES, answers, new int[] {0, 1, 2});
        assertThat(m.get("exact_match")).isCloseTo(1.0 / 3, within(1e-12));
        assertThat(m.get("token_f1")).isCloseTo((1 + 2.0 / 3 + 0) / 3, within(1e-12));

        Map<String, Estimate> e = CausalLmMetrics.withIntervals(SCORES, answers, 500, 7);
        assertThat(e.get("exact_match").value()).isCloseTo(1.0 / 3, within(1e-12));
        assertThat(e.get("exact_match").lower()).isLessThanOrEqualTo(1.0 / 3);
        assertThat(e.get("exact_match").upper()).isGreaterThanOrEqualTo(1.0 / 3);
        assertThat(e.get("perplexity").lower()).isLessThanOrEqualTo(e.get("perplexity").value());
        // Without resamples the estimate is exact.
        assertThat(CausalLmMetrics.withIntervals(SCORES, answers, 0, 7).get("loss"))
                .isEqualTo(Estimate.exact(1.5));
    }
}
