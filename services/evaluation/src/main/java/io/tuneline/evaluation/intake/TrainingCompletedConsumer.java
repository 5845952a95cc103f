package io.tuneline.evaluation.intake;

import io.smallrye.reactive.messaging.annotations.Blocking;
import io.tuneline.common.messaging.InboundEvents;
import io.tuneline.evaluation.run.Evaluator;
import io.tuneline.proto.v1.TrainingCompleted;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.eclipse.microprofile.reactive.messaging.Incoming;

/** {@code finetune.training.completed}: evaluates the trained model. */
@ApplicationScoped
public class TrainingCompletedConsumer {
    private final InboundEvents inbound;
    private final Evaluator evaluator;

    @Inject
    public TrainingCompletedConsumer(InboundEvents inbound, Evaluator evaluator) {
        this.inbound = inbound;
        this.evaluator = evaluator;
    }

    @Incoming("training-completed")
    @Blocking
    public void consume(ConsumerRecord<String, byte[]> record) {
        inbound.handle(
                "evaluation.training-completed",
                record,
                TrainingCompleted.getDefaultInstance(),
                e -> evaluator.evaluate(e.payload()));
    }
}
