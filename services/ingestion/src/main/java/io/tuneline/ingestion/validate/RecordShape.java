package io.tuneline.ingestion.validate;

import java.util.Locale;

/**
 * The shape of a dataset's records, and of its canonical records ({@code DatasetIngested.records}).
 */
public enum RecordShape {
    /** {@code {"text", "label"}}: sequence classification. */
    CLASSIFICATION,
    /**
     * {@code {"prompt", "completion"}}: causal LM, from prompt/completion or instruction/output.
     */
    INSTRUCTION,
    /** {@code {"messages": [{"role", "content"}, ...]}}: causal LM on conversations. */
    CHAT,
    /** {@code {"text"}}: causal LM on plain text. */
    TEXT;

    /** The name in {@code DatasetIngested.record_shape}, e.g. {@code instruction}. */
    public String value() {
        return name().toLowerCase(Locale.ROOT);
    }
}
