package io.tuneline.common.event;

/**
 * A record that cannot be turned into a valid event: bad JSON or protobuf, a field of the wrong
 * type, an unknown event type, a missing job id. Consumers let it propagate so the record goes to
 * the channel's dead-letter topic with this message as its {@code dead-letter-reason}.
 */
public class InvalidEventException extends RuntimeException {
    public InvalidEventException(String message) {
        super(message);
    }

    public InvalidEventException(String message, Throwable cause) {
        super(message, cause);
    }
}
