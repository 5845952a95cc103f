package io.tuneline.common.event;

import java.util.Map;

/**
 * An encoded event ready to be sent: key (the job id), CloudEvents headers and the payload bytes.
 */
public record OutgoingEvent(String key, Map<String, String> headers, byte[] value) {
    public OutgoingEvent {
        headers = Map.copyOf(headers);
    }
}
