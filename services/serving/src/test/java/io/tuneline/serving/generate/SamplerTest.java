package io.tuneline.serving.generate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import org.junit.jupiter.api.Test;

class SamplerTest {
    /** Probabilities 0.5, 0.3, 0.15, 0.05 at temperature 1. */
    private static final float[] LOGITS = {
        (float) Math.log(0.5), (float) Math.log(0.3), (float) Math.log(0.15), (float) Math.log(0.05)
    };

    @Test
    void temperatureZeroIsTheFirstLargestLogit() {
        Sampler greedy = new Sampler(0, 1, 1);
        assertThat(greedy.choose(new float[] {1, 3, 3, 0})).isEqualTo(1);
        assertThat(greedy.choose(LOGITS)).isEqualTo(0);
    }

    @Test
    void drawsFollowTheSoftmaxOfTheLogitsOverTheTemperature() {
        int[] counts = draw(new Sampler(1, 1, 7), 20_000);
        double[] expected = {0.5, 0.3, 0.15, 0.05};
        for (int v = 0; v < 4; v++) {
            assertThat(counts[v] / 20_000.0)
                    .as("token %d", v)
                    .isCloseTo(expected[v], within(0.015));
        }
        // Temperature 2 flattens: p ~ sqrt(p) renormalised, 0.5 -> 0.379, 0.05 -> 0.120.
        int[] flat = draw(new Sampler(2, 1, 7), 20_000);
        assertThat(flat[0] / 20_000.0).isCloseTo(0.379, within(0.015));
        assertThat(flat[3] / 20_000.0).isCloseTo(0.120, within(0.015));
    }

    @Test
    void topPKeepsTheSmallestSetOfLikelyTokensReachingP() {
        // 0.5 + 0.3 = 0.8 < 0.9, + 0.15 = 0.95: the nucleus is tokens 0, 1 and 2.
        int[] counts = draw(new Sampler(1, 0.9, 3), 20_000);
        assertThat(counts[3]).isZero();
        assertThat(counts[0] / 20_000.0).isCloseTo(0.5 / 0.95, within(0.015));
        assertThat(counts[2] / 20_000.0).isCloseTo(0.15 / 0.95, within(0.015));
        // A nucleus smaller than the top token's probability holds the top token alone.
        assertThat(draw(new Sampler(1.5, 0.4, 3), 500)[0]).isEqualTo(500);
    }

    @Test
    void theSameSeedDrawsTheSameTokens() {
        Sampler a = new Sampler(1, 0.95, 42);
        Sampler b = new Sampler(1, 0.95, 42);
        long[] first = new long[200];
        long[] second = new long[200];
        for (int i = 0; i < first.length; i++) {
            first[i] = a.choose(LOGITS);
            second[i] = b.choose(LOGITS);
        }
        assertThat(first).isEqualTo(second).contains(0L, 1L, 2L);
    }

    private static int[] draw(Sampler sampler, int n) {
        int[] counts = new int[LOGITS.length];
        for (int i = 0; i < n; i++) {
            counts[(int) sampler.choose(LOGITS)]++;
        }
        return counts;
    }
}
