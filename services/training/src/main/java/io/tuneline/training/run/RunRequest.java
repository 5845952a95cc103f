package io.tuneline.training.run;

import java.util.Map;
import java.util.Optional;

/**
 * One attempt at training a job, as an executor needs it: which job, which attempt, and the compute
 * the job asked for ({@code JobRequested.resources}).
 *
 * @param attempt 1 for the first run of a job, then +1 for each restart after a crash
 * @param gpus GPUs for the run; 0 runs on CPU
 * @param cpu Kubernetes quantity, empty for the executor's default
 * @param memory Kubernetes quantity, empty for the executor's default
 * @param nodeSelector extra node labels, merged with the executor's own
 * @param maxRuntimeSeconds 0 for no limit
 * @param priority higher starts first when runs wait for a slot
 */
public record RunRequest(
        String jobId,
        int attempt,
        int gpus,
        Optional<String> cpu,
        Optional<String> memory,
        Map<String, String> nodeSelector,
        long maxRuntimeSeconds,
        int priority) {

    public RunRequest {
        if (attempt < 1) {
            throw new IllegalArgumentException("attempt starts at 1, was " + attempt);
        }
        if (gpus < 0) {
            throw new IllegalArgumentException("gpus must not be negative, was " + gpus);
        }
        nodeSelector = Map.copyOf(nodeSelector);
    }

    public RunKey key() {
        return new RunKey(jobId, attempt);
    }

    /** Identifies this attempt: {@code <jobId>-a<attempt>}. */
    public String runId() {
        return key().runId();
    }
}
