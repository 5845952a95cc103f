package io.tuneline.common.messaging;

import com.google.protobuf.Message;
import io.micrometer.core.instrument.MeterRegistry;
import io.smallrye.reactive.messaging.kafka.api.OutgoingKafkaRecordMetadata;
import io.tuneline.common.event.ContentType;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.event.EventTypes;
import io.tuneline.common.event.OutgoingEvent;
import io.tuneline.common.observability.MetricNames;
import jakarta.inject.Inject;
import jakarta.inject.Singleton;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.eclipse.microprofile.reactive.messaging.Emitter;
import org.eclipse.microprofile.reactive.messaging.Metadata;

/**
 * Sends platform events through a SmallRye {@link Emitter} as CloudEvents with the job id as key.
 */
@Singleton
public class EventPublisher {
    /**
     * Longer than the producer's own {@code delivery.timeout.ms} (Kafka's default, 120 s), during
     * which it keeps retrying a record while the broker is away: waiting less would report as
     * failed a record the producer still delivers afterwards (a broker killed and restarted in
     * 30-60 s did exactly that: an evaluation reported failed, then its result arrived too).
     */
    private static final Duration SEND_TIMEOUT = Duration.ofSeconds(150);

    private final EventCodec codec;
    private final MeterRegistry registry;

    @Inject
    public EventPublisher(EventCodec codec, MeterRegistry registry) {
        this.codec = codec;
        this.registry = registry;
    }

    /** Sends and returns a future that completes when the broker has acknowledged the event. */
    public CompletableFuture<Void> send(Emitter<byte[]> emitter, Message payload) {
        OutgoingEvent event = codec.encode(payload, ContentType.JSON);
        RecordHeaders headers = new RecordHeaders();
        event.headers().forEach((k, v) -> headers.add(k, v.getBytes(StandardCharsets.UTF_8)));
        OutgoingKafkaRecordMetadata<String> metadata =
                OutgoingKafkaRecordMetadata.<String>builder()
                        .withKey(event.key())
                        .withHeaders(headers)
                        .build();
        CompletableFuture<Void> acked = new CompletableFuture<>();
        emitter.send(
                org.eclipse.microprofile.reactive.messaging.Message.of(
                        event.value(),
                        Metadata.of(metadata),
                        () -> {
                            acked.complete(null);
                            return CompletableFuture.completedFuture(null);
                        },
                        failure -> {
                            acked.completeExceptionally(failure);
                            return CompletableFuture.completedFuture(null);
                        }));
        return acked.thenRun(
                () ->
                        registry.counter(
                                        MetricNames.EVENTS_PUBLISHED,
                                        MetricNames.TAG_TYPE,
                                        EventTypes.typeOf(payload))
                                .increment());
    }

    /**
     * Sends and waits for the broker's acknowledgement, so a consumer acknowledges its input only
     * once its output is safe.
     */
    public void sendAndWait(Emitter<byte[]> emitter, Message payload) {
        try {
            send(emitter, payload).get(SEND_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted sending " + EventTypes.typeOf(payload), e);
        } catch (ExecutionException | TimeoutException e) {
            throw new IllegalStateException(
                    "could not send "
                            + EventTypes.typeOf(payload)
                            + " for job "
                            + EventCodec.jobIdOf(payload)
                            + ": "
                            + e.getMessage(),
                    e);
        }
    }
}
