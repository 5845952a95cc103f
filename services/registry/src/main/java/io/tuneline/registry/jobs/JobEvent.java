package io.tuneline.registry.jobs;

import jakarta.persistence.Column;
import jakarta.persistence.Entity;
import jakarta.persistence.Id;
import jakarta.persistence.Table;
import java.time.Instant;

/** One event of a job's timeline, stored once per CloudEvents id. */
@Entity
@Table(name = "job_events")
public class JobEvent {
    @Id
    @Column(name = "event_id")
    public String eventId;

    @Column(name = "job_id")
    public String jobId;

    public String type;

    public String topic;

    @Column(name = "occurred_at")
    public Instant occurredAt;

    @Column(name = "received_at")
    public Instant receivedAt;

    /** A small JSON object with what a person wants to see of the event (never a dataset). */
    public String summary;
}
