package io.tuneline.engine.model.llama;

import java.util.OptionalDouble;

/**
 * How a checkpoint's rotary position embedding stretches beyond the context it was trained on: the
 * {@code rope_scaling} block of a Hugging Face {@code config.json} ({@code rope_type}, or the older
 * key {@code type}). The inverse frequencies each type gives are computed in {@link LlamaRope}, as
 * transformers' {@code modeling_rope_utils.py} computes them ({@code ROPE_INIT_FUNCTIONS}).
 */
public sealed interface RopeScaling {

    /** The {@code rope_type} as written in {@code config.json}. */
    String type();

    /** No scaling: {@code 1 / theta^(2i/d)}. */
    record Default() implements RopeScaling {
        @Override
        public String type() {
            return "default";
        }
    }

    /** Position interpolation: every inverse frequency divided by {@code factor}. */
    record Linear(double factor) implements RopeScaling {
        @Override
        public String type() {
            return "linear";
        }
    }

    /**
     * Dynamic NTK: beyond {@code max_position_embeddings} the base grows with the sequence length
     * ({@code _compute_dynamic_ntk_parameters}); within it, the unscaled frequencies.
     */
    record Dynamic(double factor) implements RopeScaling {
        @Override
        public String type() {
            return "dynamic";
        }
    }

    /**
     * Llama 3.1's frequency-dependent interpolation ({@code _compute_llama3_parameters}): low
     * frequencies divided by {@code factor}, high ones kept, a smooth ramp between.
     */
    record Llama3(
            double factor,
            double lowFreqFactor,
            double highFreqFactor,
            int originalMaxPositionEmbeddings)
            implements RopeScaling {
        @Override
        public String type() {
            return "llama3";
        }
    }

    /**
     * YaRN (Peng et al. 2023, arXiv:2309.00071) as {@code _compute_yarn_parameters} computes it:
     * inverse frequencies blended between interpolated and extrapolated by a linear ramp over the
     * dimensions bounded by {@code beta_fast}/{@code beta_slow} rotations, and cos/sin scaled by
     * the attention factor.
     *
     * @param attentionFactor {@code attention_factor} when given; otherwise derived from {@code
     *     factor} (and {@code mscale}/{@code mscale_all_dim})
     * @param betaFast {@code beta_fast}, 32 when absent
     * @param betaSlow {@code beta_slow}, 1 when absent
     * @param originalMaxPositionEmbeddings {@code rope_scaling.original_max_position_embeddings},
     *     else the config's {@code max_position_embeddings}
     * @param truncate {@code truncate}, true when absent: the ramp's bounds are floored/ceiled
     */
    record Yarn(
            double factor,
            OptionalDouble attentionFactor,
            double betaFast,
            double betaSlow,
            OptionalDouble mscale,
            OptionalDouble mscaleAllDim,
            int originalMaxPositionEmbeddings,
            boolean truncate)
            implements RopeScaling {
        @Override
        public String type() {
            return "yarn";
        }
    }
}
