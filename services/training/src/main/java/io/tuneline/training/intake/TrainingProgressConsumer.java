package io.tuneline.training.intake;

import io.smallrye.reactive.messaging.annotations.Blocking;
import io.tuneline.common.messaging.InboundEvents;
import io.tuneline.proto.v1.TrainingProgress;
import io.tuneline.training.progress.TrainingMetrics;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.eclipse.microprofile.reactive.messaging.Incoming;

/**
 * {@code finetune.training.progress}, written by the workers: the same numbers as Prometheus gauges
 * tagged by job id while the run is live (workers on Kubernetes are not scraped).
 */
@ApplicationScoped
public class TrainingProgressConsumer {
    private final InboundEvents inbound;
    private final TrainingMetrics metrics;

    @Inject
    public TrainingProgressConsumer(InboundEvents inbound, TrainingMetrics metrics) {
        this.inbound = inbound;
        this.metrics = metrics;
    }

    @Incoming("training-progress")
    @Blocking
    public void consume(ConsumerRecord<String, byte[]> record) {
        inbound.handle(
                "training.training-progress",
                record,
                TrainingProgress.getDefaultInstance(),
                e -> metrics.progress(e.payload()));
    }
}
