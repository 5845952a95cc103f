package io.tuneline.registry.jobs;

import java.time.Instant;
import java.util.List;
import java.util.Map;

/** A job as the API shows it; {@code timeline} is only filled when one job is asked for. */
public record JobView(
        String jobId,
        String displayName,
        String task,
        String baseModel,
        String method,
        String modelName,
        String requestedBy,
        String status,
        String statusMessage,
        Map<String, Instant> stages,
        Progress progress,
        Failure failure,
        Instant cancelRequestedAt,
        String datasetRawSha256,
        Registration registered,
        int eventCount,
        Instant updatedAt,
        List<JobEventView> timeline) {

    /** The latest training progress. */
    public record Progress(
            long step,
            long totalSteps,
            double percent,
            Double epoch,
            Double loss,
            Long etaSeconds,
            Instant reportedAt) {}

    public record Failure(String stage, String code, String reason, Instant at) {}

    public record Registration(String model, long version) {}
}
