package io.tuneline.engine.method;

import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.nn.Dense;

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

    /**
     * As {@link #of(Block)}, with the linear weights a method holds in NF4 (QLoRA) counted in the
     * total at their element count: they are no parameters of the block any more, but still part of
     * the model. (PEFT's {@code get_nb_trainable_parameters} does the same for bitsandbytes' {@code
     * Params4bit}, whose packed numel it doubles.)
     */
    public static ParameterCounts of(TunableModel model) {
        ParameterCounts dense = of((Block) model);
        long quantized = 0;
        for (Dense d : model.linears().values()) {
            if (d.base() instanceof Dense.WeightStore.Nf4) {
                quantized += d.weightElements();
            }
        }
        return new ParameterCounts(dense.trainable(), dense.total() + quantized);
    }

    public double trainableFraction() {
        return total == 0 ? 0 : (double) trainable / total;
    }
}
