package io.tuneline.common.messaging;

import static org.assertj.core.api.Assertions.assertThat;

import io.tuneline.common.event.ContentType;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.event.IncomingEvent;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.JobRequested;
import java.time.Clock;
import java.time.Instant;
import org.junit.jupiter.api.Test;

/**
 * A stage's result is named by its input: a stage done again for the same input (its service killed
 * after sending the result, before the input's offset was committed) sends its result under the id
 * it had, which every consumer's id check then drops; the registry's timeline showed the result
 * twice before (the e2e load test's "2 x DatasetPrepared").
 */
class ResultIdTest {
    private static IncomingEvent<JobRequested> input(String id) {
        return new IncomingEvent<>(
                id,
                "tuneline.v1.JobRequested",
                "/tuneline/test",
                "job-1",
                Instant.EPOCH,
                ContentType.JSON,
                JobRequested.newBuilder().setJobId("job-1").build(),
                "finetune.jobs.requested",
                0,
                7);
    }

    private static DatasetIngested ingested(String sha256) {
        return DatasetIngested.newBuilder()
                .setJobId("job-1")
                .setRaw(ArtifactRef.newBuilder().setSha256(sha256))
                .build();
    }

    @Test
    void theResultOfOneInputHasOneIdHoweverOftenItIsMade() {
        // A redone stage may differ in detail (a timestamp, say): it is still that input's result.
        assertThat(EventPublisher.resultId(input("e-1"), ingested("aa")))
                .isEqualTo(EventPublisher.resultId(input("e-1"), ingested("bb")));
    }

    @Test
    void anotherInputOrAnotherKindOfResultHasAnotherId() {
        String result = EventPublisher.resultId(input("e-1"), ingested("aa"));
        assertThat(EventPublisher.resultId(input("e-2"), ingested("aa"))).isNotEqualTo(result);
        assertThat(
                        EventPublisher.resultId(
                                input("e-1"), JobFailed.newBuilder().setJobId("job-1").build()))
                .isNotEqualTo(result);
    }

    @Test
    void theIdIsTheRecordsCloudEventsId() {
        String id = EventPublisher.resultId(input("e-1"), ingested("aa"));
        assertThat(
                        new EventCodec("/tuneline/test", Clock.systemUTC())
                                .encode(ingested("aa"), ContentType.JSON, id)
                                .headers())
                .containsEntry("ce_id", id);
    }
}
