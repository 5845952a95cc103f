package io.tuneline.training.run;

/** The controller's view of a job's training, persisted so a restarted controller carries on. */
public enum RunStatus {
    QUEUED,
    RUNNING,
    CANCELLING,
    SUCCEEDED,
    FAILED,
    CANCELLED;

    public boolean terminal() {
        return this == SUCCEEDED || this == FAILED || this == CANCELLED;
    }
}
