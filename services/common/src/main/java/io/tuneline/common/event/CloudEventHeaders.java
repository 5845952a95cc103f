package io.tuneline.common.event;

/**
 * Kafka header names of the CloudEvents Kafka protocol binding, binary content mode (CloudEvents
 * 1.0, "kafka-protocol-binding.md" section 3.2): every attribute is a header prefixed with {@code
 * ce_}, the payload is the record value and {@code content-type} says how it is encoded.
 */
public final class CloudEventHeaders {
    public static final String SPEC_VERSION = "ce_specversion";
    public static final String ID = "ce_id";
    public static final String TYPE = "ce_type";
    public static final String SOURCE = "ce_source";
    public static final String SUBJECT = "ce_subject";
    public static final String TIME = "ce_time";
    public static final String CONTENT_TYPE = "content-type";

    public static final String SPEC_VERSION_1_0 = "1.0";

    private CloudEventHeaders() {}
}
