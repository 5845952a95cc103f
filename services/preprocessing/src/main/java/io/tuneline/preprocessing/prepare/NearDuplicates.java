package io.tuneline.preprocessing.prepare;

import java.nio.charset.StandardCharsets;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Finds near-duplicates with MinHash (Broder 1997) over character shingles, with LSH banding
 * (Leskovec, Rajaraman & Ullman, "Mining of Massive Datasets", ch. 3) so each text is compared only
 * with the few earlier texts that share a band, not with all of them.
 *
 * <p>Texts are compared after lower-casing and dropping punctuation, so casing and punctuation
 * variants of a sentence are near-duplicates of it. A text is kept unless its estimated Jaccard
 * similarity with an already kept text reaches the threshold. Memory: one signature of {@code
 * permutations} ints per kept text.
 */
public final class NearDuplicates {
    /**
     * @param permutations MinHash functions per signature
     * @param bands LSH bands; {@code permutations / bands} rows each. With 128 and 16 (8 rows), a
     *     pair at Jaccard 0.7 becomes a candidate with probability 1-(1-0.7^8)^16 = 0.60, at 0.85
     *     with 0.99, at 0.9 with 1.00; candidates are then checked against the threshold
     * @param threshold estimated Jaccard similarity from which a text is a near-duplicate; 0.85 by
     *     default: on short texts 5-character shingles move fast (one appended character to a
     *     35-character sentence keeps 0.97, "review 1" against "review 10" is 0.8)
     * @param shingleSize characters per shingle
     */
    public record Settings(int permutations, int bands, int shingleSize, double threshold) {
        public static final Settings DEFAULTS = new Settings(128, 16, 5, 0.85);

        public Settings {
            if (permutations % bands != 0) {
                throw new IllegalArgumentException("permutations must be a multiple of bands");
            }
        }
    }

    private final Settings settings;
    private final int[] seeds;
    private final List<int[]> kept = new ArrayList<>();
    private final List<Map<Long, List<Integer>>> buckets = new ArrayList<>();

    public NearDuplicates(Settings settings) {
        this.settings = settings;
        this.seeds = new int[settings.permutations()];
        long x = 0x9E3779B97F4A7C15L;
        for (int i = 0; i < seeds.length; i++) {
            x = mix(x + i);
            seeds[i] = (int) x;
        }
        for (int b = 0; b < settings.bands(); b++) {
            buckets.add(new HashMap<>());
        }
    }

    /**
     * Offers a text; returns true if it is kept (no near-duplicate of it was kept before), false if
     * it is a near-duplicate.
     */
    public boolean offer(String text) {
        int[] signature = signature(text);
        int rows = settings.permutations() / settings.bands();
        Set<Integer> candidates = new LinkedHashSet<>();
        long[] keys = new long[settings.bands()];
        for (int b = 0; b < settings.bands(); b++) {
            long key = 1469598103934665603L;
            for (int r = 0; r < rows; r++) {
                key = (key ^ signature[b * rows + r]) * 1099511628211L;
            }
            keys[b] = key;
            List<Integer> bucket = buckets.get(b).get(key);
            if (bucket != null) {
                candidates.addAll(bucket);
            }
        }
        for (int c : candidates) {
            if (similarity(signature, kept.get(c)) >= settings.threshold()) {
                return false;
            }
        }
        int index = kept.size();
        kept.add(signature);
        for (int b = 0; b < settings.bands(); b++) {
            buckets.get(b).computeIfAbsent(keys[b], k -> new ArrayList<>(1)).add(index);
        }
        return true;
    }

    /** The fraction of equal MinHash values: an unbiased estimate of the Jaccard similarity. */
    static double similarity(int[] a, int[] b) {
        int same = 0;
        for (int i = 0; i < a.length; i++) {
            if (a[i] == b[i]) {
                same++;
            }
        }
        return (double) same / a.length;
    }

    int[] signature(String text) {
        int[] signature = new int[settings.permutations()];
        java.util.Arrays.fill(signature, Integer.MAX_VALUE);
        for (long shingle : shingles(text)) {
            for (int i = 0; i < signature.length; i++) {
                int h = (int) mix(shingle ^ seeds[i]);
                if (h < signature[i]) {
                    signature[i] = h;
                }
            }
        }
        return signature;
    }

    /** 64-bit hashes of the text's character shingles, after casing and punctuation are dropped. */
    Set<Long> shingles(String text) {
        String s =
                Normalizer.normalize(text, Normalizer.Form.NFC)
                        .toLowerCase(Locale.ROOT)
                        .replaceAll("[\\p{P}\\p{S}]+", " ")
                        .replaceAll("\\s+", " ")
                        .strip();
        Set<Long> out = new LinkedHashSet<>();
        int k = settings.shingleSize();
        if (s.length() <= k) {
            out.add(fnv(s));
            return out;
        }
        for (int i = 0; i + k <= s.length(); i++) {
            out.add(fnv(s.substring(i, i + k)));
        }
        return out;
    }

    private static long fnv(String s) {
        long h = 1469598103934665603L;
        for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
            h = (h ^ (b & 0xff)) * 1099511628211L;
        }
        return h;
    }

    /** SplitMix64's finaliser (Steele, Lea & Flood 2014): a cheap, well-mixing 64-bit hash. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
