package io.tuneline.evaluation.robustness;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Applies one kind of seeded noise to text at a rate: for character kinds, each letter (or space,
 * for whitespace) is affected with probability {@code rate}; for word dropout, each word. The same
 * text, kind, rate and seed always give the same output, so robustness numbers are reproducible and
 * comparable between the base and the tuned model.
 */
public final class TextPerturber {
    private static final String PUNCTUATION = ".,;:!?";

    private final PerturbationKind kind;
    private final double rate;
    private final long seed;

    public TextPerturber(PerturbationKind kind, double rate, long seed) {
        if (rate < 0 || rate > 1) {
            throw new IllegalArgumentException("rate must be within 0..1, was " + rate);
        }
        this.kind = kind;
        this.rate = rate;
        this.seed = seed;
    }

    /**
     * Perturbs the {@code index}-th example; the example's index is part of the seed so examples
     * get different noise, and the order in which they are perturbed does not matter.
     */
    public String apply(String text, long index) {
        SplittableRandom random = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + index);
        return switch (kind) {
            case WORD_DROPOUT -> dropWords(text, random);
            default -> perturbCharacters(text, random);
        };
    }

    private String perturbCharacters(String text, SplittableRandom random) {
        StringBuilder out = new StringBuilder(text.length() + 8);
        int[] cps = text.codePoints().toArray();
        for (int i = 0; i < cps.length; i++) {
            int c = cps[i];
            boolean letter = Character.isLetter(c);
            switch (kind) {
                case CHAR_SWAP -> {
                    if (letter
                            && i + 1 < cps.length
                            && Character.isLetter(cps[i + 1])
                            && random.nextDouble() < rate) {
                        out.appendCodePoint(cps[i + 1]).appendCodePoint(c);
                        i++;
                        continue;
                    }
                }
                case CHAR_DELETE -> {
                    if (letter && random.nextDouble() < rate) {
                        continue;
                    }
                }
                case CHAR_INSERT -> {
                    if (letter && random.nextDouble() < rate) {
                        out.append((char) ('a' + random.nextInt(26)));
                    }
                }
                case CASING -> {
                    if (letter && random.nextDouble() < rate) {
                        c =
                                Character.isUpperCase(c)
                                        ? Character.toLowerCase(c)
                                        : Character.toUpperCase(c);
                    }
                }
                case PUNCTUATION -> {
                    if (PUNCTUATION.indexOf(c) >= 0 && random.nextDouble() < rate) {
                        continue;
                    }
                    if (c == ' ' && random.nextDouble() < rate) {
                        out.append(PUNCTUATION.charAt(random.nextInt(PUNCTUATION.length())));
                    }
                }
                case WHITESPACE -> {
                    if (c == ' ' && random.nextDouble() < rate) {
                        if (random.nextBoolean()) {
                            out.append(' ');
                        } else {
                            continue;
                        }
                    }
                }
                case WORD_DROPOUT ->
                        throw new IllegalStateException("word kinds are not per character");
            }
            out.appendCodePoint(c);
        }
        return out.toString();
    }

    private String dropWords(String text, SplittableRandom random) {
        String[] words = text.trim().split("\\s+");
        List<String> kept = new ArrayList<>();
        for (String w : words) {
            if (random.nextDouble() >= rate) {
                kept.add(w);
            }
        }
        // Never leave an example empty: a model cannot be blamed for an input with no words.
        if (kept.isEmpty() && words.length > 0) {
            kept.add(words[random.nextInt(words.length)]);
        }
        return String.join(" ", kept);
    }

    /** A short name for reports, e.g. {@code char_swap@0.05}. */
    public String name() {
        return kind.name().toLowerCase(java.util.Locale.ROOT) + "@" + rate;
    }
}
