package io.tuneline.engine.plan;

import java.util.Locale;
import java.util.OptionalDouble;

/**
 * The pre-flight estimate of one training run on one device: parameters, the peak memory by part,
 * and the time per optimizer step and in total. Every byte figure is a peak contribution; {@link
 * #peakBytes} is their sum.
 *
 * @param totalParameters every parameter of the model with the method's own added
 * @param trainableParameters what gets gradients and optimizer state
 * @param weightBytes the weights as held while training (NF4 codes and scales for QLoRA's quantized
 *     linears)
 * @param gradientBytes one gradient per trainable parameter
 * @param optimizerBytes AdamW's two fp32 moments per trainable parameter
 * @param activationBytes what autograd keeps from the forward pass of one micro-batch, plus one
 *     layer's gradients in flight (with activation checkpointing: each layer's input and one
 *     layer's activations at a time)
 * @param workspaceBytes temporaries: the optimizer step's per-tensor scratch, the fp32 copies of
 *     NF4 (QLoRA) and bf16-held weights each call makes (one layer's with activation
 *     checkpointing), QLoRA's fp32 base before quantization, with bf16 what the fp32 load needs
 *     beyond the training, and on CPU the loader's copies of the weights the JVM heap keeps
 *     (docs/planning.md says how each was calibrated)
 * @param runtimeBytes the runtime before any weight ({@link Device#runtimeBytes})
 * @param flopsPerStep floating-point operations of one optimizer step (all micro-batches)
 * @param secondsPerStep one optimizer step at the device's achieved FLOP/s, plus the optimizer
 * @param totalSeconds every step of the run, when the number of steps is known
 */
public record Estimate(
        String device,
        long deviceMemoryBytes,
        int microBatch,
        int accumulation,
        int sequenceLength,
        long totalParameters,
        long trainableParameters,
        long weightBytes,
        long gradientBytes,
        long optimizerBytes,
        long activationBytes,
        long workspaceBytes,
        long runtimeBytes,
        long peakBytes,
        double flopsPerStep,
        double secondsPerStep,
        OptionalDouble totalSeconds) {

    /** Whether the peak fits the device's memory. */
    public boolean fits() {
        return peakBytes <= deviceMemoryBytes;
    }

    /** One line for logs and events: peak against the device, parameters, time. */
    public String summary() {
        return String.format(
                Locale.ROOT,
                "estimated peak memory %s of %s on %s (weights %s, gradients %s, optimizer %s,"
                        + " activations %s, workspace %s, runtime %s); %,d of %,d parameters"
                        + " trainable; %.2f s per step%s (micro-batch %d x %d accumulation, %d"
                        + " tokens)",
                gib(peakBytes),
                gib(deviceMemoryBytes),
                device,
                gib(weightBytes),
                gib(gradientBytes),
                gib(optimizerBytes),
                gib(activationBytes),
                gib(workspaceBytes),
                gib(runtimeBytes),
                trainableParameters,
                totalParameters,
                secondsPerStep,
                totalSeconds.isPresent()
                        ? String.format(
                                Locale.ROOT, ", %.0f s in total", totalSeconds.getAsDouble())
                        : "",
                microBatch,
                accumulation,
                sequenceLength);
    }

    /** Bytes as GiB with two decimals. */
    public static String gib(long bytes) {
        return String.format(Locale.ROOT, "%.2f GiB", bytes / (double) Device.GIB);
    }
}
