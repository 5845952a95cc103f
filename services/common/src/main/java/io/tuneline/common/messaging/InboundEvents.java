package io.tuneline.common.messaging;

import com.google.protobuf.Message;
import io.micrometer.core.instrument.MeterRegistry;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.event.IdempotencyGuard;
import io.tuneline.common.event.IncomingEvent;
import io.tuneline.common.event.InvalidEventException;
import io.tuneline.common.observability.JobLogContext;
import io.tuneline.common.observability.MetricNames;
import jakarta.inject.Inject;
import jakarta.inject.Singleton;
import java.util.List;
import java.util.function.Consumer;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.jboss.logging.Logger;

/**
 * What every consumer does before its own work: decode the record, put the job id into the log
 * context, skip a redelivered event, count the outcome. A record that cannot be decoded, or whose
 * work throws, propagates the exception so SmallRye sends it to the channel's dead-letter topic and
 * goes on with the next record.
 */
@Singleton
public class InboundEvents {
    private static final Logger LOG = Logger.getLogger(InboundEvents.class);

    private final EventCodec codec;
    private final IdempotencyGuard guard;
    private final MeterRegistry registry;

    @Inject
    public InboundEvents(EventCodec codec, IdempotencyGuard guard, MeterRegistry registry) {
        this.codec = codec;
        this.guard = guard;
        this.registry = registry;
    }

    /**
     * Decodes {@code record} as {@code type} and runs {@code work} once per event id.
     *
     * @param consumer name of the consuming flow; scopes the idempotency key
     * @return whether the work ran (false for a duplicate)
     */
    @SuppressWarnings("unchecked")
    public <T extends Message> boolean handle(
            String consumer,
            ConsumerRecord<String, byte[]> record,
            T type,
            Consumer<IncomingEvent<T>> work) {
        return handleAny(consumer, record, List.of(type), e -> work.accept((IncomingEvent<T>) e));
    }

    /**
     * Like {@link #handle} for a record that may carry any of {@code accepted} (a topic with
     * several event types, or a consumer of several topics); the record's {@code ce_type} picks.
     */
    public boolean handleAny(
            String consumer,
            ConsumerRecord<String, byte[]> record,
            List<? extends Message> accepted,
            Consumer<IncomingEvent<Message>> work) {
        IncomingEvent<Message> event;
        try {
            event = codec.decodeAny(record, accepted);
        } catch (InvalidEventException e) {
            count(record.topic(), typeOf(record, accepted), MetricNames.OUTCOME_INVALID);
            LOG.warnf(
                    "%s: invalid record sent to the dead-letter topic: %s",
                    consumer, e.getMessage());
            throw e;
        }
        String typeName = event.type();
        try (JobLogContext ignored = JobLogContext.of(event.jobId())) {
            boolean ran = guard.runOnce(consumer + "/" + event.id(), () -> work.accept(event));
            if (ran) {
                count(record.topic(), typeName, MetricNames.OUTCOME_PROCESSED);
            } else {
                count(record.topic(), typeName, MetricNames.OUTCOME_DUPLICATE);
                LOG.infof(
                        "%s: event %s at %s already processed; skipped",
                        consumer, event.id(), event.position());
            }
            return ran;
        } catch (RuntimeException e) {
            count(record.topic(), typeName, MetricNames.OUTCOME_FAILED);
            throw e;
        }
    }

    /** The type an undecodable record claimed, if it is one of {@code accepted}; else the first. */
    private static String typeOf(
            ConsumerRecord<String, byte[]> record, List<? extends Message> accepted) {
        var header = record.headers().lastHeader(io.tuneline.common.event.CloudEventHeaders.TYPE);
        String claimed =
                header == null
                        ? ""
                        : new String(header.value(), java.nio.charset.StandardCharsets.UTF_8);
        return accepted.stream()
                .map(m -> m.getDescriptorForType().getFullName())
                .filter(claimed::equals)
                .findFirst()
                .orElse(accepted.get(0).getDescriptorForType().getFullName());
    }

    private void count(String topic, String type, String outcome) {
        registry.counter(
                        MetricNames.EVENTS_CONSUMED,
                        MetricNames.TAG_TOPIC,
                        topic,
                        MetricNames.TAG_TYPE,
                        type,
                        MetricNames.TAG_OUTCOME,
                        outcome)
                .increment();
    }
}
