package io.tuneline.training.run;

/** Identifies one attempt of one job. */
public record RunKey(String jobId, int attempt) {
    /** {@code <jobId>-a<attempt>}, the run id in logs, work directories and events. */
    public String runId() {
        return jobId + "-a" + attempt;
    }

    @Override
    public String toString() {
        return runId();
    }
}
