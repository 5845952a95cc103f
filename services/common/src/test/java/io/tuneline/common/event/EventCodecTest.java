package io.tuneline.common.event;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tuneline.proto.v1.BaseModel;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.JobStatus;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.proto.v1.Task;
import java.nio.charset.StandardCharsets;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.record.TimestampType;
import org.junit.jupiter.api.Test;

class EventCodecTest {
    private static final Instant NOW = Instant.parse("2026-11-24T10:15:30Z");
    private final EventCodec codec =
            new EventCodec("/tuneline/test", Clock.fixed(NOW, ZoneOffset.UTC));

    private static final JobRequested JOB =
            JobRequested.newBuilder()
                    .setJobId("job-1")
                    .setBaseModel(BaseModel.newBuilder().setRef("minilm-l6"))
                    .setTask(Task.TASK_SEQUENCE_CLASSIFICATION)
                    .build();

    @Test
    void encodesCloudEventsBinaryModeHeadersWithTheJobIdAsKeyAndSubject() {
        OutgoingEvent event = codec.encode(JOB);

        assertThat(event.key()).isEqualTo("job-1");
        assertThat(event.headers())
                .containsEntry("ce_specversion", "1.0")
                .containsEntry("ce_type", "tuneline.v1.JobRequested")
                .containsEntry("ce_source", "/tuneline/test")
                .containsEntry("ce_subject", "job-1")
                .containsEntry("ce_time", "2026-11-24T10:15:30Z")
                .containsEntry("content-type", "application/json")
                .containsKey("ce_id");
        assertThat(new String(event.value(), StandardCharsets.UTF_8))
                .isEqualTo(
                        "{\"job_id\":\"job-1\",\"base_model\":{\"ref\":\"minilm-l6\"},"
                                + "\"task\":\"TASK_SEQUENCE_CLASSIFICATION\"}");
    }

    @Test
    void everyEncodedEventGetsItsOwnId() {
        assertThat(codec.encode(JOB).headers().get("ce_id"))
                .isNotEqualTo(codec.encode(JOB).headers().get("ce_id"));
    }

    @Test
    void jsonAndBinaryProtobufRoundTrip() {
        for (ContentType ct : ContentType.values()) {
            OutgoingEvent out = codec.encode(JOB, ct);
            IncomingEvent<JobRequested> in =
                    codec.decode(record("job-1", out.value(), out.headers()), JOB);
            assertThat(in.payload()).isEqualTo(JOB);
            assertThat(in.id()).isEqualTo(out.headers().get("ce_id"));
            assertThat(in.time()).isEqualTo(NOW);
            assertThat(in.contentType()).isEqualTo(ct);
        }
    }

    @Test
    void acceptsCamelCaseJsonFieldNamesToo() {
        IncomingEvent<JobRequested> in =
                codec.decode(
                        record(null, "{\"jobId\":\"job-1\",\"baseModel\":{\"ref\":\"m\"}}"),
                        JobRequested.getDefaultInstance());
        assertThat(in.payload().getBaseModel().getRef()).isEqualTo("m");
    }

    @Test
    void recordWithoutHeadersGetsAnIdDerivedFromItsBytes() {
        byte[] json = "{\"job_id\":\"job-1\"}".getBytes(StandardCharsets.UTF_8);
        IncomingEvent<JobRequested> a = codec.decode(record(null, json, Map.of()), JOB);
        IncomingEvent<JobRequested> b = codec.decode(record(null, json, Map.of()), JOB);
        assertThat(a.id()).startsWith("sha256:").isEqualTo(b.id());
        assertThat(a.subject()).isEqualTo("job-1");
        assertThat(a.source()).isEqualTo("unknown");
    }

    @Test
    void rejectsMalformedJsonNamingThePosition() {
        assertThatThrownBy(() -> codec.decode(record(null, "{\"job_id\": "), JOB))
                .isInstanceOf(InvalidEventException.class)
                .hasMessageStartingWith("finetune.jobs.requested-2@41: ")
                .hasMessageContaining("not a valid tuneline.v1.JobRequested");
    }

