package io.tuneline.ingestion.intake;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;
import static org.mockito.ArgumentMatchers.argThat;
import static org.mockito.Mockito.atLeastOnce;
import static org.mockito.Mockito.times;
import static org.mockito.Mockito.verify;

import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.mockito.InjectSpy;
import io.tuneline.common.event.CloudEventHeaders;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.event.IncomingEvent;
import io.tuneline.common.messaging.DeadLetters;
import io.tuneline.common.observability.MetricNames;
import io.tuneline.common.topic.Topics;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.JobStatus;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.testing.EmbeddedKafkaResource;
import io.tuneline.testing.KafkaTestClient;
import io.tuneline.testing.S3ProxyResource;
import jakarta.inject.Inject;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.mockito.ArgumentCaptor;

@QuarkusTest
@QuarkusTestResource(EmbeddedKafkaResource.class)
@QuarkusTestResource(S3ProxyResource.class)
class JobRequestedConsumerTest {
    private static final Duration WAIT = Duration.ofSeconds(30);

    @InjectSpy JobIntake intake;
    @Inject MeterRegistry registry;

    private KafkaTestClient kafka;

    @BeforeEach
    void connect() {
        kafka = KafkaTestClient.forApplication();
    }

    @AfterEach
    void disconnect() {
        kafka.close();
    }

    @Test
    void jobPublishedAsPlainJsonLikeKcatIsReadFieldForField() {
        // No headers and no key: exactly what `kcat -P -t finetune.jobs.requested` sends.
        kafka.publish(Topics.JOBS_REQUESTED, null, TestJobs.fullJobJson(), Map.of());

        JobRequested received = awaitAccepted("sentiment-lora-001").payload();
        assertThat(received).isEqualTo(TestJobs.fullJob());
    }

    @Test
    void jobPublishedAsBinaryProtobufIsReadBack() {
        JobRequested job = TestJobs.fullJob().toBuilder().setJobId("binary-job-1").build();
        kafka.publish(
                Topics.JOBS_REQUESTED,
                job.getJobId(),
                job.toByteArray(),
                Map.of(
                        CloudEventHeaders.CONTENT_TYPE,
                        "application/protobuf",
                        CloudEventHeaders.TYPE,
                        "tuneline.v1.JobRequested",
                        CloudEventHeaders.ID,
                        UUID.randomUUID().toString(),
                        CloudEventHeaders.SUBJECT,
                        job.getJobId()));

        IncomingEvent<JobRequested> event = awaitAccepted("binary-job-1");
        assertThat(event.payload()).isEqualTo(job);
        assertThat(event.contentType().mediaType()).isEqualTo("application/protobuf");
    }

    @Test
    void malformedRecordsGoToTheDeadLetterTopicWithTheirReasonAndTheConsumerGoesOn() {
        kafka.publish(Topics.JOBS_REQUESTED, "broken-1", "{\"job_id\": \"broken-1\", ");
        kafka.publish(
                Topics.JOBS_REQUESTED,
                "broken-2",
                "{\"job_id\": \"broken-2\", \"hyperparameters\": {\"epochs\": \"many\"}}");
        kafka.publish(
                Topics.JOBS_REQUESTED,
                "broken-3",
                "{\"job_id\": \"broken-3\", \"learning_rte\": 0.1}");
        String next = "after-the-bad-ones";
        kafka.publish(Topics.JOBS_REQUESTED, next, json(TestJobs.minimalJob(next)));

        List<ConsumerRecord<String, byte[]>> dead =
                kafka.readUntil(
                        Topics.dlq(Topics.JOBS_REQUESTED), records -> records.size() >= 3, WAIT);
        assertThat(dead)
                .extracting(ConsumerRecord::key)
                .containsExactly("broken-1", "broken-2", "broken-3");
        assertThat(KafkaTestClient.header(dead.get(0), DeadLetters.REASON))
                .contains("finetune.jobs.requested-0@")
                .contains("not a valid tuneline.v1.JobRequested");
        assertThat(KafkaTestClient.header(dead.get(1), DeadLetters.REASON)).contains("many");
        assertThat(KafkaTestClient.header(dead.get(2), DeadLetters.REASON))
                .contains("learning_rte");
        // The original bytes are kept, so the record can be fixed and replayed.
        assertThat(new String(dead.get(1).value(), StandardCharsets.UTF_8)).contains("\"many\"");

        awaitAccepted(next);
    }

