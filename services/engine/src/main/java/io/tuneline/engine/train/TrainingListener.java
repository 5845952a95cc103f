package io.tuneline.engine.train;

/**
 * Where a run's progress leaves the trainer: the training worker turns these into progress events
 * and metrics. Called on the training thread after each optimizer step.
 */
@FunctionalInterface
public interface TrainingListener {
    void onStep(StepReport report);

    /**
     * One optimizer step.
     *
     * @param loss mean training loss of the step's batch
     * @param tokensPerSecond non-padding tokens processed per second since the run started
     * @param etaSeconds time left at the current pace
     * @param validationLoss mean loss on the validation split, on the steps that evaluated it
     */
    record StepReport(
            long step,
            long totalSteps,
            double epoch,
            double loss,
            double learningRate,
            double tokensPerSecond,
            long etaSeconds,
            java.util.OptionalDouble validationLoss) {}
}
