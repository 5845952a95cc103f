package io.tuneline.engine.train;

/**
 * Where a run stands, as a checkpoint records it: enough, with the trainable weights and the
 * optimizer's moments, to continue as if never stopped.
 *
 * @param step optimizer steps done
 * @param epoch the epoch the next step belongs to (0-based)
 * @param nextBatch index of the next batch within that epoch's shuffled order
 * @param epochLoss sum of the step losses of {@code epoch} so far, divided by its steps
 * @param seed the run's seed: the data order and dropout masks are derived from it and the step
 * @param bestValidationLoss lowest validation loss so far; NaN before the first evaluation
 * @param evaluationsWithoutImprovement for early stopping: evaluations since the best one
 * @param skippedSteps steps not applied because their loss or gradients were not numbers (0 in
 *     checkpoints written before the field existed)
 * @param lossScale the dynamic loss scale the next step multiplies its loss by ({@link
 *     LossScaler}); 0 for a run without loss scaling (and in checkpoints written before the field
 *     existed)
 * @param lossScaleGrowthTracker the loss scaler's clean steps in a row since its scale last changed
 */
public record TrainingState(
        long step,
        int epoch,
        int nextBatch,
        long tokens,
        double epochLoss,
        long seed,
        long totalSteps,
        double bestValidationLoss,
        int evaluationsWithoutImprovement,
        long skippedSteps,
        float lossScale,
        int lossScaleGrowthTracker) {}
