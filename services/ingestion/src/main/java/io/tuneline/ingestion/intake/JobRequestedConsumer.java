package io.tuneline.ingestion.intake;

import io.smallrye.reactive.messaging.annotations.Blocking;
import io.tuneline.common.messaging.InboundEvents;
import io.tuneline.common.messaging.StageRunner;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.Stage;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.eclipse.microprofile.reactive.messaging.Channel;
import org.eclipse.microprofile.reactive.messaging.Emitter;
import org.eclipse.microprofile.reactive.messaging.Incoming;

/**
 * Entry point of a job into the platform: reads {@code finetune.jobs.requested}. A record that is
 * not a valid {@link JobRequested} goes to {@code finetune.jobs.requested.dlq} with the reason; the
 * consumer then goes on with the next record. Jobs are ingested side by side on the stage pool, so
 * a large download holds up only its own job.
 */
@ApplicationScoped
public class JobRequestedConsumer {
    static final String FLOW = "ingestion.jobs-requested";

    private final InboundEvents inbound;
    private final JobIntake intake;
    private final StageRunner stages;
    private final Emitter<byte[]> status;

    @Inject
    public JobRequestedConsumer(
            InboundEvents inbound,
            JobIntake intake,
            StageRunner stages,
            @Channel("job-status") Emitter<byte[]> status) {
        this.inbound = inbound;
        this.intake = intake;
        this.stages = stages;
        this.status = status;
    }

    @Incoming("jobs-requested")
    @Blocking(value = StageRunner.POOL, ordered = false)
    public void consume(ConsumerRecord<String, byte[]> record) {
        inbound.handle(
                FLOW,
                record,
                JobRequested.getDefaultInstance(),
                e ->
                        stages.run(
                                "ingestion",
                                Stage.STAGE_INGESTION,
                                e,
                                status,
                                () -> intake.accept(e)));
    }
}
