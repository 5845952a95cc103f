package io.tuneline.engine.plan;

import io.tuneline.engine.method.FineTuningMethod;
import java.util.OptionalDouble;
import java.util.OptionalLong;

/**
 * One training run as the estimate sees it: the model, the method, the micro-batch (examples per
 * forward pass, the job's {@code batch_size}), the sequence length, gradient accumulation and, when
 * known, the number of optimizer steps.
 *
 * @param precision the dtype weights, gradients and activations are held in; the engine trains in
 *     fp32 today, so jobs are estimated at {@link Precision#FP32}
 * @param modelDropout the job's override of every dropout rate inside the model, when it sets one
 */
public record TrainingPlan(
        ModelShape shape,
        FineTuningMethod method,
        int microBatch,
        int sequenceLength,
        int accumulation,
        OptionalLong totalSteps,
        Precision precision,
        OptionalDouble modelDropout) {

    /** Bytes per element of weights, gradients and activations. */
    public enum Precision {
        FP32(4),
        BF16(2),
        FP16(2);

        private final int bytes;

        Precision(int bytes) {
            this.bytes = bytes;
        }

        public int bytes() {
            return bytes;
        }
    }

    public TrainingPlan {
        if (microBatch < 1 || sequenceLength < 1 || accumulation < 1) {
            throw new IllegalArgumentException(
                    "micro-batch, sequence length and accumulation must be positive, were "
                            + microBatch
                            + ", "
                            + sequenceLength
                            + " and "
                            + accumulation);
        }
    }

    /** A plan in fp32 with the model's own dropout rates. */
    public TrainingPlan(
            ModelShape shape,
            FineTuningMethod method,
            int microBatch,
            int sequenceLength,
            int accumulation,
            OptionalLong totalSteps) {
        this(
                shape,
                method,
                microBatch,
                sequenceLength,
                accumulation,
                totalSteps,
                Precision.FP32,
                OptionalDouble.empty());
    }

    /** Examples per optimizer step: micro-batch times accumulation. */
    public long effectiveBatch() {
        return (long) microBatch * accumulation;
    }

    /** The same run with another micro-batch and accumulation. */
    public TrainingPlan withBatch(int newMicroBatch, int newAccumulation) {
        return new TrainingPlan(
                shape,
                method,
                newMicroBatch,
                sequenceLength,
                newAccumulation,
                totalSteps,
                precision,
                modelDropout);
    }
}
