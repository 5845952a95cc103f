package io.tuneline.engine.train;

/**
 * Dynamic loss scaling for fp16 training (Micikevicius et al. 2018, arXiv:1710.03740, section 3.2),
 * the state machine of PyTorch's {@code torch.amp.GradScaler} ({@code _amp_update_scale_}, {@code
 * aten/src/ATen/native/cuda/AmpKernels.cu}): the loss is multiplied by {@link #scale()} before
 * backward so that small gradients survive float16's range (its smallest subnormal is 2^-24), the
 * gradients are divided by it again before clipping and the optimizer, and after each step:
 *
 * <ul>
 *   <li>a gradient that is not finite (the scaled values overflowed float16) means the step is
 *       skipped (weights and optimizer moments untouched), the scale is multiplied by the backoff
 *       factor and the count of clean steps restarts;
 *   <li>otherwise one more clean step is counted, and after {@code growthInterval} of them in a row
 *       the scale is multiplied by the growth factor (kept as it is when that product would not be
 *       finite) and the count restarts.
 * </ul>
 *
 * <p>The scale is a float32, as GradScaler's {@code _scale} tensor is, and the factors doubles, as
 * the kernel's arguments are: the products are taken in double and rounded to float32 as PyTorch's
 * are. The state ({@link #scale()}, {@link #growthTracker()}) is part of a checkpoint ({@link
 * TrainingState}), so a resumed run scales exactly as an uninterrupted one.
 */
public final class LossScaler {

    /**
     * GradScaler's settings.
     *
     * @param initScale the first scale (PyTorch's {@code init_scale}, 2^16)
     * @param growthFactor multiplies the scale after {@code growthInterval} clean steps (2)
     * @param backoffFactor multiplies the scale after a step with a non-finite gradient (0.5)
     * @param growthInterval clean steps in a row before the scale grows (2000)
     */
    public record Config(
            float initScale, double growthFactor, double backoffFactor, int growthInterval) {

        /** {@code torch.amp.GradScaler()}'s defaults. */
        public static final Config TORCH_DEFAULTS = new Config(65536f, 2f, 0.5f, 2000);

        public Config {
            if (!(initScale > 0) || Float.isInfinite(initScale)) {
                throw new IllegalArgumentException(
                        "loss scaling: the initial scale must be a positive finite number, was "
                                + initScale);
            }
            if (!(growthFactor > 1) || Double.isInfinite(growthFactor)) {
                throw new IllegalArgumentException(
                        "loss scaling: the growth factor must be above 1, was " + growthFactor);
            }
            if (!(backoffFactor > 0 && backoffFactor < 1)) {
                throw new IllegalArgumentException(
                        "loss scaling: the backoff factor must be in (0, 1), was " + backoffFactor);
            }
            if (growthInterval < 1) {
                throw new IllegalArgumentException(
                        "loss scaling: the growth interval must be at least 1 step, was "
                                + growthInterval);
            }
        }
    }

    private final Config config;
    private float scale;
    private int growthTracker;

    /** A scaler at its initial scale. */
    public LossScaler(Config config) {
        this(config, config.initScale(), 0);
    }

    /**
     * A scaler where a checkpoint left it.
     *
     * @throws IllegalArgumentException when the state is not one a scaler can be in
     */
    public LossScaler(Config config, float scale, int growthTracker) {
        if (!(scale > 0) || Float.isInfinite(scale)) {
            throw new IllegalArgumentException(
                    "loss scaling: a saved scale must be a positive finite number, was " + scale);
        }
        if (growthTracker < 0 || growthTracker >= config.growthInterval()) {
            throw new IllegalArgumentException(
                    "loss scaling: a saved count of clean steps must be in [0, "
                            + config.growthInterval()
                            + "), was "
                            + growthTracker);
        }
        this.config = config;
        this.scale = scale;
        this.growthTracker = growthTracker;
    }

    public Config config() {
        return config;
    }

    /** What the loss is multiplied by before the next backward pass. */
    public float scale() {
        return scale;
    }

    /** Clean steps in a row since the scale last changed (GradScaler's {@code _growth_tracker}). */
    public int growthTracker() {
        return growthTracker;
    }

    /**
     * Moves the scale after a step, as {@code GradScaler.update()} does.
     *
     * @param foundInf whether any gradient of the step was not finite (the step was skipped)
     */
    public void update(boolean foundInf) {
        if (foundInf) {
            scale = (float) (scale * config.backoffFactor());
            growthTracker = 0;
            return;
        }
        int successful = growthTracker + 1;
        if (successful == config.growthInterval()) {
            float grown = (float) (scale * config.growthFactor());
            if (Float.isFinite(grown)) {
                scale = grown;
            }
            growthTracker = 0;
        } else {
            growthTracker = successful;
        }
    }
}
