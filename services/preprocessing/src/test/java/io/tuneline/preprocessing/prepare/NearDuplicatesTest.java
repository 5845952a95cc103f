package io.tuneline.preprocessing.prepare;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class NearDuplicatesTest {
    private final NearDuplicates.Settings defaults = NearDuplicates.Settings.DEFAULTS;

    private static double jaccard(Set<Long> a, Set<Long> b) {
        Set<Long> union = new HashSet<>(a);
        union.addAll(b);
        Set<Long> both = new HashSet<>(a);
        both.retainAll(b);
        return (double) both.size() / union.size();
    }

    @Test
    void shinglesIgnoreCasingAndPunctuationAndCountAsByHand() {
        NearDuplicates nd = new NearDuplicates(defaults);
        // "review 1" has 4 five-character shingles, "review 10" the same 4 plus "ew 10": 4/5.
        assertThat(jaccard(nd.shingles("review 1"), nd.shingles("review 10"))).isEqualTo(0.8);
        assertThat(nd.shingles("Great film!!")).isEqualTo(nd.shingles("great   film"));
        // 35 characters, 31 shingles; one appended letter adds one shingle: 31/32.
        String s = "i loved this movie it was wonderful";
        assertThat(jaccard(nd.shingles(s), nd.shingles(s + "l"))).isEqualTo(31.0 / 32);
    }

    @Test
    void theMinHashEstimateIsCloseToTheTrueJaccardSimilarity() {
        NearDuplicates nd = new NearDuplicates(defaults);
        String a = "the service at the hotel was slow but the room was clean and quiet";
        String b = "the service at the hotel was quick and the room was clean and quiet";
        double truth = jaccard(nd.shingles(a), nd.shingles(b));
        double estimate = NearDuplicates.similarity(nd.signature(a), nd.signature(b));
        // 128 permutations: standard error sqrt(J(1-J)/128) <= 0.045; allow three of them.
        assertThat(estimate).isCloseTo(truth, org.assertj.core.data.Offset.offset(0.135));
    }

    @Test
    void nearDuplicatesAreDroppedAndDifferentTextsKept() {
        NearDuplicates nd = new NearDuplicates(defaults);
        List<String> texts =
                List.of(
                        "I loved this movie, it was wonderful.",
                        "i loved this movie it was wonderful", // casing and punctuation
                        "I LOVED THIS MOVIE!!! It was wonderful", // casing and punctuation
                        "I loved this movie, it was wonderfull.", // one letter more
                        "The food was cold and the staff were rude.",
                        "review 1",
                        "review 10", // Jaccard 0.8, below the 0.85 threshold: kept
                        "A completely different sentence about trains.");
        List<Boolean> kept = texts.stream().map(nd::offer).toList();
        assertThat(kept).containsExactly(true, false, false, false, true, true, true, true);
    }
}
