package io.tuneline.engine.train;

import java.util.OptionalDouble;

/**
 * How a run ended.
 *
 * @param finalLoss mean training loss of the last (possibly partial) epoch
 * @param validationLoss the last validation loss, when the run validated
 * @param steps optimizer steps taken in total, across resumes
 * @param stoppedEarly whether early stopping ended the run before its last planned step
 * @param skippedSteps steps not applied, across resumes, because their loss or gradients were not
 *     numbers: {@code steps + skippedSteps} is the planned count when the run went to its end
 */
public record TrainingOutcome(
        double finalLoss,
        OptionalDouble validationLoss,
        long steps,
        boolean stoppedEarly,
        long skippedSteps) {}
