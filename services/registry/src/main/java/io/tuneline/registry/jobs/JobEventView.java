package io.tuneline.registry.jobs;

import java.time.Instant;
import java.util.Map;

/**
 * One timeline entry as the API and the live stream show it.
 *
 * @param type the event's message name ({@code TrainingProgress})
 * @param jobStatus the job's state once this event was applied
 * @param terminal whether the job has reached a final state with this event
 */
public record JobEventView(
        String eventId,
        String jobId,
        String type,
        String topic,
        Instant occurredAt,
        Map<String, Object> summary,
        String jobStatus,
        boolean terminal) {}
