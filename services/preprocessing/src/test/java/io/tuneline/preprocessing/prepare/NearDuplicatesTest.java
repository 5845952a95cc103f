package io.tuneline.preprocessing.prepare;

import static org.assertj.core.api.Assertions.assertThat;

import io.tuneline.preprocessing.bench.PreprocessingThroughput;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.Set;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

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

    /** The shingles as strings, by hand: shares no code with the hashing being checked. */
    private static Set<String> shingleStrings(String s) {
        Set<String> out = new HashSet<>();
        for (int i = 0; i + 5 <= s.length(); i++) {
            out.add(s.substring(i, i + 5));
        }
        return out;
    }

    private static double exactJaccard(String a, String b) {
        Set<String> x = shingleStrings(a);
        Set<String> y = shingleStrings(b);
        Set<String> union = new HashSet<>(x);
        union.addAll(y);
        x.retainAll(y);
        return (double) x.size() / union.size();
    }

    private static String words(Random random, int count) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < count; i++) {
            if (i > 0) {
                b.append(' ');
            }
            for (int c = 0, n = 3 + random.nextInt(6); c < n; c++) {
                b.append((char) ('a' + random.nextInt(26)));
            }
        }
        return b.toString();
    }

    /**
     * One-permutation hashing with densification estimates the Jaccard similarity without bias and
     * with about the spread of 128 independent permutations, sqrt(J(1-J)/128): checked on pairs
     * built to overlap by about 0.3, 0.5, 0.7 and 0.9, on review-length texts (about 1,300
     * shingles, nearly every bin filled) and on 20-word ones (about 120 shingles: a third of the
     * bins empty, filled by densification), against the exact similarity of the shingle strings.
     */
    @Test
    void theEstimateIsUnbiasedWithTheSpreadOfKPermutationsAtEveryOverlap() {
        NearDuplicates nd = new NearDuplicates(defaults);
        Random random = new Random(7);
        int k = defaults.permutations();
        for (int length : new int[] {220, 20}) {
            for (double target : new double[] {0.3, 0.5, 0.7, 0.9}) {
                int pairs = 200;
                double sumError = 0;
                double sumSquared = 0;
                double sumExact = 0;
                for (int p = 0; p < pairs; p++) {
                    // Shared words and words of each text's own: the shingle overlap is about the
                    // shared share of the union.
                    int shared = (int) Math.round(length * 2 * target / (1 + target));
                    String common = words(random, shared);
                    String a = common + " " + words(random, length - shared);
                    String b = words(random, length - shared) + " " + common;
                    double exact = exactJaccard(a, b);
                    double estimate = NearDuplicates.similarity(nd.signature(a), nd.signature(b));
                    double sd = Math.sqrt(exact * (1 - exact) / k);
                    // Every single estimate within 4.5 standard errors (1 in 150,000 by chance).
                    assertThat(Math.abs(estimate - exact))
                            .as("pair %d of %d words at Jaccard %.3f", p, length, exact)
                            .isLessThanOrEqualTo(4.5 * sd + 1e-9);
                    sumError += estimate - exact;
                    sumSquared += (estimate - exact) * (estimate - exact);
                    sumExact += exact;
                }
                double meanExact = sumExact / pairs;
                double sd = Math.sqrt(meanExact * (1 - meanExact) / k);
                assertThat(meanExact).isCloseTo(target, org.assertj.core.data.Offset.offset(0.06));
                // Unbiased: the mean error is within 4 standard errors of the mean.
                assertThat(Math.abs(sumError / pairs))
                        .as("bias at %d words, Jaccard %.2f", length, meanExact)
                        .isLessThanOrEqualTo(4 * sd / Math.sqrt(pairs));
                // The spread of k permutations, give or take a quarter.
                assertThat(Math.sqrt(sumSquared / pairs))
                        .as("spread at %d words, Jaccard %.2f", length, meanExact)
                        .isBetween(0.75 * sd, 1.25 * sd);
            }
        }
    }

    /**
     * The benchmark's planted duplicates (every 50th record repeats an earlier one, every 97th is
     * the previous one upper-cased with a "!") are all found, and none of the other records, which
     * share only a 4,000-word vocabulary, is taken for a near-duplicate.
     */
    @Test
    void theBenchmarksPlantedDuplicatesAreAllFoundAndNothingElse(@TempDir Path dir)
            throws IOException {
        Path data = PreprocessingThroughput.dataset(dir, 4, "30-400");
        List<String> lines = Files.readAllLines(data);
        NearDuplicates nd = new NearDuplicates(defaults, lines.size());
        List<Integer> flagged = new ArrayList<>();
        List<Integer> planted = new ArrayList<>();
        for (int n = 0; n < lines.size(); n++) {
            String text =
                    new com.fasterxml.jackson.databind.ObjectMapper()
                            .readTree(lines.get(n))
                            .get("text")
                            .asText();
            // As DatasetPreparation offers it for MiniLM, an uncased model.
            if (!nd.offer(text.toLowerCase(Locale.ROOT))) {
                flagged.add(n);
            }
            if (n > 0
                    && (n % PreprocessingThroughput.EXACT_EVERY == 0
                            || n % PreprocessingThroughput.VARIANT_EVERY == 0)) {
                planted.add(n);
            }
        }
        assertThat(planted).hasSizeGreaterThan(80);
        assertThat(flagged).isEqualTo(planted);
    }

    /** The old canonical form, by regular expressions: the one-pass version must agree with it. */
    private static String canonicalByRegex(String text) {
        String s = Normalizer.normalize(text, Normalizer.Form.NFC).toLowerCase(Locale.ROOT);
        s = Pattern.compile("[\\p{P}\\p{S}]+").matcher(s).replaceAll(" ");
        return Pattern.compile("\\s+").matcher(s).replaceAll(" ").strip();
    }

    @Test
    void theOnePassCanonicalFormEqualsTheRegularExpressions() {
        List<String> texts =
                List.of(
                        "I LOVED this movie!!! It was wonderful...",
                        "  tabs\tand\nnew lines\r\n  ",
                        "price: $5 + 10% = \u20ac6 \u00bfqu\u00e9?",
                        "e\u0301t\u00e9 \u2014 \u00abquoted\u00bb \u201csmart\u201d",
                        "non\u00a0breaking\u2003em space\u3000ideographic",
                        "emoji \ud83d\ude00 and \ud834\udd1e clef",
                        "\u00a0\u2003 edges \u2003\u00a0",
                        "",
                        "!!!",
                        "ctrl\u0001char\u000bvt\u001ffs",
                        "caf\u00c9 STRASSE \u0130stanbul");
        for (String t : texts) {
            assertThat(NearDuplicates.canonical(t)).as(t).isEqualTo(canonicalByRegex(t));
        }
        Random random = new Random(3);
        for (int i = 0; i < 20_000; i++) {
            StringBuilder b = new StringBuilder();
            for (int c = 0; c < 12; c++) {
                b.appendCodePoint(
                        random.nextInt(4) == 0 ? random.nextInt(0x3000) : 32 + random.nextInt(95));
            }
            String t = b.toString();
            if (Character.isSurrogate(t.charAt(0))) {
                continue;
            }
            assertThat(NearDuplicates.canonical(t)).as(t).isEqualTo(canonicalByRegex(t));
        }
    }
}
