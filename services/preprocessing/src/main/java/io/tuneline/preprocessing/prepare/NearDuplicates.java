package io.tuneline.preprocessing.prepare;

import it.unimi.dsi.fastutil.ints.Int2IntOpenHashMap;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Finds near-duplicates with MinHash (Broder 1997) over character shingles, with LSH banding
 * (Leskovec, Rajaraman & Ullman, "Mining of Massive Datasets", ch. 3) so each text is compared only
 * with the few earlier texts that share a band, not with all of them.
 *
 * <p>Texts are compared after lower-casing and dropping punctuation, so casing and punctuation
 * variants of a sentence are near-duplicates of it. A text is kept unless its estimated Jaccard
 * similarity with an already kept text reaches the threshold.
 *
 * <p>Memory is what lets a dataset far larger than the heap through: per kept text, the low 8 bits
 * of each MinHash value (b-bit MinHash, Li & König 2010: 128 bytes with 128 permutations) and one
 * int-to-int entry per band whose bucket it opened (the first kept text of a bucket represents it),
 * about 300 bytes in all with the defaults. No text is held.
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

    private static final Pattern PUNCTUATION = Pattern.compile("[\\p{P}\\p{S}]+");
    private static final Pattern SPACES = Pattern.compile("\\s+");

    /**
     * Texts per page of stored signatures: 128 kB pages, allocated as ids reach them, stay clear of
     * G1's humongous (half-region) objects.
     */
    private static final int PAGE = 1024;

    /** Chance that two unrelated 8-bit values are equal; the b-bit estimate corrects for it. */
    private static final double CHANCE = 1.0 / 256;

    private final Settings settings;
    private final long[] multipliers;
    private final long[] offsets;
    private final List<byte[]> pages = new ArrayList<>();
    private final Int2IntOpenHashMap[] buckets;
    private int next;

    public NearDuplicates(Settings settings) {
        this(settings, 1024);
    }

    /**
     * @param expected how many texts will be kept, at most; sizing the tables once avoids a rehash
     *     that would briefly need twice their memory
     */
    public NearDuplicates(Settings settings, long expected) {
        this.settings = settings;
        int k = settings.permutations();
        this.multipliers = new long[k];
        this.offsets = new long[k];
        long x = 0x9E3779B97F4A7C15L;
        for (int i = 0; i < k; i++) {
            x = mix(x + i);
            multipliers[i] = x | 1; // odd: multiply-shift hashing (Dietzfelbinger et al. 1997)
            x = mix(x + 0x632BE59BD9B4E019L);
            offsets[i] = x;
        }
        this.buckets = new Int2IntOpenHashMap[settings.bands()];
        int size = (int) Math.min(Integer.MAX_VALUE / 4, Math.max(16, expected));
        for (int b = 0; b < buckets.length; b++) {
            buckets[b] = new Int2IntOpenHashMap(size);
            buckets[b].defaultReturnValue(-1);
        }
    }

    /**
     * Offers a text; returns true if it is kept (no near-duplicate of it was kept before), false if
     * it is a near-duplicate. Ids are given in offering order.
     */
    public boolean offer(String text) {
        int[] signature = signature(text);
        if (match(signature) >= 0) {
            return false;
        }
        keep(next++, signature);
        return true;
    }

    /** The id of a kept text whose estimated similarity reaches the threshold, or -1. */
    public int match(int[] signature) {
        int rows = settings.permutations() / settings.bands();
        byte[] mine = bBits(signature);
        for (int b = 0; b < buckets.length; b++) {
            int candidate = buckets[b].get(bandKey(signature, b, rows));
            if (candidate >= 0 && estimate(mine, candidate) >= settings.threshold()) {
                return candidate;
            }
        }
        return -1;
    }

    /** Remembers a kept text under {@code id} (ids need not be dense, but must be unique). */
    public void keep(int id, int[] signature) {
        int rows = settings.permutations() / settings.bands();
        int k = settings.permutations();
        int page = id / PAGE;
        while (pages.size() <= page) {
            pages.add(null);
        }
        if (pages.get(page) == null) {
            pages.set(page, new byte[PAGE * k]);
        }
        byte[] bits = bBits(signature);
        System.arraycopy(bits, 0, pages.get(page), (id % PAGE) * k, k);
        for (int b = 0; b < buckets.length; b++) {
            buckets[b].putIfAbsent(bandKey(signature, b, rows), id);
        }
    }

    private double estimate(byte[] mine, int id) {
        int k = settings.permutations();
        byte[] page = pages.get(id / PAGE);
        int at = (id % PAGE) * k;
        int same = 0;
        for (int i = 0; i < k; i++) {
            if (page[at + i] == mine[i]) {
                same++;
            }
        }
        return ((double) same / k - CHANCE) / (1 - CHANCE);
    }

    private static byte[] bBits(int[] signature) {
        byte[] out = new byte[signature.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) signature[i];
        }
        return out;
    }

    private static int bandKey(int[] signature, int band, int rows) {
        long key = 1469598103934665603L + band;
        for (int r = 0; r < rows; r++) {
            key = (key ^ signature[band * rows + r]) * 1099511628211L;
        }
        return (int) mix(key);
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

    /** The MinHash signature of a text's shingles. */
    public int[] signature(String text) {
        int[] signature = new int[settings.permutations()];
        Arrays.fill(signature, Integer.MAX_VALUE);
        String s = canonical(text);
        int k = settings.shingleSize();
        if (s.length() <= k) {
            update(signature, hash(s, 0, s.length()));
            return signature;
        }
        for (int i = 0; i + k <= s.length(); i++) {
            update(signature, hash(s, i, i + k));
        }
        return signature;
    }

    private void update(int[] signature, long shingle) {
        // One multiply-add per permutation: the signature costs a few nanoseconds per shingle
        // instead of a full 64-bit mix each.
        for (int i = 0; i < signature.length; i++) {
            int h = (int) ((multipliers[i] * shingle + offsets[i]) >>> 33);
            if (h < signature[i]) {
                signature[i] = h;
            }
        }
    }

    /** 64-bit hashes of the text's character shingles, after casing and punctuation are dropped. */
    Set<Long> shingles(String text) {
        String s = canonical(text);
        Set<Long> out = new LinkedHashSet<>();
        int k = settings.shingleSize();
        if (s.length() <= k) {
            out.add(hash(s, 0, s.length()));
            return out;
        }
        for (int i = 0; i + k <= s.length(); i++) {
            out.add(hash(s, i, i + k));
        }
        return out;
    }

    private static String canonical(String text) {
        String s = Normalizer.normalize(text, Normalizer.Form.NFC).toLowerCase(Locale.ROOT);
        s = PUNCTUATION.matcher(s).replaceAll(" ");
        return SPACES.matcher(s).replaceAll(" ").strip();
    }

    private static long hash(String s, int from, int to) {
        long h = 1469598103934665603L;
        for (int i = from; i < to; i++) {
            h = (h ^ s.charAt(i)) * 1099511628211L;
        }
        return mix(h);
    }

    /** SplitMix64's finaliser (Steele, Lea & Flood 2014): a cheap, well-mixing 64-bit hash. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
