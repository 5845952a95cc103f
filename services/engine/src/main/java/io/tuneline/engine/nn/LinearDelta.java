package io.tuneline.engine.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import java.util.Map;

/**
 * An update attached to a {@link Dense} layer that leaves the base weight untouched: the layer adds
 * {@link #delta} to {@code x W^T + b}. This is the seam through which methods change a linear layer
 * without the layer knowing the method, as PEFT's tuner layers wrap a base {@code nn.Linear}
 * ({@code peft/tuners/lora/layer.py}) and torchtune's {@code LoRALinear} sits beside it.
 *
 * <p>A delta is a block so that DJL's parameter walk ({@code getParameters()}, used for gradient
 * clipping and parameter counts) sees its parameters as part of the layer.
 */
public sealed interface LinearDelta extends Block permits LoraDelta {

    /**
     * Its parameters under names relative to the layer's module path, as PEFT names them ({@code
     * lora_A.weight}), so {@code <module>.<name>} is the tensor's name in an adapter file.
     */
    Map<String, Parameter> namedParameters();

    /** What the delta adds to the layer's output for input {@code x} (..., in): (..., out). */
    NDArray delta(ParameterStore ps, NDArray x, boolean training);

    /**
     * The same update as a change of the (out, in) weight, which {@link Dense#mergedWeight()} adds
     * to W for an export with the update folded in (a new array; the caller closes it). Every delta
     * on a linear layer is itself linear in {@code x}; updates that are not (prefixes, soft
     * prompts, bottleneck adapters) attach through other seams and are exported unmerged.
     */
    NDArray weightDelta();
}
