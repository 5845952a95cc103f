package io.tuneline.engine.model.llama;

/**
 * Rotary position embedding (Su et al. 2021, arXiv:2104.09864) as Hugging Face's Llama family
 * computes it: the inverse frequencies of {@code modeling_rope_utils.py} ({@code
 * _compute_default_rope_parameters} and the scaled variants), cos/sin of {@code position *
 * inv_freq} over {@code cat(freqs, freqs)} ({@code LlamaRotaryEmbedding.forward}), scaled by the
 * attention factor (YaRN only), and applied as {@code x * cos + rotate_half(x) * sin} where {@code
 * rotate_half(x) = cat(-x2, x1)} over the two halves of each head. That is the half-split layout of
 * Hugging Face checkpoints, not Meta's interleaved pairs (the conversion script permutes q/k
 * weights to it).
 *
 * <p>The arithmetic follows transformers' float32 steps (exponent {@code float(2i)/dim}, {@code
 * base ** e}, {@code 1/x}, the llama3 and YaRN blends per element in float32), so the tables agree
 * with PyTorch's to float32 rounding.
 */
public final class LlamaRope {
    private LlamaRope() {}

    /**
     * The inverse frequencies for a forward pass whose largest position is {@code seqLen - 1}
     * ({@code seqLen} matters only for dynamic scaling); {@code head_dim / 2} values.
     */
    public static float[] inverseFrequencies(LlamaConfig c, long seqLen) {
        int dim = c.headDim();
        RopeScaling scaling = c.ropeScaling();
        if (scaling instanceof RopeScaling.Linear l) {
            float[] inv = base(c.ropeTheta(), dim);
            for (int i = 0; i < inv.length; i++) {
                inv[i] = (float) (inv[i] / l.factor());
            }
            return inv;
        }
        if (scaling instanceof RopeScaling.Dynamic d) {
            // _compute_dynamic_ntk_parameters: the base grows once the sequence is longer than
            // max_position_embeddings; computed in Python floats (double).
            int max = c.maxPositionEmbeddings();
            double len = Math.max(seqLen, max);
            double b =
                    c.ropeTheta()
                            * Math.pow(
                                    d.factor() * len / max - (d.factor() - 1),
                                    (double) dim / (dim - 2));
            return base(b, dim);
        }
        if (scaling instanceof RopeScaling.Llama3 l) {
            return llama3(base(c.ropeTheta(), dim), l);
        }
        if (scaling instanceof RopeScaling.Yarn y) {
            return yarn(c.ropeTheta(), dim, y);
        }
        return base(c.ropeTheta(), dim);
    }

    /** The factor cos and sin are multiplied by: YaRN's attention factor, otherwise 1. */
    public static float attentionFactor(LlamaConfig c) {
        if (!(c.ropeScaling() instanceof RopeScaling.Yarn y)) {
            return 1f;
        }
        if (y.attentionFactor().isPresent()) {
            return (float) y.attentionFactor().getAsDouble();
        }
        // `if mscale and mscale_all_dim`: both present and non-zero.
        double mscale = y.mscale().orElse(0);
        double mscaleAllDim = y.mscaleAllDim().orElse(0);
        if (mscale != 0 && mscaleAllDim != 0) {
            return (float) (yarnMscale(y.factor(), mscale) / yarnMscale(y.factor(), mscaleAllDim));
        }
        return (float) yarnMscale(y.factor(), 1);
    }

    /** {@code get_mscale} in {@code _compute_yarn_parameters}: 0.1 * m * ln(s) + 1 above 1. */
    private static double yarnMscale(double scale, double m) {
        return scale <= 1 ? 1.0 : 0.1 * m * Math.log(scale) + 1.0;
    }

