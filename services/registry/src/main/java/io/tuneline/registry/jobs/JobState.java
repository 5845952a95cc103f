package io.tuneline.registry.jobs;

import io.tuneline.proto.v1.JobStatus;
import java.util.Locale;

/**
 * A job's state in the read-model. Non-terminal states are ordered by how far the pipeline got, so
 * the state of a set of events is the furthest one reached, whatever order they arrived in; a
 * terminal state, once seen, wins.
 */
public enum JobState {
    QUEUED(1, false),
    INGESTING(2, false),
    PREPROCESSING(3, false),
    TRAINING(4, false),
    EVALUATING(5, false),
    REGISTERING(6, false),
    FAILED(7, true),
    CANCELLED(8, true),
    SUCCEEDED(9, true);

    private final int rank;
    private final boolean terminal;

    JobState(int rank, boolean terminal) {
        this.rank = rank;
        this.terminal = terminal;
    }

    public int rank() {
        return rank;
    }

    public boolean terminal() {
        return terminal;
    }

    public static JobState of(JobStatus status) {
        String name = status.name();
        if (status == JobStatus.JOB_STATUS_UNSPECIFIED || !name.startsWith("JOB_STATUS_")) {
            throw new IllegalArgumentException("job status is unspecified");
        }
        return valueOf(name.substring("JOB_STATUS_".length()));
    }

    /** Parses a state name as users type it ({@code training}, {@code TRAINING}). */
    public static JobState parse(String name) {
        try {
            return valueOf(name.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(
                    "unknown job status '"
                            + name
                            + "'; use one of "
                            + java.util.Arrays.toString(values()));
        }
    }

    public static JobState ofRank(int rank) {
        for (JobState s : values()) {
            if (s.rank == rank) {
                return s;
            }
        }
        throw new IllegalArgumentException("no job state of rank " + rank);
    }
}
