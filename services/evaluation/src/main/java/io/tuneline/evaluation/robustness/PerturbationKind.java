package io.tuneline.evaluation.robustness;

/** Seeded text noise, each modelling a way real inputs differ from clean training text. */
public enum PerturbationKind {
    /** Swap two adjacent letters ("teh"): the commonest typo. */
    CHAR_SWAP,
    /** Drop a letter. */
    CHAR_DELETE,
    /** Insert a random lower-case letter. */
    CHAR_INSERT,
    /** Flip a letter's case. */
    CASING,
    /** Insert or remove punctuation. */
    PUNCTUATION,
    /** Double a space or remove one. */
    WHITESPACE,
    /** Drop a whole word. */
    WORD_DROPOUT
}
