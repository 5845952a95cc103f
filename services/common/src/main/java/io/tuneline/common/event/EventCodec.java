package io.tuneline.common.event;

import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.util.JsonFormat;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Clock;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;

/**
 * Reads and writes platform events as CloudEvents in Kafka binary mode: attributes in {@code ce_*}
 * headers, the payload as the protobuf JSON mapping (default) or binary protobuf, chosen by {@code
 * content-type}.
 *
 * <p>Reading is forgiving about what a person with kcat can leave out and strict about everything
 * else: without {@code ce_type} the type is the one the topic carries, without {@code ce_id} the id
 * is the payload's sha256, without {@code content-type} the payload is JSON. A wrong field type, a
 * misspelt field in a user-authored event, a missing job id, or a key that is not the job id make
 * the record invalid.
 */
public final class EventCodec {
    private static final String JOB_ID_FIELD = "job_id";

    private final String source;
    private final Clock clock;
    private final JsonFormat.Printer printer =
            JsonFormat.printer().preservingProtoFieldNames().omittingInsignificantWhitespace();
    private final JsonFormat.Parser strictParser = JsonFormat.parser();
    private final JsonFormat.Parser lenientParser = JsonFormat.parser().ignoringUnknownFields();

    /**
     * @param source the {@code ce_source} of events this codec writes, e.g. {@code
     *     /tuneline/ingestion}
     */
    public EventCodec(String source) {
        this(source, Clock.systemUTC());
    }

    public EventCodec(String source, Clock clock) {
        this.source = source;
        this.clock = clock;
    }

    /** Encodes as the protobuf JSON mapping. */
    public OutgoingEvent encode(Message payload) {
        return encode(payload, ContentType.JSON);
    }

    public OutgoingEvent encode(Message payload, ContentType contentType) {
        return encode(payload, contentType, UUID.randomUUID().toString());
    }

    /** As {@link #encode(Message, ContentType)}, under the CloudEvents id {@code id}. */
    public OutgoingEvent encode(Message payload, ContentType contentType, String id) {
        String jobId = jobIdOf(payload);
        if (jobId.isEmpty()) {
            throw new IllegalArgumentException(
                    EventTypes.typeOf(payload) + " has no job_id; every event belongs to a job");
        }
        Map<String, String> headers = new LinkedHashMap<>();
        headers.put(CloudEventHeaders.SPEC_VERSION, CloudEventHeaders.SPEC_VERSION_1_0);
        headers.put(CloudEventHeaders.ID, id);
        headers.put(CloudEventHeaders.TYPE, EventTypes.typeOf(payload));
        headers.put(CloudEventHeaders.SOURCE, source);
        headers.put(CloudEventHeaders.SUBJECT, jobId);
        headers.put(CloudEventHeaders.TIME, clock.instant().toString());
        headers.put(CloudEventHeaders.CONTENT_TYPE, contentType.mediaType());
        return new OutgoingEvent(jobId, headers, serialize(payload, contentType));
    }

    /** The payload alone, as {@code contentType} encodes it. */
    public byte[] serialize(Message payload, ContentType contentType) {
        return switch (contentType) {
            case JSON -> toJson(payload).getBytes(StandardCharsets.UTF_8);
            case PROTOBUF -> payload.toByteArray();
        };
    }

    /** The protobuf JSON mapping with proto field names, as the docs and examples show it. */
    public String toJson(Message payload) {
        try {
            return printer.print(payload);
        } catch (InvalidProtocolBufferException e) {
            throw new IllegalStateException("cannot print " + EventTypes.typeOf(payload), e);
        }
    }

    /** Decodes a record that must carry {@code expected}'s type. */
    @SuppressWarnings("unchecked")
    public <T extends Message> IncomingEvent<T> decode(
            ConsumerRecord<String, byte[]> record, T expected) {
        return (IncomingEvent<T>) decodeAny(record, List.of(expected));
    }

