package io.tuneline.registry.intake;

import com.google.protobuf.Message;
import io.smallrye.reactive.messaging.annotations.Blocking;
import io.smallrye.reactive.messaging.kafka.KafkaRecord;
import io.smallrye.reactive.messaging.kafka.api.IncomingKafkaRecordMetadata;
import io.smallrye.reactive.messaging.kafka.api.OutgoingKafkaRecordMetadata;
import io.tuneline.common.event.EventTypes;
import io.tuneline.common.event.IncomingEvent;
import io.tuneline.common.messaging.InboundEvents;
import io.tuneline.common.topic.Topics;
import io.tuneline.proto.v1.EvaluationCompleted;
import io.tuneline.registry.jobs.JobEventBus;
import io.tuneline.registry.jobs.JobEventView;
import io.tuneline.registry.jobs.JobReadModel;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.util.Optional;
import java.util.concurrent.CompletionStage;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.eclipse.microprofile.reactive.messaging.Incoming;
import org.eclipse.microprofile.reactive.messaging.Metadata;

/**
 * Every pipeline topic: folds each event into the job read-model, streams it to live watchers, and
 * registers a model version when an evaluation completes. A record that cannot be handled goes to
 * its own topic's dead-letter twin ({@code <topic>.dlq}), like every other consumer's.
 */
@ApplicationScoped
public class PipelineEventsConsumer {
    private static final org.jboss.logging.Logger LOG =
            org.jboss.logging.Logger.getLogger(PipelineEventsConsumer.class);

    private final InboundEvents inbound;
    private final JobReadModel readModel;
    private final JobEventBus bus;
    private final EvaluationRegistration registration;

    @Inject
    public PipelineEventsConsumer(
            InboundEvents inbound,
            JobReadModel readModel,
            JobEventBus bus,
            EvaluationRegistration registration) {
        this.inbound = inbound;
        this.readModel = readModel;
        this.bus = bus;
        this.registration = registration;
    }

    @Incoming("pipeline-events")
    @Blocking
    @SuppressWarnings("unchecked")
    public CompletionStage<Void> consume(KafkaRecord<String, byte[]> message) {
        ConsumerRecord<String, byte[]> record =
                message.getMetadata(IncomingKafkaRecordMetadata.class).orElseThrow().getRecord();
        try {
            inbound.handleAny(
                    "registry.pipeline",
                    record,
                    EventTypes.forTopic(record.topic()),
                    this::process);
            return message.ack();
        } catch (io.tuneline.common.event.InvalidEventException e) {
            // The registry reads every topic but owns none: the topic's own consumer sends the
            // record to its dead-letter topic, so a second copy from here would only confuse.
            LOG.infof(
                    "%s-%d@%d is not a valid event, skipped (its own consumer dead-letters it): %s",
                    record.topic(), record.partition(), record.offset(), e.getMessage());
            return message.ack();
        } catch (RuntimeException e) {
            if (shuttingDown) {
                // The database or the emitters are closing under us: the record is fine. Leave
                // it unacknowledged so it is delivered again after the restart, not dead-lettered.
                LOG.infof(
                        "%s-%d@%d left for redelivery: the service is stopping (%s)",
                        record.topic(), record.partition(), record.offset(), e.getMessage());
                return new java.util.concurrent.CompletableFuture<>();
            }
            LOG.warnf(
                    e,
                    "%s-%d@%d goes to %s",
                    record.topic(),
                    record.partition(),
                    record.offset(),
                    Topics.dlq(record.topic()));
            return message.nack(
                    e,
                    Metadata.of(
                            OutgoingKafkaRecordMetadata.<String>builder()
                                    .withTopic(Topics.dlq(record.topic()))
                                    .build()));
        }
    }

    private volatile boolean shuttingDown;

    void onStop(@jakarta.enterprise.event.Observes io.quarkus.runtime.ShutdownEvent event) {
        shuttingDown = true;
    }

    private void process(IncomingEvent<Message> event) {
        Optional<JobEventView> applied = readModel.apply(event);
        applied.ifPresent(bus::publish);
        if (event.payload() instanceof EvaluationCompleted evaluation) {
            registration.handle(evaluation, applied.isPresent());
        }
    }
}
