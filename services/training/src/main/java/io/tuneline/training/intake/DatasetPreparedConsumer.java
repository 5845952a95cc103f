package io.tuneline.training.intake;

import io.smallrye.reactive.messaging.annotations.Blocking;
import io.tuneline.common.messaging.InboundEvents;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.training.run.TrainingController;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.eclipse.microprofile.reactive.messaging.Incoming;

/**
 * {@code finetune.datasets.prepared}: queues the job's training and acknowledges at once; the run
 * is followed by the controller, never by holding the record.
 */
@ApplicationScoped
public class DatasetPreparedConsumer {
    private final InboundEvents inbound;
    private final TrainingController controller;

    @Inject
    public DatasetPreparedConsumer(InboundEvents inbound, TrainingController controller) {
        this.inbound = inbound;
        this.controller = controller;
    }

    @Incoming("datasets-prepared")
    @Blocking
    public void consume(ConsumerRecord<String, byte[]> record) {
        inbound.handle(
                "training.datasets-prepared",
                record,
                DatasetPrepared.getDefaultInstance(),
                e -> controller.submit(e.payload()));
    }
}
