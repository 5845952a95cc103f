package io.tuneline.common.event;

import com.google.protobuf.Message;
import java.time.Instant;

/**
 * A decoded event with its CloudEvents attributes and where it was read from.
 *
 * @param id {@code ce_id}; when the producer sent none (a plain kcat publish), {@code sha256:} of
 *     the payload, so a redelivered record still has the same id
 * @param subject {@code ce_subject}, always the job id
 */
public record IncomingEvent<T extends Message>(
        String id,
        String type,
        String source,
        String subject,
        Instant time,
        ContentType contentType,
        T payload,
        String topic,
        int partition,
        long offset) {

    /** The job this event belongs to. */
    public String jobId() {
        return subject;
    }

    /** Where the record was read from, for log lines and error messages. */
    public String position() {
        return topic + "-" + partition + "@" + offset;
    }
}
