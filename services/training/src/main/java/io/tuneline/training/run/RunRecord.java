package io.tuneline.training.run;

import java.time.Instant;

/**
 * What the controller remembers of a job's training, stored at {@code
 * runs/{jobId}/controller.json}. The Kafka record that asked for the run is acknowledged as soon as
 * this exists, so an hour-long run never holds a consumer.
 *
 * @param attempt the current attempt; 0 for a job cancelled before its data was ready
 */
public record RunRecord(
        String jobId, int attempt, RunStatus status, String reason, Instant updatedAt) {

    public RunRecord with(RunStatus newStatus, String newReason) {
        return new RunRecord(jobId, attempt, newStatus, newReason, Instant.now());
    }

    public RunRecord nextAttempt(String why) {
        return new RunRecord(jobId, attempt + 1, RunStatus.QUEUED, why, Instant.now());
    }

    public RunKey key() {
        return new RunKey(jobId, attempt);
    }
}
