package io.tuneline.engine.method;

import java.util.List;

/**
 * The LoRA targets PEFT gives a model family when a job names none: {@code
 * TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING} in {@code peft/utils/constants.py} (bert and
 * roberta {@code query, value}; gpt2 {@code c_attn}; llama, mistral, qwen2 and qwen3 {@code q_proj,
 * v_proj}). Plain data, so the pre-flight estimate reads them without building a model.
 */
public final class LoraDefaults {
    /** BERT and RoBERTa. */
    public static final List<String> BERT = List.of("query", "value");

    /** GPT-2's fused query/key/value projection. */
    public static final List<String> GPT2 = List.of("c_attn");

    /** The Llama family (llama, mistral, qwen2, qwen3). */
    public static final List<String> LLAMA = List.of("q_proj", "v_proj");

    private LoraDefaults() {}
}
