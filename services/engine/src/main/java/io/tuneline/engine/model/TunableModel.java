package io.tuneline.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.nn.LinearDelta;
import io.tuneline.engine.nn.ResidualTap;
import io.tuneline.engine.nn.VirtualTokens;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * What a fine-tuning method sees of a model, whatever its family (BERT, GPT-2, Llama): parameters
 * and linear layers under their Hugging Face names, and where the layers, embeddings and outputs
 * are. A method is written once against this interface; a family implements it once.
 *
 * <p>Names are those of the Hugging Face model the weights come from ({@code
 * encoder.layer.0.attention.self.query.weight}, {@code transformer.h.0.attn.c_attn.weight}), so
 * targets, glob patterns, checkpoints and PEFT exports all speak the same names. A parameter
 * belongs to module {@code m} when its name starts with {@code m + "."}.
 */
public interface TunableModel extends Block {

    /**
     * Every parameter under its Hugging Face name, the deltas attached to linear layers included
     * (PEFT's {@code <module>.lora_A.weight}). Tied parameters are listed once, as PyTorch's {@code
     * named_parameters()} lists them.
     */
    Map<String, Parameter> namedParameters();

    /**
     * The linear layers a method may attach deltas to, by full Hugging Face module path ({@code
     * encoder.layer.0.intermediate.dense}, {@code transformer.h.0.attn.c_attn}), in the model's
     * order. The task head is not among them: it trains whole (PEFT's {@code modules_to_save}).
     */
    Map<String, Dense> linears();

    /**
     * Modules of the task head, trained by every method: PEFT's {@code modules_to_save} (a
     * classifier's {@code classifier}); empty for a language model whose head is tied to its
     * embedding.
     */
    List<String> headModules();

    /**
     * Modules above the last layer up to the output: the final norm and the head. Layer freezing
     * trains them with the top layers, since they read the top layer's output.
     */
    List<String> outputModules();

    /** Modules of the input embeddings, trained by layer freezing only when asked. */
    List<String> embeddingModules();

    /** Prefix of the numbered layers: layer {@code i}'s module is {@code layerPrefix() + i}. */
    String layerPrefix();

    int layerCount();

    /**
     * The targets PEFT gives this family when a LoRA job names none ({@code
     * TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING} in {@code peft/utils/constants.py}: bert
     * {@code query, value}; gpt2 {@code c_attn}; llama {@code q_proj, v_proj}).
     */
    List<String> defaultLoraTargets();

    /**
     * This model's training forward pass cut at its layer boundaries ({@link LayerSegments}), for
     * activation checkpointing; empty when the family or the attached method (virtual tokens,
     * key/value prefixes) has no such cut, and the trainer then runs {@code forward} whole. The
     * segments' output is what {@code forward} returns: a causal LM's logits (B, T, vocab), a
     * classifier's (B, labels).
     *
     * @param mask (B, T) with 1 for tokens and 0 for padding
     */
    default Optional<LayerSegments> segments(
            ai.djl.training.ParameterStore ps, NDArray ids, NDArray mask, boolean training) {
        return Optional.empty();
    }

    /**
     * Whether AdamW's decoupled weight decay applies to a parameter; the optimizer reads it per
     * parameter. By default {@link #decaysByType}; a family or method overrides it for parameters
     * of its own (soft prompts, prefixes).
     */
    default boolean decays(String parameterName) {
        Parameter p = namedParameters().get(parameterName);
        if (p == null) {
            throw new IllegalArgumentException("no parameter named " + parameterName);
        }
        if (kvPrefix().map(k -> k.undecayed().contains(parameterName)).orElse(false)) {
            return false;
        }
        return decaysByType(p);
    }

    /**
     * Hugging Face Trainer's rule ({@code Trainer.get_decay_parameter_names}: every parameter
     * except biases and those of LayerNorm modules), decided by the parameter's type: weights
     * (linear, embedding, adapter matrices) decay; biases and a norm's scale and shift (LayerNorm,
     * RMSNorm: {@code GAMMA}, {@code BETA}) do not.
     */
    static boolean decaysByType(Parameter p) {
        return p.getType() == Parameter.Type.WEIGHT;
    }

    /**
     * Parameters a method adds outside the linear layers (soft prompts and prompt encoders,
     * key/value prefixes and their projection, bottleneck adapters) under their full names. A
     * family lists them in {@link #namedParameters()} too, so training, clipping, parameter counts
     * and checkpoints see them with no code of their own. Empty until such a method attaches.
     */
    default Map<String, Parameter> methodParameters() {
        return Map.of();
    }

    /**
     * The width of a token embedding (PEFT's {@code token_dim}): {@code hidden_size}, {@code
     * n_embd}.
     */
    default int hiddenSize() {
        throw new UnsupportedOperationException(
                getClass().getSimpleName() + " names no hidden size");
    }

    /**
     * {@code num_attention_heads} ({@code n_head}), as PEFT's prompt-learning configs record it.
     */
    default int attentionHeads() {
        throw new UnsupportedOperationException(
                getClass().getSimpleName() + " names no attention heads");
    }

