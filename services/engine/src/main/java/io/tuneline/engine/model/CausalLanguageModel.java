package io.tuneline.engine.model;

/**
 * A decoder-only language model with its LM head (GPT-2, the Llama family), as the causal LM
 * trainer, the exports and inference see it. Its {@code forward} takes token ids (B, T) and
 * optionally an attention mask (B, T), 1 for tokens and 0 for padding (pad on the right), and
 * returns logits (B, T, vocab).
 */
public interface CausalLanguageModel extends TunableModel {
    /**
     * A forward parameter: with virtual tokens attached (prompt tuning, P-tuning), the logits start
     * one position earlier, at the last virtual token: (B, 1 + T, vocab). PEFT's causal-LM loss
     * scores the first real token from there (its labels get N x -100 in front of the inputs'
     * labels), which the real tokens' logits alone cannot. Without virtual tokens it changes
     * nothing.
     */
    String WITH_LAST_VIRTUAL_TOKEN = "with_last_virtual_token";

    /**
     * The longest sequence the model is built for ({@code n_positions}, {@code
     * max_position_embeddings}).
     */
    int maxPositions();

    int vocabSize();

    /**
     * The value PEFT writes as {@code fan_in_fan_out} in a LoRA adapter's config: true where the
     * Hugging Face module stores its weight as (in, out) ({@code Conv1D}, GPT-2), false for {@code
     * nn.Linear} ({@code tuners/lora/model.py} warns and sets it per module type).
     */
    default boolean peftFanInFanOut() {
        return false;
    }
}
