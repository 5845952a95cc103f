package io.tuneline.ingestion.intake;

import com.google.protobuf.util.Timestamps;
import io.tuneline.common.event.IncomingEvent;
import io.tuneline.common.job.JobSpecValidator;
import io.tuneline.common.messaging.EventPublisher;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.JobStatus;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.proto.v1.MethodSpec;
import io.tuneline.proto.v1.Stage;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.util.List;
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

    @Inject
    public JobIntake(EventPublisher publisher, @Channel("job-status") Emitter<byte[]> status) {
        this.publisher = publisher;
        this.status = status;
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
                job.getMethod().getKindCase() == MethodSpec.KindCase.KIND_NOT_SET
                        ? "FULL"
                        : job.getMethod().getKindCase(),
                job.getDataset().getSourceCase() == DatasetSpec.SourceCase.URI
                        ? job.getDataset().getUri()
                        : "inline ("
                                + job.getDataset().getInline().getRecordsCount()
                                + " records)");
        publisher.sendAndWait(
                status,
                JobStatusChanged.newBuilder()
                        .setJobId(job.getJobId())
                        .setStatus(JobStatus.JOB_STATUS_QUEUED)
                        .setStage(Stage.STAGE_INGESTION)
                        .setMessage("accepted by ingestion")
                        .setChangedAt(Timestamps.now())
                        .build());
    }
}