    /**
     * cos and sin for positions {@code start .. start + t - 1}, each (t, head_dim) row-major:
     * {@code cos(pos * inv_freq[j mod head_dim/2]) * attention_factor}.
     */
    public static float[][] cosSin(LlamaConfig c, long start, int t) {
        float[] inv = inverseFrequencies(c, start + t);
        float scale = attentionFactor(c);
        int d = c.headDim();
        int half = d / 2;
        float[] cos = new float[t * d];
        float[] sin = new float[t * d];
        for (int p = 0; p < t; p++) {
            float pos = (float) (start + p);
            for (int j = 0; j < half; j++) {
                // float32 product, as the float32 matmul inv_freq @ position_ids.
                float angle = inv[j] * pos;
                float cv = (float) Math.cos(angle) * scale;
                float sv = (float) Math.sin(angle) * scale;
                cos[p * d + j] = cv;
                cos[p * d + j + half] = cv;
                sin[p * d + j] = sv;
                sin[p * d + j + half] = sv;
            }
        }
        return new float[][] {cos, sin};
    }

    /** {@code 1 / base ** (float(arange(0, dim, 2)) / dim)} in float32. */
    static float[] base(double base, int dim) {
        float[] inv = new float[dim / 2];
        for (int i = 0; i < inv.length; i++) {
            float exponent = (float) (2 * i) / (float) dim;
            float p = (float) Math.pow(base, exponent);
            inv[i] = 1f / p;
        }
        return inv;
    }

    /** {@code _compute_llama3_parameters} (Llama 3.1), element by element in float32. */
    private static float[] llama3(float[] inv, RopeScaling.Llama3 l) {
        float factor = (float) l.factor();
        double old = l.originalMaxPositionEmbeddings();
        double lowFreqWavelen = old / l.lowFreqFactor();
        double highFreqWavelen = old / l.highFreqFactor();
        float[] out = new float[inv.length];
        for (int i = 0; i < inv.length; i++) {
            float wavelen = (float) (2 * Math.PI) / inv[i];
            // wavelen > low_freq_wavelen: divide by factor; below high_freq_wavelen: keep.
            float scaled = wavelen > lowFreqWavelen ? inv[i] / factor : inv[i];
            boolean medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
            if (medium) {
                float smooth =
                        (float)
                                (((float) old / wavelen - (float) l.lowFreqFactor())
                                        / (float) (l.highFreqFactor() - l.lowFreqFactor()));
                scaled = (1 - smooth) * scaled / factor + smooth * scaled;
            }
            out[i] = scaled;
        }
        return out;
    }

    /** {@code _compute_yarn_parameters}: interpolation/extrapolation blended by a linear ramp. */
    private static float[] yarn(double base, int dim, RopeScaling.Yarn y) {
        int half = dim / 2;
        double low = correctionDim(y.betaFast(), dim, base, y.originalMaxPositionEmbeddings());
        double high = correctionDim(y.betaSlow(), dim, base, y.originalMaxPositionEmbeddings());
        if (y.truncate()) {
            low = Math.floor(low);
            high = Math.ceil(high);
        }
        low = Math.max(low, 0);
        high = Math.min(high, dim - 1);
        if (low == high) {
            high += 0.001; // "Prevent singularity"
        }
        float factor = (float) y.factor();
        float[] inv = new float[half];
        for (int i = 0; i < half; i++) {
            float posFreq = (float) Math.pow(base, (float) (2 * i) / (float) dim);
            float extrapolation = 1f / posFreq;
            float interpolation = 1f / (factor * posFreq);
            float ramp = (float) (((float) i - (float) low) / (float) (high - low));
            ramp = Math.min(Math.max(ramp, 0f), 1f);
            float extrapolationFactor = 1 - ramp;
            inv[i] =
                    interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor;
        }
        return inv;
    }

    /**
     * {@code find_correction_dim}: the dimension whose wavelength makes {@code rotations} turns.
     */
    private static double correctionDim(double rotations, int dim, double base, int maxPositions) {
        return (dim * Math.log(maxPositions / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
    }
}
