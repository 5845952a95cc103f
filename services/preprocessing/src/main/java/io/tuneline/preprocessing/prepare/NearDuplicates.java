package io.tuneline.preprocessing.prepare;

import it.unimi.dsi.fastutil.ints.Int2IntOpenHashMap;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Finds near-duplicates with MinHash (Broder 1997) over character shingles, computed by
 * one-permutation hashing with optimal densification (see {@link #signature}), with LSH banding
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
     * @param permutations MinHash values per signature: the bins of one-permutation hashing, which
     *     estimate the Jaccard similarity as well as that many independent permutations would
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

    /**
     * Texts per page of stored signatures: 128 kB pages, allocated as ids reach them, stay clear of
     * G1's humongous (half-region) objects.
     */
    private static final int PAGE = 1024;

    /** Chance that two unrelated 8-bit values are equal; the b-bit estimate corrects for it. */
    private static final double CHANCE = 1.0 / 256;

    private final Settings settings;
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

    /**
     * The MinHash signature of a text's shingles by one-permutation hashing (Li, Owen & Zhang
     * 2012): each shingle is hashed once, the hash's high bits pick one of the {@code permutations}
     * bins and its low 31 bits are the value, and each bin keeps its minimum. That costs O(n + k)
     * for n shingles and k bins where k independent permutations cost O(n k) (128 multiply-adds per
     * shingle, 140-200 us per 1.3 kB review). Bins no shingle fell into are filled by optimal
     * densification (Shrivastava 2017), so the fraction of equal bins still estimates the Jaccard
     * similarity without bias, short texts included.
     */
    public int[] signature(String text) {
        int k = settings.permutations();
        int[] bins = new int[k];
        Arrays.fill(bins, EMPTY);
        // The canonical text's chars, hashed in place: no String, no bounds check per char.
        String lower = lowerNfc(text);
        char[] c = new char[lower.length()];
        long span = canonical(lower, c);
        int from = (int) (span >>> 32);
        int to = (int) span;
        int size = settings.shingleSize();
        if (to - from <= size) {
            put(bins, hash(c, from, to));
        } else if (size == 5) {
            // The default shingle, unrolled: the same hash as the loop below, in about half the
            // time (each shingle's multiplications depend on each other, not on the last one's).
            for (int i = from; i + 5 <= to; i++) {
                long h = (1469598103934665603L ^ c[i]) * 1099511628211L;
                h = (h ^ c[i + 1]) * 1099511628211L;
                h = (h ^ c[i + 2]) * 1099511628211L;
                h = (h ^ c[i + 3]) * 1099511628211L;
                h = (h ^ c[i + 4]) * 1099511628211L;
                put(bins, mix(h));
            }
        } else {
            for (int i = from; i + size <= to; i++) {
                put(bins, hash(c, i, i + size));
            }
        }
        return densify(bins);
    }

    /** Bins no shingle reached have this value; real values are non-negative. */
    private static final int EMPTY = -1;

    private static void put(int[] bins, long shingle) {
        int bin = (int) (((shingle >>> 32) * bins.length) >>> 32);
        int value = (int) (shingle & 0x7FFFFFFFL);
        // The smaller of the two as unsigned numbers, without a branch that mispredicts: values
        // are below 2^31 and EMPTY (-1) is the largest unsigned int, so any value replaces it.
        bins[bin] =
                Math.min(value + Integer.MIN_VALUE, bins[bin] + Integer.MIN_VALUE)
                        - Integer.MIN_VALUE;
    }

    /**
     * Optimal densification: an empty bin takes the value of the first non-empty bin along its own
     * fixed pseudo-random sequence of bins. The sequence depends only on the bin (not the text), so
     * two texts' empty bins copy from the same place whenever the same bins are filled, which is
     * what keeps the estimate unbiased (Shrivastava 2017, Theorem 1); each bin's own sequence
     * (rather than the next filled bin to the right) keeps the variance near that of k
     * permutations.
     */
    private static int[] densify(int[] bins) {
        int k = bins.length;
        int[] out = bins.clone();
        for (int i = 0; i < k; i++) {
            if (bins[i] != EMPTY) {
                continue;
            }
            for (long attempt = 1; ; attempt++) {
                long h = mix(0x5DEECE66DL * (i + 1) + attempt * 0x9E3779B97F4A7C15L);
                int from = (int) (((h >>> 32) * k) >>> 32);
                if (bins[from] != EMPTY) {
                    out[i] = bins[from];
                    break;
                }
            }
        }
        return out;
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

    /**
     * Lower-cased, NFC, every run of punctuation, symbols and ASCII whitespace one space, trimmed:
     * what the regular expressions {@code [\p{P}\p{S}]+} and then {@code \s+} replaced by a space
     * and {@link String#strip} gave, in one pass over the text instead of two regular expression
     * passes (which cost more than the hashing once it was O(n)).
     */
    static String canonical(String text) {
        String lower = lowerNfc(text);
        char[] c = new char[lower.length()];
        long span = canonical(lower, c);
        return new String(c, (int) (span >>> 32), (int) span - (int) (span >>> 32));
    }

    private static String lowerNfc(String text) {
        String s = text;
        if (!Example.Normalization.surelyNfc(s)
                && !Normalizer.isNormalized(s, Normalizer.Form.NFC)) {
            s = Normalizer.normalize(s, Normalizer.Form.NFC);
        }
        return s.toLowerCase(Locale.ROOT);
    }

    /**
     * The rest of {@link #canonical(String)}, of a text already in NFC and lower-cased, written
     * into {@code out} (as long as the text: a run of separators becomes one space, so nothing
     * grows); returns where it starts and ends there as {@code from << 32 | to}, the ends trimmed
     * as {@link String#strip} trims them.
     */
    private static long canonical(String s, char[] out) {
        int n = 0;
        boolean gap = false;
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            i += Character.charCount(cp);
            if (separates(cp)) {
                gap = true;
                continue;
            }
            if (gap) {
                out[n++] = ' ';
                gap = false;
            }
            n += Character.toChars(cp, out, n);
        }
        if (gap) {
            out[n++] = ' ';
        }
        // String.strip: Character.isWhitespace at both ends (never true of a surrogate).
        int from = 0;
        while (from < n && Character.isWhitespace(out[from])) {
            from++;
        }
        int to = n;
        while (to > from && Character.isWhitespace(out[to - 1])) {
            to--;
        }
        return (long) from << 32 | to;
    }

    /** Punctuation (\p{P}), symbols (\p{S}) and what {@code \s} matches ([ \t\n\x0B\f\r]). */
    private static boolean separates(int cp) {
        if (cp < 128) {
            return ASCII_SEPARATES[cp];
        }
        return switch (Character.getType(cp)) {
            case Character.CONNECTOR_PUNCTUATION,
                    Character.DASH_PUNCTUATION,
                    Character.START_PUNCTUATION,
                    Character.END_PUNCTUATION,
                    Character.INITIAL_QUOTE_PUNCTUATION,
                    Character.FINAL_QUOTE_PUNCTUATION,
                    Character.OTHER_PUNCTUATION,
                    Character.MATH_SYMBOL,
                    Character.CURRENCY_SYMBOL,
                    Character.MODIFIER_SYMBOL,
                    Character.OTHER_SYMBOL ->
                    true;
            default -> false;
        };
    }

    private static final boolean[] ASCII_SEPARATES = new boolean[128];

    static {
        for (int c = 0; c < 128; c++) {
            ASCII_SEPARATES[c] =
                    " \t\n\u000B\f\r".indexOf(c) >= 0
                            || (c >= 33 && c < 127 && !Character.isLetterOrDigit(c));
        }
    }

    private static long hash(String s, int from, int to) {
        long h = 1469598103934665603L;
        for (int i = from; i < to; i++) {
            h = (h ^ s.charAt(i)) * 1099511628211L;
        }
        return mix(h);
    }

    /** The same hash over a char array. */
    private static long hash(char[] s, int from, int to) {
        long h = 1469598103934665603L;
        for (int i = from; i < to; i++) {
            h = (h ^ s[i]) * 1099511628211L;
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