    /**
     * Decodes a record of a topic that carries several types ({@code finetune.jobs.status}). When
     * the record has no {@code ce_type}, the first accepted type is assumed.
     */
    public IncomingEvent<Message> decodeAny(
            ConsumerRecord<String, byte[]> record, List<? extends Message> accepted) {
        String where = record.topic() + "-" + record.partition() + "@" + record.offset();
        byte[] value = record.value();
        if (value == null || value.length == 0) {
            throw invalid(where, "the record has no value");
        }
        Headers headers = record.headers();
        Message type = resolveType(where, header(headers, CloudEventHeaders.TYPE), accepted);
        ContentType contentType =
                header(headers, CloudEventHeaders.CONTENT_TYPE)
                        .map(
                                ct ->
                                        ContentType.parse(ct)
                                                .orElseThrow(
                                                        () ->
                                                                invalid(
                                                                        where,
                                                                        "unsupported content-type '"
                                                                                + ct
                                                                                + "'; use application/json or application/protobuf")))
                        .orElse(ContentType.JSON);
        Message payload = parse(where, type, contentType, value);

        String jobId = jobIdOf(payload);
        if (jobId.isEmpty()) {
            throw invalid(where, EventTypes.typeOf(payload) + ": field job_id is missing or empty");
        }
        Optional<String> subject = header(headers, CloudEventHeaders.SUBJECT);
        if (subject.isPresent() && !subject.get().equals(jobId)) {
            throw invalid(
                    where,
                    "ce_subject '" + subject.get() + "' differs from job_id '" + jobId + "'");
        }
        if (record.key() != null && !record.key().isEmpty() && !record.key().equals(jobId)) {
            throw invalid(
                    where,
                    "record key '"
                            + record.key()
                            + "' differs from job_id '"
                            + jobId
                            + "'; the key must be the job id so one job's events stay in order");
        }
        String id =
                header(headers, CloudEventHeaders.ID).orElseGet(() -> "sha256:" + sha256(value));
        Instant time =
                header(headers, CloudEventHeaders.TIME)
                        .map(t -> parseTime(where, t))
                        .orElseGet(() -> Instant.ofEpochMilli(record.timestamp()));
        String eventSource = header(headers, CloudEventHeaders.SOURCE).orElse("unknown");
        return new IncomingEvent<>(
                id,
                EventTypes.typeOf(payload),
                eventSource,
                jobId,
                time,
                contentType,
                payload,
                record.topic(),
                record.partition(),
                record.offset());
    }

    private Message resolveType(
            String where, Optional<String> ceType, List<? extends Message> accepted) {
        if (ceType.isEmpty()) {
            return accepted.get(0);
        }
        return accepted.stream()
                .filter(m -> EventTypes.typeOf(m).equals(ceType.get()))
                .findFirst()
                .map(m -> (Message) m)
                .orElseThrow(
                        () ->
                                invalid(
                                        where,
                                        "ce_type '"
                                                + ceType.get()
                                                + "' is not accepted here; expected "
                                                + accepted.stream()
                                                        .map(EventTypes::typeOf)
                                                        .collect(Collectors.joining(" or "))));
    }

    private Message parse(String where, Message type, ContentType contentType, byte[] value) {
        String typeName = EventTypes.typeOf(type);
        try {
            return switch (contentType) {
                case PROTOBUF -> type.getParserForType().parseFrom(value);
                case JSON -> {
                    Message.Builder builder = type.newBuilderForType();
                    JsonFormat.Parser parser =
                            EventTypes.isUserAuthored(type.getDescriptorForType())
                                    ? strictParser
                                    : lenientParser;
                    parser.merge(new String(value, StandardCharsets.UTF_8), builder);
                    yield builder.build();
                }
            };
        } catch (InvalidProtocolBufferException e) {
            throw invalid(
                    where,
                    "not a valid "
                            + typeName
                            + " in "
                            + contentType.mediaType()
                            + ": "
                            + e.getMessage(),
                    e);
        } catch (RuntimeException e) {
            // JsonFormat reports some shape errors (e.g. an array where an object belongs) as
            // unchecked exceptions from Gson.
            throw invalid(where, "not a valid " + typeName + " in JSON: " + e.getMessage(), e);
        }
    }

    private static Instant parseTime(String where, String value) {
        try {
            return Instant.parse(value);
        } catch (DateTimeParseException e) {
            throw invalid(where, "ce_time '" + value + "' is not an RFC 3339 timestamp");
        }
    }

    /** The {@code job_id} field every platform event has; empty when it is not set. */
    public static String jobIdOf(Message payload) {
        FieldDescriptor field = payload.getDescriptorForType().findFieldByName(JOB_ID_FIELD);
        if (field == null || field.getJavaType() != FieldDescriptor.JavaType.STRING) {
            return "";
        }
        return (String) payload.getField(field);
    }

    private static Optional<String> header(Headers headers, String name) {
        Header header = headers.lastHeader(name);
        if (header == null || header.value() == null) {
            return Optional.empty();
        }
        String value = new String(header.value(), StandardCharsets.UTF_8).trim();
        return value.isEmpty() ? Optional.empty() : Optional.of(value);
    }

    private static InvalidEventException invalid(String where, String problem) {
        return new InvalidEventException(where + ": " + problem);
    }

    private static InvalidEventException invalid(String where, String problem, Throwable cause) {
        return new InvalidEventException(where + ": " + problem, cause);
    }

    static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required by every JVM", e);
        }
    }

    @Override
    public String toString() {
        return "EventCodec[source=" + source + "]";
    }
}
