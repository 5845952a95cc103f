package io.tuneline.common.job;

import java.util.List;

/** A job spec that parses but cannot run; lists every problem with the field it is in. */
public class InvalidJobException extends RuntimeException {
    private final String jobId;
    private final List<String> problems;

    public InvalidJobException(String jobId, List<String> problems) {
        super("job '" + jobId + "' is invalid: " + String.join("; ", problems));
        this.jobId = jobId;
        this.problems = List.copyOf(problems);
    }

    public String jobId() {
        return jobId;
    }

    /** One entry per problem, each {@code <field path>: <what is wrong and what to do>}. */
    public List<String> problems() {
        return problems;
    }
}
