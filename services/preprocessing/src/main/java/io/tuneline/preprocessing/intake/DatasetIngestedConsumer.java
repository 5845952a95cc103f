package io.tuneline.preprocessing.intake;

import com.google.protobuf.util.JsonFormat;
import com.google.protobuf.util.Timestamps;
import io.smallrye.reactive.messaging.annotations.Blocking;
import io.tuneline.common.event.IncomingEvent;
import io.tuneline.common.job.ProgressThrottle;
import io.tuneline.common.messaging.EventPublisher;
import io.tuneline.common.messaging.InboundEvents;
import io.tuneline.common.messaging.StageRunner;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.preprocessing.config.PreprocessingConfig;
import io.tuneline.preprocessing.metrics.PreprocessingMetrics;
import io.tuneline.preprocessing.prepare.DatasetPreparation;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.JobStatus;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.proto.v1.Stage;
import jakarta.annotation.PreDestroy;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.eclipse.microprofile.reactive.messaging.Channel;
import org.eclipse.microprofile.reactive.messaging.Emitter;
import org.eclipse.microprofile.reactive.messaging.Incoming;
import org.jboss.logging.Logger;

/**
 * {@code finetune.datasets.ingested}: cleans and splits the dataset, then announces it. A marker
 * written after the announcement keeps a redelivered event from preparing the job twice.
 */
@ApplicationScoped
public class DatasetIngestedConsumer {
    private static final Logger LOG = Logger.getLogger(DatasetIngestedConsumer.class);

    private final InboundEvents inbound;
    private final EventPublisher publisher;
    private final Emitter<byte[]> status;
    private final Emitter<byte[]> prepared;
    private final ArtifactStore store;
    private final DatasetPreparation preparation;
    private final PreprocessingMetrics metrics;
    private final Duration progressInterval;
    private final StageRunner stages;

    @Inject
    public DatasetIngestedConsumer(
            InboundEvents inbound,
            EventPublisher publisher,
            @Channel("job-status") Emitter<byte[]> status,
            @Channel("datasets-prepared") Emitter<byte[]> prepared,
            ArtifactStore store,
            PreprocessingConfig config,
            PreprocessingMetrics metrics,
            StageRunner stages) {
        this.stages = stages;
        this.inbound = inbound;
        this.publisher = publisher;
        this.status = status;
        this.prepared = prepared;
        this.store = store;
        this.preparation = new DatasetPreparation(store, config.settings());
        this.metrics = metrics;
        this.progressInterval = config.progressInterval();
    }

    @PreDestroy
    void close() {
        preparation.close();
    }

    @Incoming("datasets-ingested")
    @Blocking(value = StageRunner.POOL, ordered = false)
    public void consume(ConsumerRecord<String, byte[]> record) {
        inbound.handle(
                "preprocessing.datasets-ingested",
                record,
                DatasetIngested.getDefaultInstance(),
                e ->
                        stages.run(
                                "preprocessing",
                                Stage.STAGE_PREPROCESSING,
                                e,
                                status,
                                () -> prepare(e)));
    }

    private void status(String jobId, double percent, String message) {
        publisher.sendAndWait(
                status,
                JobStatusChanged.newBuilder()
                        .setJobId(jobId)
                        .setStatus(JobStatus.JOB_STATUS_PREPROCESSING)
                        .setStage(Stage.STAGE_PREPROCESSING)
                        .setMessage(message)
                        .setPercentDone(percent)
                        .setChangedAt(Timestamps.now())
                        .build());
    }

    private void prepare(IncomingEvent<DatasetIngested> event) {
        DatasetIngested ingested = event.payload();
        String jobId = ingested.getJobId();
        var marker = store.uri("datasets/" + jobId + "/prepared.json");
        if (store.exists(marker)) {
            LOG.infof("dataset already prepared; skipped");
            return;
        }
        status(jobId, 0, "cleaning, deduplicating, splitting and tokenizing");
        ProgressThrottle throttle = new ProgressThrottle(10, progressInterval);
        try {
            long started = System.nanoTime();
            DatasetPrepared result =
                    preparation.prepare(
                            ingested,
                            (percent, message) -> {
                                if (throttle.due(percent)) {
                                    LOG.infof("%.0f%% done: %s", percent, message);
                                    status(jobId, percent, message);
                                }
                            });
            metrics.prepared(
                    result,
                    (ingested.hasRecords() ? ingested.getRecords() : ingested.getRaw())
                            .getSizeBytes(),
                    Duration.ofNanos(System.nanoTime() - started));
            publisher.sendAndWait(prepared, result, event);
            store.put(
                    marker,
                    JsonFormat.printer().print(result).getBytes(StandardCharsets.UTF_8),
                    "application/json");
            LOG.infof(
                    "dataset prepared: train %d, validation %d, test %d; %d duplicates, %d near-duplicates, %d test leakage, %d empty removed; %d truncated to max_seq_length",
                    result.getCounts().getTrain(),
                    result.getCounts().getValidation(),
                    result.getCounts().getTest(),
                    result.getStats().getExactDuplicatesRemoved(),
                    result.getStats().getNearDuplicatesRemoved(),
                    result.getStats().getLeakageRemoved(),
                    result.getStats().getEmptyRemoved(),
                    result.getStats().getTruncatedExamples());
        } catch (Exception | LinkageError e) {
            // A LinkageError is the tokenizer's native library failing to load: the job must
            // still fail visibly rather than its event going to the dead-letter topic unexplained.
            LOG.warnf(e, "preprocessing failed: %s", e.getMessage());
            publisher.sendAndWait(
                    status,
                    JobFailed.newBuilder()
                            .setJobId(jobId)
                            .setStage(Stage.STAGE_PREPROCESSING)
                            .setErrorCode("PREPROCESSING_FAILED")
                            .setMessage(
                                    "preprocessing failed: "
                                            + (e.getMessage() == null
                                                    ? e.getClass().getSimpleName()
                                                    : e.getMessage()))
                            .setFailedAt(Timestamps.now())
                            .build());
        }
    }
}
