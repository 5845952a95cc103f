package io.tuneline.registry.models;

import jakarta.persistence.Column;
import jakarta.persistence.Entity;
import jakarta.persistence.GeneratedValue;
import jakarta.persistence.GenerationType;
import jakarta.persistence.Id;
import jakarta.persistence.Table;
import java.time.Instant;

/**
 * One version of a model: how it was made (job, base model, method, hyperparameters, dataset), how
 * good it is (metrics, gate) and where its files are. JSON columns hold the job's own values as the
 * events carried them.
 */
@Entity
@Table(name = "model_versions")
public class ModelVersion {
    @Id
    @GeneratedValue(strategy = GenerationType.IDENTITY)
    public Long id;

    @Column(name = "model_id")
    public Long modelId;

    public long version;

    @Column(name = "job_id")
    public String jobId;

    @Column(name = "base_model")
    public String baseModel;

    public String method;

    @Column(name = "method_params")
    public String methodParams;

    public String hyperparameters;

    @Column(name = "dataset_raw_sha256")
    public String datasetRawSha256;

    @Column(name = "dataset_manifest_sha256")
    public String datasetManifestSha256;

    @Column(name = "dataset_counts")
    public String datasetCounts;

    public String metrics;

    @Column(name = "primary_metric")
    public String primaryMetric;

    @Column(name = "gate_passed")
    public boolean gatePassed;

    @Column(name = "gate_reasons")
    public String gateReasons;

    /** JSON array of {name, uri, sha256, size_bytes, content_type}. */
    public String artifacts;

    @Column(name = "report_uri")
    public String reportUri;

    public String stage;

    @Column(name = "created_at")
    public Instant createdAt;
}
