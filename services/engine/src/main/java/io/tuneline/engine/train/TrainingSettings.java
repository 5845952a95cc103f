package io.tuneline.engine.train;

import java.util.Optional;

/**
 * Optimisation settings of a run (the job's hyperparameters with defaults applied).
 *
 * @param warmupRatio share of the steps over which the learning rate rises linearly from 0
 * @param maxGradNorm global L2 norm the gradients are clipped to; 0 or less for none
 * @param schedule how the learning rate moves after the warm-up
 * @param accumulationSteps batches whose gradients are summed into one optimizer step (an effective
 *     batch of {@code batchSize * accumulationSteps} in the memory of one batch)
 * @param maxSteps the most optimizer steps the run takes, fewer than its epochs would (the job's
 *     {@code max_steps}; 0 for no limit); the learning-rate schedule then spans these steps, as in
 *     Hugging Face's Trainer
 * @param activationCheckpointing whether a model that can be cut at its layers is trained with
 *     activation checkpointing ({@link ActivationCheckpointing}: one layer's activations and
 *     dequantized weights alive at a time during backward, for one more forward pass of the layers;
 *     Hugging Face's {@code gradient_checkpointing}); the losses and gradients are the same either
 *     way
 * @param lossScaling dynamic loss scaling ({@link LossScaler}: fp16 training, whose gradients
 *     underflow float16 without it); empty for none (fp32 and bf16 training)
 */
public record TrainingSettings(
        int epochs,
        int batchSize,
        float learningRate,
        float weightDecay,
        float warmupRatio,
        float maxGradNorm,
        int maxSeqLength,
        long seed,
        LearningRateSchedule.Shape schedule,
        int accumulationSteps,
        long maxSteps,
        boolean activationCheckpointing,
        Optional<LossScaler.Config> lossScaling) {

    /** Without loss scaling. */
    public TrainingSettings(
            int epochs,
            int batchSize,
            float learningRate,
            float weightDecay,
            float warmupRatio,
            float maxGradNorm,
            int maxSeqLength,
            long seed,
            LearningRateSchedule.Shape schedule,
            int accumulationSteps,
            long maxSteps,
            boolean activationCheckpointing) {
        this(
                epochs,
                batchSize,
                learningRate,
                weightDecay,
                warmupRatio,
                maxGradNorm,
                maxSeqLength,
                seed,
                schedule,
                accumulationSteps,
                maxSteps,
                activationCheckpointing,
                Optional.empty());
    }

    /** Without activation checkpointing. */
    public TrainingSettings(
            int epochs,
            int batchSize,
            float learningRate,
            float weightDecay,
            float warmupRatio,
            float maxGradNorm,
            int maxSeqLength,
            long seed,
            LearningRateSchedule.Shape schedule,
            int accumulationSteps,
            long maxSteps) {
        this(
                epochs,
                batchSize,
                learningRate,
                weightDecay,
                warmupRatio,
                maxGradNorm,
                maxSeqLength,
                seed,
                schedule,
                accumulationSteps,
                maxSteps,
                false);
    }

    /** These settings with activation checkpointing on or off. */
    public TrainingSettings withActivationCheckpointing(boolean on) {
        return new TrainingSettings(
                epochs,
                batchSize,
                learningRate,
                weightDecay,
                warmupRatio,
                maxGradNorm,
                maxSeqLength,
                seed,
                schedule,
                accumulationSteps,
                maxSteps,
                on,
                lossScaling);
    }

    /** These settings with dynamic loss scaling as {@code config} says (fp16 training). */
    public TrainingSettings withLossScaling(LossScaler.Config config) {
        return new TrainingSettings(
                epochs,
                batchSize,
                learningRate,
                weightDecay,
                warmupRatio,
                maxGradNorm,
                maxSeqLength,
                seed,
                schedule,
                accumulationSteps,
                maxSteps,
                activationCheckpointing,
                Optional.of(config));
    }

    /** Without a step limit. */
    public TrainingSettings(
            int epochs,
            int batchSize,
            float learningRate,
            float weightDecay,
            float warmupRatio,
            float maxGradNorm,
            int maxSeqLength,
            long seed,
            LearningRateSchedule.Shape schedule,
            int accumulationSteps) {
        this(
                epochs,
                batchSize,
                learningRate,
                weightDecay,
                warmupRatio,
                maxGradNorm,
                maxSeqLength,
                seed,
                schedule,
                accumulationSteps,
                0);
    }

    /** With a linear decay after the warm-up, the usual fine-tuning schedule. */
    public TrainingSettings(
            int epochs,
            int batchSize,
            float learningRate,
            float weightDecay,
            float warmupRatio,
            float maxGradNorm,
            int maxSeqLength,
            long seed) {
        this(
                epochs,
                batchSize,
                learningRate,
                weightDecay,
                warmupRatio,
                maxGradNorm,
                maxSeqLength,
                seed,
                LearningRateSchedule.Shape.LINEAR,
                1,
                0);
    }

    public TrainingSettings {
        if (accumulationSteps < 1) {
            throw new IllegalArgumentException(
                    "gradient_accumulation_steps must be at least 1, was " + accumulationSteps);
        }
        if (maxSteps < 0) {
            throw new IllegalArgumentException("max_steps must not be negative, was " + maxSteps);
        }
        if (lossScaling == null) {
            throw new IllegalArgumentException("loss scaling must be given (empty for none)");
        }
        if (schedule == null) {
            throw new IllegalArgumentException("a learning-rate schedule is required");
        }
        if (epochs < 1 || batchSize < 1 || maxSeqLength < 2) {
            throw new IllegalArgumentException(
                    "epochs and batch size must be at least 1 and max_seq_length at least 2");
        }
        if (!(learningRate > 0)) {
            throw new IllegalArgumentException(
                    "learning rate must be positive, was " + learningRate);
        }
    }
}
