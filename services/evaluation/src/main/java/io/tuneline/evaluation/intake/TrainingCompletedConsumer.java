package io.tuneline.evaluation.intake;

import io.smallrye.reactive.messaging.annotations.Blocking;
import io.tuneline.common.messaging.InboundEvents;
import io.tuneline.common.messaging.StageRunner;
import io.tuneline.evaluation.run.Evaluator;
import io.tuneline.proto.v1.Stage;
import io.tuneline.proto.v1.TrainingCompleted;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.eclipse.microprofile.reactive.messaging.Channel;
import org.eclipse.microprofile.reactive.messaging.Emitter;
import org.eclipse.microprofile.reactive.messaging.Incoming;

/**
 * {@code finetune.training.completed}: evaluates the trained model. Evaluations run side by side on
 * the stage pool; one that takes an hour holds up no other job.
 */
@ApplicationScoped
public class TrainingCompletedConsumer {
    private final InboundEvents inbound;
    private final Evaluator evaluator;
    private final StageRunner stages;
    private final Emitter<byte[]> status;

    @Inject
    public TrainingCompletedConsumer(
            InboundEvents inbound,
            Evaluator evaluator,
            StageRunner stages,
            @Channel("job-status") Emitter<byte[]> status) {
        this.inbound = inbound;
        this.evaluator = evaluator;
        this.stages = stages;
        this.status = status;
    }

    @Incoming("training-completed")
    @Blocking(value = StageRunner.POOL, ordered = false)
    public void consume(ConsumerRecord<String, byte[]> record) {
        inbound.handle(
                "evaluation.training-completed",
                record,
                TrainingCompleted.getDefaultInstance(),
                e ->
                        stages.run(
                                // A comparison's methods are evaluated side by side, each its
                                // own stage: one's crash or lease does not hold up another's.
                                e.payload().getComparedMethod().isEmpty()
                                        ? "evaluation"
                                        : "evaluation." + e.payload().getComparedMethod(),
                                Stage.STAGE_EVALUATION,
                                e,
                                status,
                                () -> evaluator.evaluate(e.payload())));
    }
}
