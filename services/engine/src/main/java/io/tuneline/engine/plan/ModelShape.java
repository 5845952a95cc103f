package io.tuneline.engine.plan;

import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.llama.LlamaConfig;

/**
 * What the pre-flight estimate needs to know of a base model: its family's {@code config.json}, as
 * the engine's own config readers parse it, and the task head it will carry. Nothing here loads a
 * weight.
 */
public sealed interface ModelShape {

    /** The family's {@code model_type} ({@code bert}, {@code gpt2}, {@code llama}, ...). */
    String modelType();

    /**
     * A BERT-family encoder with a classification head over {@code labels} classes; {@code pooler}
     * when the head reads BERT's pooler (Hugging Face's {@code cls_pooler}, a checkpoint that has
     * one), which then sits in the model, frozen unless the method trains the output modules.
     */
    record Encoder(BertConfig config, boolean pooler, int labels) implements ModelShape {
        public Encoder {
            if (labels < 1) {
                throw new IllegalArgumentException("a classifier needs at least one label");
            }
        }

        @Override
        public String modelType() {
            return config.modelType();
        }
    }

    /** A GPT-2 causal language model (its head tied to {@code wte}). */
    record Gpt2(Gpt2Config config) implements ModelShape {
        @Override
        public String modelType() {
            return "gpt2";
        }
    }

    /** A Llama-family causal language model (Llama, Mistral, Qwen2, Qwen3). */
    record Llama(LlamaConfig config) implements ModelShape {
        @Override
        public String modelType() {
            return config.modelType();
        }
    }
}
