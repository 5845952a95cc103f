package io.tuneline.engine.train;

import java.nio.file.Path;
import java.util.Optional;
import java.util.function.BooleanSupplier;

/**
 * When and where a run saves checkpoints, where it resumes from, and how it is asked to stop.
 *
 * @param directory local directory; each checkpoint goes to {@code step-<n>/} under it
 * @param everySteps save after every this many steps; 0 for never
 * @param resumeFrom a checkpoint directory written by an earlier attempt of the same run
 * @param onSaved called with each finished checkpoint (the worker copies it to the object store)
 * @param stopRequested checked between steps; when true the run saves a checkpoint and ends with
 *     {@link TrainingStoppedException} (a cancelled or preempted worker keeps its progress)
 */
public record Checkpointing(
        Path directory,
        long everySteps,
        Optional<Path> resumeFrom,
        Saved onSaved,
        BooleanSupplier stopRequested) {

    public Checkpointing(
            Path directory, long everySteps, Optional<Path> resumeFrom, Saved onSaved) {
        this(directory, everySteps, resumeFrom, onSaved, () -> false);
    }

    /** No checkpoints, no resume. */
    public static Checkpointing none() {
        return new Checkpointing(Path.of("."), 0, Optional.empty(), (dir, state) -> {});
    }

    @FunctionalInterface
    public interface Saved {
        void saved(Path checkpoint, TrainingState state) throws java.io.IOException;
    }
}
