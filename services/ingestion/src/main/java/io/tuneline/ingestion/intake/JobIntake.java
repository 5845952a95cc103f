package io.tuneline.ingestion.intake;

import com.google.protobuf.util.Timestamps;
import io.tuneline.common.event.IncomingEvent;
import io.tuneline.common.job.ComparedMethods;
import io.tuneline.common.job.JobSpecValidator;
import io.tuneline.common.messaging.EventPublisher;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.ingestion.config.IngestionConfig;
import io.tuneline.ingestion.metrics.IngestionMetrics;
import io.tuneline.ingestion.source.DatasetIngestion;
import io.tuneline.ingestion.validate.DatasetInvalidException;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.JobStatus;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.proto.v1.MethodSpec;
import io.tuneline.proto.v1.Stage;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.io.IOException;
import java.util.List;
import java.util.Optional;
import org.eclipse.microprofile.reactive.messaging.Channel;
import org.eclipse.microprofile.reactive.messaging.Emitter;
import org.jboss.logging.Logger;

/**
 * Accepts or rejects a submitted job. A job whose spec cannot run fails at once with every problem
 * listed, so the user sees them all in the job's status rather than one per attempt.
 */
@ApplicationScoped
public class JobIntake {
    static final String ERROR_JOB_INVALID = "JOB_INVALID";
    private static final Logger LOG = Logger.getLogger(JobIntake.class);

    private final EventPublisher publisher;
    private final Emitter<byte[]> status;
    private final Emitter<byte[]> ingested;
    private final DatasetIngestion ingestion;
    private final io.micrometer.core.instrument.Counter reusedIds;

    @Inject
    public JobIntake(
            EventPublisher publisher,
            @Channel("job-status") Emitter<byte[]> status,
            @Channel("datasets-ingested") Emitter<byte[]> ingested,
            ArtifactStore store,
            IngestionConfig config,
            IngestionMetrics metrics) {
        this.publisher = publisher;
        this.status = status;
        this.ingested = ingested;
        this.ingestion = new DatasetIngestion(store, config, metrics);
        this.reusedIds = metrics.reusedJobIds();
    }

    public void accept(IncomingEvent<JobRequested> event) {
        JobRequested job = event.payload();
        List<String> problems = JobSpecValidator.problems(job);
        if (!problems.isEmpty()) {
            LOG.warnf("job rejected: %s", String.join("; ", problems));
            publisher.sendAndWait(
                    status,
                    JobFailed.newBuilder()
                            .setJobId(job.getJobId())
                            .setStage(Stage.STAGE_INGESTION)
                            .setErrorCode(ERROR_JOB_INVALID)
                            .setMessage(
                                    "the job spec is invalid ("
                                            + problems.size()
                                            + " problem"
                                            + (problems.size() == 1 ? "" : "s")
                                            + "): "
                                            + String.join("; ", problems))
                            .addAllDetails(problems)
                            .setFailedAt(Timestamps.now())
                            .build());
            return;
        }
        LOG.infof(
                "job received from %s: base model %s, task %s, method %s, dataset %s",
                event.source(),
                job.getBaseModel().getRef(),
                job.getTask(),
                ComparedMethods.isComparison(job)
                        ? "comparison of " + String.join(", ", ComparedMethods.names(job))
                        : job.getMethod().getKindCase() == MethodSpec.KindCase.KIND_NOT_SET
                                ? "FULL"
                                : job.getMethod().getKindCase(),
                job.getDataset().getSourceCase() == DatasetSpec.SourceCase.URI
                        ? job.getDataset().getUri()
                        : "inline ("
                                + job.getDataset().getInline().getRecordsCount()
                                + " records)");
        Optional<DatasetIngested> previous = ingestion.previous(job.getJobId());
        if (previous.isPresent() && !sameJob(previous.get().getJob(), job)) {
            // Another job under a used id: running it would overwrite the first job's artifacts,
            // and a JobFailed under that id would fail the first job. Neither happens; the
            // request is dropped, loudly. (POST /api/v1/jobs answers 409 for the same case.)
            LOG.warnf(
                    "job id %s is already used by another job (ingested %s); this different"
                            + " request from %s is ignored: submit it with a new job_id",
                    job.getJobId(), previous.get().getRaw().getUri(), event.source());
            reusedIds.increment();
            return;
        }
        if (previous.isPresent()) {
            LOG.infof("dataset already ingested; announcing it again");
            publisher.sendAndWait(ingested, previous.get(), event);
            return;
        }
        status(
                job.getJobId(),
                JobStatus.JOB_STATUS_INGESTING,
                "fetching and validating the dataset");
        try {
            DatasetIngested result =
                    ingestion.ingest(
                            job, (percent, records) -> progress(job.getJobId(), percent, records));
            LOG.infof(
                    "dataset ingested: %d valid, %d bad %s records, labels %s, raw %s (sha256 %s)",
                    result.getValidRecords(),
                    result.getBadRecords(),
                    result.getRecordShape(),
                    result.getLabelCountsMap(),
                    result.getRaw().getUri(),
                    result.getRaw().getSha256());
            publisher.sendAndWait(ingested, result, event);
        } catch (DatasetInvalidException e) {
            fail(job.getJobId(), e.code(), e.getMessage(), e.details());
        } catch (IOException | RuntimeException e) {
            fail(
                    job.getJobId(),
                    "INGESTION_FAILED",
                    "ingestion failed: " + e.getMessage(),
                    List.of());
        }
    }

    /**
     * Whether two requests are the same job: equal but for when they were sent, so a client that
     * retries its request is not refused.
     */
    static boolean sameJob(JobRequested a, JobRequested b) {
        return a.toBuilder()
                .clearRequestedAt()
                .build()
                .equals(b.toBuilder().clearRequestedAt().build());
    }

    /** A progress event; one that cannot be sent is logged, it does not fail the job. */
    private void progress(String jobId, double percent, long records) {
        try {
            publisher.sendAndWait(
                    status,
                    JobStatusChanged.newBuilder()
                            .setJobId(jobId)
                            .setStatus(JobStatus.JOB_STATUS_INGESTING)
                            .setStage(Stage.STAGE_INGESTION)
                            .setPercentDone(percent)
                            .setMessage(progressMessage(percent, records))
                            .setChangedAt(Timestamps.now())
                            .build());
        } catch (RuntimeException e) {
            LOG.warnf("progress event not sent (%s); validation goes on", e.getMessage());
        }
    }

    /** E.g. "validated 1,234,567 records (42%)". */
    static String progressMessage(double percent, long records) {
        return String.format(
                java.util.Locale.ROOT, "validated %,d records (%d%%)", records, (int) percent);
    }

    private void status(String jobId, JobStatus newStatus, String message) {
        publisher.sendAndWait(
                status,
                JobStatusChanged.newBuilder()
                        .setJobId(jobId)
                        .setStatus(newStatus)
                        .setStage(Stage.STAGE_INGESTION)
                        .setMessage(message)
                        .setChangedAt(Timestamps.now())
                        .build());
    }

    private void fail(String jobId, String code, String message, List<String> details) {
        LOG.warnf("dataset rejected: %s", message);
        publisher.sendAndWait(
                status,
                JobFailed.newBuilder()
                        .setJobId(jobId)
                        .setStage(Stage.STAGE_INGESTION)
                        .setErrorCode(code)
                        .setMessage(message)
                        .addAllDetails(details)
                        .setFailedAt(Timestamps.now())
                        .build());
    }
}
