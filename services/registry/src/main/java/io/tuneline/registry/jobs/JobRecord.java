package io.tuneline.registry.jobs;

import jakarta.persistence.Column;
import jakarta.persistence.Entity;
import jakarta.persistence.Id;
import jakarta.persistence.Table;
import java.time.Instant;

/** A job as the read-model sees it; every column is derived from the events in {@link JobEvent}. */
@Entity
@Table(name = "jobs")
public class JobRecord {
    @Id
    @Column(name = "job_id")
    public String jobId;

    @Column(name = "display_name")
    public String displayName;

    public String task;

    @Column(name = "base_model")
    public String baseModel;

    public String method;

    @Column(name = "model_name")
    public String modelName;

    @Column(name = "requested_by")
    public String requestedBy;

    public String status;

    @Column(name = "status_rank")
    public int statusRank;

    @Column(name = "terminal_status")
    public String terminalStatus;

    @Column(name = "status_message")
    public String statusMessage;

    @Column(name = "status_message_at")
    public Instant statusMessageAt;

    @Column(name = "requested_at")
    public Instant requestedAt;

    @Column(name = "queued_at")
    public Instant queuedAt;

    @Column(name = "ingesting_at")
    public Instant ingestingAt;

    @Column(name = "preprocessing_at")
    public Instant preprocessingAt;

    @Column(name = "training_at")
    public Instant trainingAt;

    @Column(name = "evaluating_at")
    public Instant evaluatingAt;

    @Column(name = "registering_at")
    public Instant registeringAt;

    @Column(name = "finished_at")
    public Instant finishedAt;

    @Column(name = "updated_at")
    public Instant updatedAt;

    @Column(name = "progress_step")
    public Long progressStep;

    @Column(name = "progress_total")
    public Long progressTotal;

    @Column(name = "progress_epoch")
    public Double progressEpoch;

    @Column(name = "progress_loss")
    public Double progressLoss;

    @Column(name = "progress_eta_s")
    public Long progressEtaSeconds;

    @Column(name = "progress_at")
    public Instant progressAt;

    @Column(name = "failure_stage")
    public String failureStage;

    @Column(name = "failure_code")
    public String failureCode;

    @Column(name = "failure_reason")
    public String failureReason;

    @Column(name = "failure_at")
    public Instant failureAt;

    @Column(name = "cancel_requested_at")
    public Instant cancelRequestedAt;

    @Column(name = "dataset_raw_sha256")
    public String datasetRawSha256;

    @Column(name = "registered_model")
    public String registeredModel;

    @Column(name = "registered_version")
    public Long registeredVersion;

    @Column(name = "event_count")
    public int eventCount;
}
