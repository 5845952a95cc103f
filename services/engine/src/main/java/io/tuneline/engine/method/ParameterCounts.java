package io.tuneline.engine.method;

import ai.djl.nn.Block;
import ai.djl.nn.Parameter;

/** Trainable versus total parameters, as every method reports them. */
public record ParameterCounts(long trainable, long total) {
    /** Over every parameter of {@code model} (adapters included); trainable ones need gradients. */
    public static ParameterCounts of(Block model) {
        long trainable = 0;
        long total = 0;
        for (var entry : model.getParameters()) {
            Parameter p = entry.getValue();
            long n = p.getArray().size();
            total += n;
            if (p.requiresGradient()) {
                trainable += n;
            }
        }
        return new ParameterCounts(trainable, total);
    }

    public double trainableFraction() {
        return total == 0 ? 0 : (double) trainable / total;
    }
}
