package io.tuneline.training.run;

import java.time.Instant;

/**
 * What the controller remembers of a job's training, stored at {@code
 * runs/{jobId}/controller.json}. The Kafka record that asked for the run is acknowledged as soon as
 * this exists, so an hour-long run never holds a consumer.
 *
 * @param attempt the current attempt (each start of a worker is one); 0 for a job cancelled before
 *     its data was ready
 * @param preemptions how many of the attempts so far ended preempted ({@link RunState.Preempted}):
 *     they resumed from a checkpoint and do not count against {@code max-attempts}
 */
public record RunRecord(
        String jobId,
        int attempt,
        RunStatus status,
        String reason,
        Instant updatedAt,
        int preemptions) {

    public RunRecord(
            String jobId, int attempt, RunStatus status, String reason, Instant updatedAt) {
        this(jobId, attempt, status, reason, updatedAt, 0);
    }

    public RunRecord with(RunStatus newStatus, String newReason) {
        return new RunRecord(jobId, attempt, newStatus, newReason, Instant.now(), preemptions);
    }

    /** The next attempt after this one failed. */
    public RunRecord nextAttempt(String why) {
        return new RunRecord(jobId, attempt + 1, RunStatus.QUEUED, why, Instant.now(), preemptions);
    }

    /** The next attempt after this one was preempted: not a failure. */
    public RunRecord resumedAfterPreemption(String why) {
        return new RunRecord(
                jobId, attempt + 1, RunStatus.QUEUED, why, Instant.now(), preemptions + 1);
    }

    /** Attempts that failed, preemptions left out: what {@code max-attempts} limits. */
    public int failedAttempts() {
        return attempt - preemptions;
    }

    public RunKey key() {
        return new RunKey(jobId, attempt);
    }
}
