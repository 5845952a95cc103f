package io.tuneline.training.intake;

import io.smallrye.reactive.messaging.annotations.Blocking;
import io.tuneline.common.messaging.InboundEvents;
import io.tuneline.proto.v1.CancelJob;
import io.tuneline.training.run.TrainingController;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.eclipse.microprofile.reactive.messaging.Incoming;

/** {@code finetune.jobs.control}: cancels a job's queued or running training. */
@ApplicationScoped
public class JobControlConsumer {
    private final InboundEvents inbound;
    private final TrainingController controller;

    @Inject
    public JobControlConsumer(InboundEvents inbound, TrainingController controller) {
        this.inbound = inbound;
        this.controller = controller;
    }

    @Incoming("jobs-control")
    @Blocking
    public void consume(ConsumerRecord<String, byte[]> record) {
        inbound.handle(
                "training.jobs-control",
                record,
                CancelJob.getDefaultInstance(),
                e -> controller.cancel(e.payload()));
    }
}