    /**
     * The input token embedding (vocab, hidden): what prompt tuning's vocabulary and text
     * initialisations copy rows from (PEFT's {@code word_embeddings}).
     */
    default Parameter tokenEmbedding() {
        throw new UnsupportedOperationException(
                getClass().getSimpleName() + " has no token embedding for virtual tokens");
    }

    /**
     * The input-embedding seam: {@code tokens}' N vectors are prepended to the input embeddings in
     * every forward pass ({@link VirtualTokens} says how the mask, positions and token types
     * follow), the output keeps the real tokens only (a classifier's head on the first token reads
     * position 0, the first virtual token, as transformers does under PEFT), and the tokens'
     * parameters are listed by {@link #methodParameters()} and {@link #namedParameters()}. A model
     * takes one set.
     *
     * @throws IllegalStateException when virtual tokens are attached already
     * @throws UnsupportedOperationException when the family has no such seam
     */
    default void attachVirtualTokens(VirtualTokens tokens) {
        throw new UnsupportedOperationException(
                getClass().getSimpleName() + " takes no virtual tokens");
    }

    /** The attached virtual tokens, if any. */
    default Optional<VirtualTokens> virtualTokens() {
        return Optional.empty();
    }

    /**
     * The sizes of the key/value prefixes this model's attention takes ({@link KvPrefix}).
     *
     * @throws UnsupportedOperationException when the family takes none
     */
    default KvPrefix.Sizes kvPrefixSizes() {
        throw new UnsupportedOperationException(
                getClass().getSimpleName() + " takes no key/value prefixes");
    }

    /**
     * Makes every attention layer prepend {@code prefix}'s keys and values from the next forward
     * pass on, and lists its parameters in {@link #methodParameters()} and {@link
     * #namedParameters()}.
     *
     * @throws IllegalStateException when a prefix is attached already
     * @throws UnsupportedOperationException when the family takes none
     */
    default void attachKvPrefix(KvPrefix prefix) {
        throw new UnsupportedOperationException(
                getClass().getSimpleName() + " takes no key/value prefixes");
    }

    /** The attached key/value prefix, if a method attached one. */
    default Optional<KvPrefix> kvPrefix() {
        return Optional.empty();
    }

    /**
     * Where each layer closes its attention and feed-forward residual connections, by the {@code
     * adapters} library's module path for that family's {@code BottleneckLayer} ({@code
     * encoder.layer.0.output}, {@code transformer.h.0.output_adapters}), in the model's order: the
     * seam bottleneck adapters attach to. Empty for a family without taps.
     */
    default Map<String, ResidualTap> residualTaps() {
        return Map.of();
    }

    /**
     * Every parameter a method added: the deltas attached to linear layers under their full names
     * ({@code encoder.layer.0.attention.self.query.lora_A.weight}) and {@link #methodParameters()}.
     * What an adapter export and {@code MethodState} write; the rest is the base.
     */
    default Map<String, Parameter> deltaParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>(methodParameters());
        linears()
                .forEach(
                        (module, dense) -> {
                            for (LinearDelta d : dense.deltas()) {
                                d.namedParameters()
                                        .forEach(
                                                (name, param) -> p.put(module + "." + name, param));
                            }
                        });
        return p;
    }

    /**
     * The base parameters (every parameter that is not a delta's) under their Hugging Face names,
     * each linear weight with its deltas folded in: what a merged export writes. New arrays; the
     * caller closes them.
     */
    default Map<String, NDArray> mergedWeights() {
        Map<String, Dense> byWeight = new LinkedHashMap<>();
        linears().forEach((module, dense) -> byWeight.put(module + ".weight", dense));
        Map<String, Parameter> deltas = deltaParameters();
        Map<String, NDArray> out = new LinkedHashMap<>();
        for (Map.Entry<String, Parameter> e : namedParameters().entrySet()) {
            String name = e.getKey();
            if (deltas.containsKey(name)) {
                continue;
            }
            Dense d = byWeight.get(name);
            out.put(name, d != null ? d.mergedWeight() : e.getValue().getArray().duplicate());
        }
        // A weight held in NF4 (QLoRA) is no parameter; the merged export still writes it,
        // dequantized with the deltas folded in, so the result is a plain full-precision model.
        byWeight.forEach(
                (name, dense) -> {
                    if (!out.containsKey(name)) {
                        out.put(name, dense.mergedWeight());
                    }
                });
        return out;
    }

    /** {@link #namedParameters()} without the deltas': the parameters a base checkpoint holds. */
    default Map<String, Parameter> baseParameters() {
        Map<String, Parameter> deltas = deltaParameters();
        Map<String, Parameter> p = new LinkedHashMap<>();
        namedParameters()
                .forEach(
                        (name, param) -> {
                            if (!deltas.containsKey(name)) {
                                p.put(name, param);
                            }
                        });
        return p;
    }
}
