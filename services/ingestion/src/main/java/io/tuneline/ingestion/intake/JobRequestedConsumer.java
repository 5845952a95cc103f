package io.tuneline.ingestion.intake;

import io.smallrye.reactive.messaging.annotations.Blocking;
import io.tuneline.common.messaging.InboundEvents;
import io.tuneline.proto.v1.JobRequested;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.eclipse.microprofile.reactive.messaging.Incoming;

/**
 * Entry point of a job into the platform: reads {@code finetune.jobs.requested}. A record that is
 * not a valid {@link JobRequested} goes to {@code finetune.jobs.requested.dlq} with the reason; the
 * consumer then goes on with the next record.
 */
@ApplicationScoped
public class JobRequestedConsumer {
    static final String FLOW = "ingestion.jobs-requested";

    private final InboundEvents inbound;
    private final JobIntake intake;

    @Inject
    public JobRequestedConsumer(InboundEvents inbound, JobIntake intake) {
        this.inbound = inbound;
        this.intake = intake;
    }

    @Incoming("jobs-requested")
    @Blocking
    public void consume(ConsumerRecord<String, byte[]> record) {
        inbound.handle(FLOW, record, JobRequested.getDefaultInstance(), intake::accept);
    }
}
