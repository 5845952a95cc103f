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
     * Over the parameters {@code model} lists under Hugging Face names ({@link
     * TunableModel#namedParameters()}, adapters included), as PEFT's {@code
     * print_trainable_parameters} counts {@code named_parameters()}: a bias the architecture lacks
     * (the Llama family's, which {@code nn.Dense} holds at zero and frozen) is not counted. Linear
     * weights held in NF4 (QLoRA) or bf16 (precision bf16) are no parameters any more but still
     * part of the model: they count in the total at their element count (PEFT's {@code
     * get_nb_trainable_parameters} does the same for bitsandbytes' {@code Params4bit}).
     */
    public static ParameterCounts of(TunableModel model) {
        long trainable = 0;
        long total = 0;
        for (Parameter p : model.namedParameters().values()) {
            long n = p.getArray().size();
            total += n;
            if (p.requiresGradient()) {
                trainable += n;
            }
        }
        for (Dense d : model.linears().values()) {
            if (!(d.base() instanceof Dense.WeightStore.DenseWeight)) {
                total += d.weightElements();
            }
        }
        return new ParameterCounts(trainable, total);
    }

    public double trainableFraction() {
        return total == 0 ? 0 : (double) trainable / total;
    }
}
