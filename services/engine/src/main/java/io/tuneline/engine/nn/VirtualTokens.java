package io.tuneline.engine.nn;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import java.util.Map;

/**
 * N virtual token vectors that a method (prompt tuning, P-tuning) gives a model to prepend to its
 * input embeddings, computed anew in every forward pass from the method's parameters (a soft
 * prompt's rows, or a prompt encoder's output), as PEFT's {@code PeftModel.get_prompt} is called in
 * every {@code forward} ({@code peft/peft_model.py}).
 *
 * <p>A model that takes them ({@link io.tuneline.engine.model.TunableModel#attachVirtualTokens})
 * runs on {@code N + T} embeddings: the attention mask gets N ones in front, positions run {@code 0
 * .. N + T - 1} (PEFT passes {@code inputs_embeds} of length N + T, so learned positions and RoPE
 * see the virtual tokens first), BERT's token types are 0; the model's output keeps the T real
 * tokens only.
 */
public interface VirtualTokens {

    /** N, the number of virtual tokens. */
    int count();

    /** The vectors (N, hidden) on {@code device}, recorded for autograd when training. */
    NDArray embeddings(ParameterStore ps, Device device, boolean training);

    /**
     * The vectors broadcast to a batch, (batch, N, hidden), owned by {@code manager} (the forward
     * pass's, the step's in training). Why: DJL gives an operation's result the manager of its
     * first operand, and these are computed from parameters, which live in the model's manager;
     * prepended in front of the input embeddings, everything the forward pass derives from them —
     * all its activations — would stay in the model's manager after the step, a leak of a step's
     * activations per step.
     */
    default NDArray forBatch(
            ParameterStore ps, Device device, boolean training, long batch, NDManager manager) {
        NDArray rows = embeddings(ps, device, training);
        NDArray expanded = rows.expandDims(0);
        expanded.attach(manager);
        return expanded.broadcast(batch, rows.getShape().get(0), rows.getShape().get(1));
    }

    /**
     * Every parameter under its full name ({@code prompt_encoder.embedding.weight}, {@code
     * prompt_encoder.mlp_head.0.weight}): what the model lists in {@code namedParameters()} and
     * {@code methodParameters()}. Soft-prompt and encoder-embedding rows are {@code
     * Parameter.Type.OTHER}, so weight decay skips them ({@code TunableModel.decaysByType});
     * encoder linear weights are {@code WEIGHT} and decay.
     */
    Map<String, Parameter> namedParameters();
}
