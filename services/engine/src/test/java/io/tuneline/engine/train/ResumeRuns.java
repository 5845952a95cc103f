package io.tuneline.engine.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * The exact-resume check the method tests share: a run checkpointed every few steps, a second run
 * resumed from one of its checkpoints, and the resumed steps equal to the uninterrupted run's.
 */
public final class ResumeRuns {
    private ResumeRuns() {}

    /** Checkpoints into {@code dir} every {@code every} steps, no resume. */
    public static Checkpointing every(Path dir, int every) {
        return new Checkpointing(dir, every, Optional.empty(), (d, st) -> {});
    }

    /** Resumes from {@code checkpoints}' step {@code step}, writing no checkpoints of its own. */
    public static Checkpointing resumeFrom(Path checkpoints, int step, Path dir) {
        return new Checkpointing(
                dir,
                0,
                Optional.of(checkpoints.resolve(String.format("step-%08d", step))),
                (d, st) -> {});
    }

    /**
     * The resumed run took exactly the uninterrupted run's steps after {@code from}, with the same
     * losses within 1e-5.
     */
    public static void assertContinues(
            List<TrainingListener.StepReport> full,
            List<TrainingListener.StepReport> resumed,
            int steps,
            int from) {
        assertThat(full).hasSize(steps);
        assertThat(resumed).hasSize(steps - from);
        for (int i = 0; i < resumed.size(); i++) {
            assertThat(resumed.get(i).step()).isEqualTo(full.get(from + i).step());
            assertThat(resumed.get(i).loss()).isCloseTo(full.get(from + i).loss(), within(1e-5));
        }
    }
}
