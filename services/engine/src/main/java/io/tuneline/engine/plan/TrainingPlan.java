package io.tuneline.engine.plan;

import io.tuneline.engine.method.FineTuningMethod;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalLong;

/**
 * One training run as the estimate sees it: the model, the method, the micro-batch (examples per
 * forward pass, the job's {@code batch_size}), the sequence length, gradient accumulation and, when
 * known, the number of optimizer steps.
 *
 * @param precision the job's {@code hyperparameters.precision}, resolved against the device by the
 *     estimate as the worker resolves it ({@link io.tuneline.engine.method.Precision#of})
 * @param modelDropout the job's override of every dropout rate inside the model, when it sets one
 * @param activationCheckpointing the job's {@code hyperparameters.activation_checkpointing}; empty
 *     when unset, which the worker reads as on for QLoRA and off otherwise
 */
public record TrainingPlan(
        ModelShape shape,
        FineTuningMethod method,
        int microBatch,
        int sequenceLength,
        int accumulation,
        OptionalLong totalSteps,
        Precision precision,
        OptionalDouble modelDropout,
        Optional<Boolean> activationCheckpointing) {

    /**
     * The job's precision choice. {@code BF16} and {@code FP16} hold every frozen linear base
     * weight in 2 bytes ({@code Dense.WeightStore.Bf16}, {@code Fp16}); all else stays fp32, as the
     * engine trains.
     */
    public enum Precision {
        /** bf16 on a GPU that computes it natively (Ampere and later), fp32 elsewhere. */
        AUTO,
        FP32,
        BF16,
        FP16;

        /** The job's field as the worker reads it; empty is {@code auto}. */
        public static Precision of(String choice) {
            return switch (choice.trim().toLowerCase(java.util.Locale.ROOT)) {
                case "", "auto" -> AUTO;
                case "fp32" -> FP32;
                case "bf16" -> BF16;
                case "fp16" -> FP16;
                default ->
                        throw new IllegalArgumentException(
                                "hyperparameters.precision: \""
                                        + choice
                                        + "\" is not one of auto, fp32, bf16, fp16");
            };
        }

        /** Whether frozen linear weights are held in bf16 on {@code device}. */
        public boolean bf16On(Device device) {
            return this == BF16 || (this == AUTO && device.bf16());
        }

        /** Whether frozen linear weights are held in two bytes (bf16 or fp16) on {@code device}. */
        public boolean halfOn(Device device) {
            return this == FP16 || bf16On(device);
        }

        /**
         * Whether each matmul widens its two-byte weight to an fp32 copy on {@code device}: bf16
         * always, fp16 on a CPU (on a GPU it multiplies in float16: {@code
         * method.Precision.apply}).
         */
        public boolean widensOn(Device device) {
            return bf16On(device) || (this == FP16 && !device.gpu());
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

    /**
     * A plan with the job defaults for precision ({@code auto}), dropout (the model's) and
     * checkpointing (on for QLoRA).
     */
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
                Precision.AUTO,
                OptionalDouble.empty(),
                Optional.empty());
    }

    /**
     * Whether the run asks for activation checkpointing: the job's setting, else the worker's
     * default (on for QLoRA, whose memory saving needs it). Only a model the engine can cut at its
     * layers honours it (see {@link Estimator}).
     */
    public boolean checkpointingRequested() {
        return activationCheckpointing.orElse(method instanceof FineTuningMethod.Qlora);
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
                modelDropout,
                activationCheckpointing);
    }

    /** The same run with sequences cut to {@code length} tokens. */
    public TrainingPlan withSequenceLength(int length) {
        return new TrainingPlan(
                shape,
                method,
                microBatch,
                length,
                accumulation,
                totalSteps,
                precision,
                modelDropout,
                activationCheckpointing);
    }

    /**
     * The same run with another method; checkpointing left unset by the job follows the new
     * method's default.
     */
    public TrainingPlan withMethod(FineTuningMethod newMethod) {
        return new TrainingPlan(
                shape,
                newMethod,
                microBatch,
                sequenceLength,
                accumulation,
                totalSteps,
                precision,
                modelDropout,
                activationCheckpointing);
    }

    /** The same run with checkpointing set on or off. */
    public TrainingPlan withActivationCheckpointing(boolean on) {
        return new TrainingPlan(
                shape,
                method,
                microBatch,
                sequenceLength,
                accumulation,
                totalSteps,
                precision,
                modelDropout,
                Optional.of(on));
    }

    /** The same run in another precision. */
    public TrainingPlan withPrecision(Precision newPrecision) {
        return new TrainingPlan(
                shape,
                method,
                microBatch,
                sequenceLength,
                accumulation,
                totalSteps,
                newPrecision,
                modelDropout,
                activationCheckpointing);
    }
}