    @Test
    void redeliveredEventIsNotProcessedTwice() {
        String jobId = "redelivered-1";
        Map<String, String> headers =
                Map.of(
                        CloudEventHeaders.ID,
                        "event-" + UUID.randomUUID(),
                        CloudEventHeaders.TYPE,
                        "tuneline.v1.JobRequested",
                        CloudEventHeaders.SUBJECT,
                        jobId);
        byte[] value = json(TestJobs.minimalJob(jobId));
        double duplicatesBefore = duplicates();

        kafka.publish(Topics.JOBS_REQUESTED, jobId, value, headers);
        kafka.publish(Topics.JOBS_REQUESTED, jobId, value, headers);

        await().atMost(WAIT).until(() -> duplicates() > duplicatesBefore);
        verify(intake, times(1)).accept(argThat(e -> e.jobId().equals(jobId)));
    }

    @Test
    void jobWithAnInvalidSpecFailsWithEveryProblemListed() {
        JobRequested job =
                JobRequested.newBuilder()
                        .setJobId("no-task-no-data")
                        .setBaseModel(TestJobs.minimalJob("x").getBaseModel())
                        .build();
        kafka.publish(Topics.JOBS_REQUESTED, job.getJobId(), json(job));

        ConsumerRecord<String, byte[]> failure =
                statusEvent(job.getJobId(), "tuneline.v1.JobFailed");
        JobFailed failed = codec().decode(failure, JobFailed.getDefaultInstance()).payload();
        assertThat(failed.getErrorCode()).isEqualTo("JOB_INVALID");
        assertThat(failed.getDetailsList())
                .anySatisfy(d -> assertThat(d).startsWith("task:"))
                .anySatisfy(d -> assertThat(d).startsWith("dataset:"));
        assertThat(failed.getMessage()).contains("2 problems");
    }

    @Test
    void acceptedJobIsReportedQueuedOnTheStatusTopic() {
        JobRequested job = TestJobs.minimalJob("queued-1");
        kafka.publish(Topics.JOBS_REQUESTED, job.getJobId(), json(job));

        ConsumerRecord<String, byte[]> record =
                statusEvent(job.getJobId(), "tuneline.v1.JobStatusChanged");
        assertThat(KafkaTestClient.header(record, CloudEventHeaders.SOURCE))
                .isEqualTo("/tuneline/ingestion");
        assertThat(KafkaTestClient.header(record, CloudEventHeaders.SPEC_VERSION)).isEqualTo("1.0");
        JobStatusChanged changed =
                codec().decode(record, JobStatusChanged.getDefaultInstance()).payload();
        assertThat(changed.getStatus()).isEqualTo(JobStatus.JOB_STATUS_QUEUED);
    }

    private IncomingEvent<JobRequested> awaitAccepted(String jobId) {
        @SuppressWarnings("unchecked")
        ArgumentCaptor<IncomingEvent<JobRequested>> captor =
                ArgumentCaptor.forClass(IncomingEvent.class);
        await().atMost(WAIT)
                .untilAsserted(
                        () -> {
                            verify(intake, atLeastOnce()).accept(captor.capture());
                            assertThat(captor.getAllValues())
                                    .anyMatch(e -> e.jobId().equals(jobId));
                        });
        return captor.getAllValues().stream()
                .filter(e -> e.jobId().equals(jobId))
                .findFirst()
                .orElseThrow();
    }

    private ConsumerRecord<String, byte[]> statusEvent(String jobId, String type) {
        List<ConsumerRecord<String, byte[]>> records =
                kafka.readUntil(
                        Topics.JOBS_STATUS,
                        rs -> rs.stream().anyMatch(r -> matches(r, jobId, type)),
                        WAIT);
        return records.stream().filter(r -> matches(r, jobId, type)).findFirst().orElseThrow();
    }

    private static boolean matches(ConsumerRecord<String, byte[]> r, String jobId, String type) {
        return jobId.equals(r.key())
                && type.equals(KafkaTestClient.header(r, CloudEventHeaders.TYPE));
    }

    private double duplicates() {
        return registry
                .find(MetricNames.EVENTS_CONSUMED)
                .tag(MetricNames.TAG_OUTCOME, MetricNames.OUTCOME_DUPLICATE)
                .counters()
                .stream()
                .mapToDouble(c -> c.count())
                .sum();
    }

    private static EventCodec codec() {
        return new EventCodec("/test");
    }

    private static byte[] json(JobRequested job) {
        return codec().toJson(job).getBytes(StandardCharsets.UTF_8);
    }
}