    @Test
    void rejectsAFieldOfTheWrongType() {
        assertThatThrownBy(
                        () ->
                                codec.decode(
                                        record(
                                                null,
                                                "{\"job_id\":\"j\",\"hyperparameters\":{\"epochs\":\"x\"}}"),
                                        JOB))
                .isInstanceOf(InvalidEventException.class)
                .hasMessageContaining("\"x\"");
    }

    @Test
    void rejectsUnknownFieldsInUserAuthoredEventsButToleratesThemFromServices() {
        assertThatThrownBy(() -> codec.decode(record(null, "{\"job_id\":\"j\",\"epoch\":3}"), JOB))
                .isInstanceOf(InvalidEventException.class)
                .hasMessageContaining("epoch");

        // A newer producer may add fields; an older consumer must keep working.
        IncomingEvent<JobStatusChanged> status =
                codec.decode(
                        record(
                                null,
                                "{\"job_id\":\"j\",\"status\":\"JOB_STATUS_TRAINING\",\"added_later\":1}"),
                        JobStatusChanged.getDefaultInstance());
        assertThat(status.payload().getStatus()).isEqualTo(JobStatus.JOB_STATUS_TRAINING);
    }

    @Test
    void rejectsAMissingJobId() {
        assertThatThrownBy(() -> codec.decode(record(null, "{\"task\":1}"), JOB))
                .isInstanceOf(InvalidEventException.class)
                .hasMessageContaining("job_id is missing");
    }

    @Test
    void rejectsAKeyThatIsNotTheJobId() {
        assertThatThrownBy(() -> codec.decode(record("other", "{\"job_id\":\"job-1\"}"), JOB))
                .isInstanceOf(InvalidEventException.class)
                .hasMessageContaining("record key 'other' differs from job_id 'job-1'");
    }

    @Test
    void rejectsAnUnexpectedTypeOrContentType() {
        byte[] json = "{\"job_id\":\"job-1\"}".getBytes(StandardCharsets.UTF_8);
        assertThatThrownBy(
                        () ->
                                codec.decode(
                                        record(
                                                null,
                                                json,
                                                Map.of("ce_type", "tuneline.v1.JobFailed")),
                                        JOB))
                .hasMessageContaining("ce_type 'tuneline.v1.JobFailed' is not accepted here");
        assertThatThrownBy(
                        () ->
                                codec.decode(
                                        record(null, json, Map.of("content-type", "text/xml")),
                                        JOB))
                .hasMessageContaining("unsupported content-type 'text/xml'");
    }

    @Test
    void decodesEitherTypeOfAMultiTypeTopicByItsCeType() {
        JobFailed failed = JobFailed.newBuilder().setJobId("job-1").setErrorCode("X").build();
        OutgoingEvent out = codec.encode(failed);
        IncomingEvent<?> in =
                codec.decodeAny(
                        record("job-1", out.value(), out.headers()),
                        List.of(
                                JobStatusChanged.getDefaultInstance(),
                                JobFailed.getDefaultInstance()));
        assertThat(in.payload()).isEqualTo(failed);
    }

    @Test
    void refusesToEncodeAnEventWithoutJobId() {
        assertThatThrownBy(() -> codec.encode(JobRequested.getDefaultInstance()))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("no job_id");
    }

    private static ConsumerRecord<String, byte[]> record(String key, String json) {
        return record(key, json.getBytes(StandardCharsets.UTF_8), Map.of());
    }

    private static ConsumerRecord<String, byte[]> record(
            String key, byte[] value, Map<String, String> headers) {
        RecordHeaders h = new RecordHeaders();
        headers.forEach((k, v) -> h.add(k, v.getBytes(StandardCharsets.UTF_8)));
        return new ConsumerRecord<>(
                "finetune.jobs.requested",
                2,
                41,
                NOW.toEpochMilli(),
                TimestampType.CREATE_TIME,
                -1,
                -1,
                key,
                value,
                h,
                java.util.Optional.empty());
    }
}
