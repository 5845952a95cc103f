package io.tuneline.engine.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * AdamW (Loshchilov & Hutter 2019, arXiv:1711.05101, Algorithm 2) with the defaults of {@code
 * torch.optim.AdamW}: beta1 0.9, beta2 0.999, eps 1e-8. Our own rather than DJL's so its moments
 * can be checkpointed and restored: a resumed run must continue exactly where it stopped.
 *
 * <p>Per parameter: {@code m = b1 m + (1-b1) g}, {@code v = b2 v + (1-b2) g^2}, then {@code w -= lr
 * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + lr wd w} — the decay is decoupled from the
 * gradient, as in PyTorch.
 */
public final class AdamW {
    static final float BETA1 = 0.9f;
    static final float BETA2 = 0.999f;
    static final float EPS = 1e-8f;

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
     * Trainer: {@link io.tuneline.engine.model.TunableModel#decays}).
     */
    public void update(String name, NDArray weight, NDArray gradient, float lr, boolean decay) {
        NDArray m = first.computeIfAbsent(name, k -> zerosLike(weight));
        NDArray v = second.computeIfAbsent(name, k -> zerosLike(weight));
        // Every temporary is closed here: the step runs thousands of times per run.
        try (NDArray scaled = gradient.mul(1 - BETA1)) {
            m.muli(BETA1).addi(scaled);
        }
        try (NDArray g2 = gradient.square()) {
            v.muli(BETA2).addi(g2.muli(1 - BETA2));
        }
        double bias1 = 1 - Math.pow(BETA1, step);
        double bias2 = 1 - Math.pow(BETA2, step);
        if (decay && weightDecay > 0) {
            try (NDArray decrement = weight.mul(lr * weightDecay)) {
                weight.subi(decrement);
            }
        }
        try (NDArray corrected = v.div((float) bias2);
                NDArray denominator = corrected.sqrt()) {
            denominator.addi(EPS);
            try (NDArray update = m.div(denominator)) {
                weight.subi(update.muli((float) (lr / bias1)));
            }
        }
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
