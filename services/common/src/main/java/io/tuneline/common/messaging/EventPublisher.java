package io.tuneline.common.messaging;

import com.google.protobuf.Message;
import io.micrometer.core.instrument.MeterRegistry;
import io.smallrye.reactive.messaging.kafka.api.OutgoingKafkaRecordMetadata;
import io.tuneline.common.event.ContentType;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.event.EventTypes;
import io.tuneline.common.event.IncomingEvent;
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
        return send(emitter, payload, java.util.UUID.randomUUID().toString());
    }

    private CompletableFuture<Void> send(Emitter<byte[]> emitter, Message payload, String id) {
        OutgoingEvent event = codec.encode(payload, ContentType.JSON, id);
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
        sendAndWait(emitter, payload, java.util.UUID.randomUUID().toString());
    }

    /**
     * Sends a stage's result for {@code cause}, its input, and waits: under an id derived from the
     * input's id and the result's type, so a stage done again for the same input (its service
     * killed after the result was sent and before the input's offset was committed: the input is
     * delivered again) announces its result under the id it had, and every consumer's check of the
     * id drops the second copy, the registry's job timeline among them.
     */
    public void sendAndWait(Emitter<byte[]> emitter, Message payload, IncomingEvent<?> cause) {
        sendAndWait(emitter, payload, resultId(cause, payload));
    }

    /** The id of the {@code payload}-typed result of {@code cause}. */
    public static String resultId(IncomingEvent<?> cause, Message payload) {
        return java.util
                .UUID
                .nameUUIDFromBytes(
                        (cause.id() + "/" + EventTypes.typeOf(payload))
                                .getBytes(StandardCharsets.UTF_8))
                .toString();
    }

    private void sendAndWait(Emitter<byte[]> emitter, Message payload, String id) {
        try {
            send(emitter, payload, id).get(SEND_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
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
