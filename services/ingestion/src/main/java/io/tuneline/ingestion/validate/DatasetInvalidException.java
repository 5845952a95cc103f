package io.tuneline.ingestion.validate;

import java.util.List;

/** A dataset that breaks the job's bad-record policy; the details name lines and reasons. */
public class DatasetInvalidException extends RuntimeException {
    private final String code;
    private final List<String> details;

    public DatasetInvalidException(String code, String message, List<String> details) {
        super(message);
        this.code = code;
        this.details = List.copyOf(details);
    }

    public String code() {
        return code;
    }

    public List<String> details() {
        return details;
    }
}
