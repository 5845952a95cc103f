package io.tuneline.engine.model;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Key/value prefixes a method gives every attention layer of a model (prefix tuning, Li & Liang
 * 2021, arXiv:2101.00190; P-tuning v2, Liu et al. 2022, arXiv:2110.07602): {@link #virtualTokens()}
 * keys and values per layer, computed once per forward pass from the method's parameters, that
 * every query may attend to as if they were cached earlier positions.
 *
 * <p>The family's attention prepends them to its keys and values (on the Llama family after RoPE,
 * so prefix keys carry no rotation, and before {@code repeat_kv}); the attention mask gains {@code
 * N} ones in front (causal or not, every real token sees every prefix); real tokens' positions
 * start at {@code N}, as transformers numbers positions after {@code past_key_values} (BERT's
 * {@code past_key_values_length}, GPT-2's {@code past_length}, Llama's {@code cache_position}), so
 * a learned-position table loses {@code N} rows of length; outputs are the real tokens' only.
 */
public interface KvPrefix {

    /** The sizes a family's attention needs: PEFT's {@code num_layers}, kv heads and head_dim. */
    record Sizes(int layers, int kvHeads, int headDim) {
        /**
         * PEFT's {@code token_dim} for prefix tuning: {@code head_dim * num_key_value_heads}
         * ({@code utils/other.py} {@code _prepare_prompt_learning_config}), so grouped-query
         * attention gets prefixes of its key/value width, not of the hidden size.
         */
        public int tokenDim() {
            return kvHeads * headDim;
        }
    }

    /** {@code N}, the number of virtual tokens. */
    int virtualTokens();

    /**
     * Every layer's prefix for one forward pass over {@code batch} rows: element {@code i} is layer
     * {@code i}'s {@code [keys, values]}, each (B, kv heads, N, head_dim), in the forward pass's
     * manager, with gradients reaching the method's parameters when they train.
     */
    List<NDArray[]> keysAndValues(ParameterStore ps, long batch, Device device, boolean training);

    /** The method's parameters under their full names ({@code prompt_encoder.embedding.weight}). */
    Map<String, Parameter> namedParameters();

    /**
     * Names among {@link #namedParameters()} that weight decay must skip: the prefix embedding (the
     * issue's rule: soft-prompt and prefix embeddings are not decayed), not the projection's
     * weights.
     */
    Set<String> undecayed();
}
