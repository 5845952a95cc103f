package io.tuneline.ingestion.validate;

import java.util.Locale;

/** Why a record was rejected, as a metric tag: the kinds behind the messages users read. */
public enum RejectionReason {
    INVALID_UTF8("invalid UTF-8"),
    BAD_JSON("bad JSON"),
    NOT_AN_OBJECT("not a JSON object"),
    MISSING_FIELD("missing field"),
    WRONG_TYPE("field '"),
    EMPTY_TEXT("empty text"),
    UNDECLARED_LABEL("label '"),
    LINE_TOO_LONG("line longer than"),
    BAD_MESSAGE("message "),
    NO_ASSISTANT_MESSAGE("no assistant message"),
    BAD_SPLIT("split '"),
    UNREADABLE("unreadable row");

    private final String messagePrefix;

    RejectionReason(String messagePrefix) {
        this.messagePrefix = messagePrefix;
    }

    /** The tag value, e.g. {@code undeclared_label}. */
    public String tag() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** The kind of a rejection message written by {@link DatasetValidator}. */
    static RejectionReason of(String message) {
        for (RejectionReason r : values()) {
            if (message.startsWith(r.messagePrefix)) {
                return r;
            }
        }
        return UNREADABLE;
    }
}
