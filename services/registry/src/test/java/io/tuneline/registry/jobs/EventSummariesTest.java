package io.tuneline.registry.jobs;

import static org.assertj.core.api.Assertions.assertThat;

import io.tuneline.proto.v1.JobStatus;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.proto.v1.Stage;
import org.junit.jupiter.api.Test;

class EventSummariesTest {
    @Test
    void progressCarriesItsPercentAndAPlainStatusChangeDoesNot() {
        JobStatusChanged progress =
                JobStatusChanged.newBuilder()
                        .setStatus(JobStatus.JOB_STATUS_PREPROCESSING)
                        .setStage(Stage.STAGE_PREPROCESSING)
                        .setMessage("tokenizing and writing splits: 16,384 of 55,608 records")
                        .setPercentDone(64.73)
                        .build();
        assertThat(EventSummaries.of(progress))
                .containsEntry("status", "PREPROCESSING")
                .containsEntry("percent_done", 64.7);
        assertThat(EventSummaries.of(progress.toBuilder().clearPercentDone().build()))
                .doesNotContainKey("percent_done");
    }
}
