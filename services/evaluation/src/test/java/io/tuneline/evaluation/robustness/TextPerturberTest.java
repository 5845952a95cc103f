package io.tuneline.evaluation.robustness;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class TextPerturberTest {
    private static final String TEXT = "The quick brown fox, it jumps over the lazy dog.";

    @Test
    void sameSeedSameNoiseAndEachExampleItsOwn() {
        TextPerturber p = new TextPerturber(PerturbationKind.CHAR_SWAP, 0.3, 42);
        assertThat(p.apply(TEXT, 1)).isEqualTo(p.apply(TEXT, 1)).isNotEqualTo(TEXT);
        assertThat(p.apply(TEXT, 1)).isNotEqualTo(p.apply(TEXT, 2));
        assertThat(new TextPerturber(PerturbationKind.CHAR_SWAP, 0.3, 43).apply(TEXT, 1))
                .isNotEqualTo(p.apply(TEXT, 1));
    }

    @Test
    void rateZeroChangesNothing() {
        for (PerturbationKind kind : PerturbationKind.values()) {
            assertThat(new TextPerturber(kind, 0, 1).apply(TEXT, 5))
                    .as(kind.name())
                    .isEqualTo(TEXT);
        }
    }

    @Test
    void eachKindChangesWhatItSays() {
        assertThat(new TextPerturber(PerturbationKind.CASING, 1, 1).apply("Ab c!", 0))
                .isEqualTo("aB C!");
        assertThat(new TextPerturber(PerturbationKind.CHAR_DELETE, 1, 1).apply("ab, c d", 0))
                .isEqualTo(",  ");
        assertThat(new TextPerturber(PerturbationKind.CHAR_SWAP, 1, 1).apply("abcd ef", 0))
                .isEqualTo("badc fe");
        String inserted = new TextPerturber(PerturbationKind.CHAR_INSERT, 1, 1).apply("abc", 0);
        assertThat(inserted).hasSize(6).matches("[a-z]a[a-z]b[a-z]c");
        assertThat(new TextPerturber(PerturbationKind.PUNCTUATION, 1, 1).apply("a, b.", 0))
                .doesNotContain(",", ".")
                .matches("a[.,;:!?] b");
        String spaced =
                new TextPerturber(PerturbationKind.WHITESPACE, 1, 1).apply("a b c d e f", 0);
        assertThat(spaced.replace(" ", "")).isEqualTo("abcdef");
        assertThat(spaced).isNotEqualTo("a b c d e f");
    }

    @Test
    void wordDropoutNeverLeavesAnExampleEmpty() {
        TextPerturber p = new TextPerturber(PerturbationKind.WORD_DROPOUT, 1, 3);
        for (int i = 0; i < 50; i++) {
            assertThat(p.apply(TEXT, i)).isNotBlank();
            assertThat(TEXT).contains(p.apply(TEXT, i));
        }
        String half = new TextPerturber(PerturbationKind.WORD_DROPOUT, 0.5, 3).apply(TEXT, 0);
        assertThat(half.split(" ").length).isBetween(1, 9);
    }

    @Test
    void nameAndRateValidation() {
        assertThat(new TextPerturber(PerturbationKind.CHAR_SWAP, 0.05, 1).name())
                .isEqualTo("char_swap@0.05");
        assertThatThrownBy(() -> new TextPerturber(PerturbationKind.CASING, 1.5, 1))
                .hasMessageContaining("within 0..1");
    }
}
