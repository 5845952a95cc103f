package io.tuneline.serving.load;

import com.google.protobuf.Message;
import io.smallrye.reactive.messaging.annotations.Blocking;
import io.smallrye.reactive.messaging.kafka.KafkaRecord;
import io.smallrye.reactive.messaging.kafka.api.IncomingKafkaRecordMetadata;
import io.tuneline.common.event.EventTypes;
import io.tuneline.common.event.IncomingEvent;
import io.tuneline.common.event.InvalidEventException;
import io.tuneline.common.messaging.InboundEvents;
import io.tuneline.proto.v1.ModelChanged;
import io.tuneline.proto.v1.ModelRegistered;
import jakarta.enterprise.context.ApplicationScoped;
import java.util.concurrent.CompletionStage;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.eclipse.microprofile.reactive.messaging.Incoming;
import org.jboss.logging.Logger;

/**
 * The registry's announcements: a version registered ({@code ModelRegistered}: the latest version
 * and any alias the job set may now name it) or a stage or alias changed over its API ({@code
 * ModelChanged}). Each makes this instance resolve the names and aliases it serves of that model
 * again at once, so {@code name:production} follows a promotion when it is announced, not at the
 * next poll.
 *
 * <p>Every serving instance must see every announcement, so each reads in a consumer group of its
 * own from the newest record on (what happened before it started, it resolves on first use). A
 * record it cannot read is logged and skipped rather than dead-lettered: the registry owns these
 * topics, and one copy per serving instance in the dead-letter topic would only confuse; the poll
 * still catches up.
 */
@ApplicationScoped
public class RegistryEvents {
    private static final Logger LOG = Logger.getLogger(RegistryEvents.class);

    private final InboundEvents inbound;
    private final LoadedModels models;

    public RegistryEvents(InboundEvents inbound, LoadedModels models) {
        this.inbound = inbound;
        this.models = models;
    }

    @Incoming("registry-events")
    @Blocking
    public CompletionStage<Void> consume(KafkaRecord<String, byte[]> message) {
        ConsumerRecord<String, byte[]> record =
                message.getMetadata(IncomingKafkaRecordMetadata.class).orElseThrow().getRecord();
        try {
            inbound.handleAny(
                    "serving.registry-events",
                    record,
                    EventTypes.forTopic(record.topic()),
                    this::follow);
        } catch (InvalidEventException e) {
            LOG.warnf(
                    "%s-%d@%d is not a valid registry event, skipped: %s",
                    record.topic(), record.partition(), record.offset(), e.getMessage());
        } catch (RuntimeException e) {
            LOG.warnf(
                    e,
                    "%s-%d@%d could not be followed; the next poll resolves the model again",
                    record.topic(),
                    record.partition(),
                    record.offset());
        }
        return message.ack();
    }

    private void follow(IncomingEvent<Message> event) {
        String model;
        if (event.payload() instanceof ModelRegistered r) {
            model = r.getModelName();
        } else if (event.payload() instanceof ModelChanged c) {
            model = c.getModelName();
        } else {
            return;
        }
        int served = models.followModel(model);
        if (served > 0) {
            LOG.infof(
                    "%s: %s changed in the registry; its %d name(s) served resolved again",
                    event.type(), model, served);
        }
    }
}
