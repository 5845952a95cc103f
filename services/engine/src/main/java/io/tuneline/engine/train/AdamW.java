package io.tuneline.engine.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * AdamW (Loshchilov & Hutter 2019, arXiv:1711.05101, Algorithm 2) as {@code torch.optim.AdamW}
 * computes it (to float rounding), with its defaults beta1 0.9, beta2 0.999, eps 1e-8. Our own
 * rather than DJL's {@code Optimizer} so its moments can be checkpointed and restored: a resumed
 * run must continue exactly where it stopped.
 *
 * <p>Per parameter, as PyTorch: {@code w *= 1 - lr wd} (decoupled decay), {@code m = b1 m + (1-b1)
 * g}, {@code v = b2 v + (1-b2) g^2}, {@code w -= (lr / (1-b1^t)) m / (sqrt(v) / sqrt(1-b2^t) +
 * eps)}. The update runs as one native call, libtorch's fused Adam step in DJL's PyTorch engine
 * ({@code PtNDArrayEx.adamUpdate}, {@code ai_djl_pytorch_jni_PyTorchLibrary_optim.cc}): the loop of
 * separate whole-tensor operations it replaces made 34-38 calls into native code per tensor ({@code
 * docs/benchmarks.md}, the step profile). That kernel computes {@code w -= c m / (sqrt(v) + e)}
 * with the learning rate's bias correction {@code c} folded into one factor, which moves eps inside
 * the bias correction; passing {@code c = lr sqrt(1-b2^t) / (1-b1^t)} and {@code e = eps
 * sqrt(1-b2^t)} gives PyTorch's formula ({@code AdamWTest} checks it against an independent
 * computation). Its decay is the decoupled {@code w -= lr wd w}, applied before the update as
 * PyTorch's is.
 *
 * <p>The kernel takes the betas as floats and adds {@code (1 - beta) g} with {@code 1 - beta} taken
 * in single precision, where PyTorch takes it in double: {@code 1 - 0.999f} is 1.3e-5 below 0.001.
 * The moments are kept as the kernel accumulates them (our code before it did the same), PyTorch's
 * {@code exp_avg} and {@code exp_avg_sq} times {@link #FIRST_SCALE} and {@link #SECOND_SCALE}, and
 * the update divides the factors out, so the weights follow PyTorch's.
 */
public final class AdamW {
    // Doubles, as PyTorch's Python floats: the bias corrections 1 - beta^t are taken from them in
    // double precision (0.999f would shift 1 - beta2 by 1e-5 relative).
    static final double BETA1 = 0.9;
    static final double BETA2 = 0.999;
    static final double EPS = 1e-8;

    /** The stored first moment over PyTorch's {@code exp_avg}: (1 - 0.9f) / 0.1. */
    static final double FIRST_SCALE = (1 - (double) (float) BETA1) / (1 - BETA1);

    /** The stored second moment over PyTorch's {@code exp_avg_sq}: (1 - 0.999f) / 0.001. */
    static final double SECOND_SCALE = (1 - (double) (float) BETA2) / (1 - BETA2);

    private final float weightDecay;
    private final NDManager manager;
    private final Map<String, NDArray> first = new LinkedHashMap<>();
    private final Map<String, NDArray> second = new LinkedHashMap<>();
    private long step;

    /**
     * @param manager owns the moments; the model's manager, so they live as long as the model
     */
    public AdamW(float weightDecay, NDManager manager) {
        this.weightDecay = weightDecay;
        this.manager = manager;
    }

    /** Counts one optimizer step; call once per step before the parameters' updates. */
    public void beginStep() {
        step++;
    }

    public long step() {
        return step;
    }

    /**
     * Updates {@code weight} in place from its {@code gradient} at learning rate {@code lr}, with
     * the weight decay when {@code decay} (biases and norm weights go without, as in Hugging Face's
     * Trainer: {@link io.tuneline.engine.model.TunableModel#decays}), and zeroes the weight's own
     * gradient, so the next step's backward passes accumulate from zero.
     *
     * @param gradientScale multiplies the gradient first (global-norm clipping's factor, 1 for
     *     none), as {@code clip_grad_norm_} scales it in place before PyTorch's step; the gradient
     *     array itself is left unscaled
     */
    public void update(
            String name,
            NDArray weight,
            NDArray gradient,
            float lr,
            boolean decay,
            float gradientScale) {
        NDArray m = first.computeIfAbsent(name, k -> zerosLike(weight));
        NDArray v = second.computeIfAbsent(name, k -> zerosLike(weight));
        double bias1 = 1 - Math.pow(BETA1, step);
        // sqrt(v) / sqrt(1 - beta2^t) with PyTorch's v: the stored v is SECOND_SCALE times it.
        double sqrtBias2 = Math.sqrt(SECOND_SCALE * (1 - Math.pow(BETA2, step)));
        boolean decoupled = decay && weightDecay > 0;
        // Without decay the coupled form with 0 costs the kernel one addition; its decoupled form
        // would cost three operations and two temporaries.
        weight.getNDArrayInternal()
                .adamUpdate(
                        new NDList(weight, gradient, m, v),
                        new NDList(weight),
                        lr,
                        (float) (lr * sqrtBias2 / (bias1 * FIRST_SCALE)),
                        decoupled ? weightDecay : 0f,
                        gradientScale,
                        -1f, // no element-wise clipping
                        (float) BETA1,
                        (float) BETA2,
                        (float) (EPS * sqrtBias2),
                        false,
                        decoupled);
    }

    /** The moments by parameter name, for a checkpoint: {@code m.<name>} and {@code v.<name>}. */
    public Map<String, NDArray> state() {
        Map<String, NDArray> out = new LinkedHashMap<>();
        first.forEach((k, a) -> out.put("m." + k, a));
        second.forEach((k, a) -> out.put("v." + k, a));
        return out;
    }

    /** Restores moments and the step count saved by {@link #state()}. */
    public void restore(long step, Map<String, float[]> state, Map<String, long[]> shapes) {
        this.step = step;
        state.forEach(
                (key, values) -> {
                    NDArray a = manager.create(values, new Shape(shapes.get(key)));
                    if (key.startsWith("m.")) {
                        replace(first, key.substring(2), a);
                    } else if (key.startsWith("v.")) {
                        replace(second, key.substring(2), a);
                    } else {
                        throw new IllegalArgumentException("unknown optimizer state " + key);
                    }
                });
    }

    private static void replace(Map<String, NDArray> map, String name, NDArray value) {
        NDArray old = map.put(name, value);
        if (old != null) {
            old.close();
        }
    }

    private NDArray zerosLike(NDArray weight) {
        return manager.zeros(weight.getShape(), weight.getDataType(), weight.getDevice());
    }
}
