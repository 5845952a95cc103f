package io.tuneline.engine.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;
import ai.djl.pytorch.jni.IValue;
import io.tuneline.engine.nn.TorchScriptFunction;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * AdamW (Loshchilov & Hutter 2019, arXiv:1711.05101, Algorithm 2) as {@code torch.optim.AdamW}
 * computes it, with its defaults beta1 0.9, beta2 0.999, eps 1e-8. Our own rather than DJL's {@code
 * Optimizer} so its moments can be checkpointed and restored: a resumed run must continue exactly
 * where it stopped.
 *
 * <p>Per parameter, as PyTorch: {@code w *= 1 - lr wd} (decoupled decay), {@code m = b1 m + (1-b1)
 * g}, {@code v = b2 v + (1-b2) g^2}, {@code w -= (lr / (1-b1^t)) m / (sqrt(v) / sqrt(1-b2^t) +
 * eps)}. A step is one native call for all parameters: libtorch's own fused AdamW kernel ({@code
 * torch._fused_adamw_}, what {@code torch.optim.AdamW(fused=True)} calls; one vectorised pass over
 * each tensor, on a CPU as on a GPU), reached through a small TorchScript method ({@link
 * TorchScriptFunction}) because DJL's JNI does not expose it. DJL's own fused Adam ({@code
 * NDArrayEx.adamUpdate}), used before, made about a dozen passes and seven whole-tensor temporaries
 * per tensor: MiniLM's full fine-tuning spent 152 ms per step in it against PyTorch's 60 ({@code
 * docs/benchmarks.md}). The moments are PyTorch's {@code exp_avg} and {@code exp_avg_sq} exactly.
 */
public final class AdamW implements AutoCloseable {
    // Doubles, as PyTorch's Python floats: the kernel takes them (and 1 - beta) in double.
    static final double BETA1 = 0.9;
    static final double BETA2 = 0.999;
    static final double EPS = 1e-8;

    /**
     * Checkpoints of format 1 hold the moments DJL's kernel accumulated: PyTorch's times (1 - 0.9f)
     * / 0.1 and (1 - 0.999f) / 0.001, as it took 1 - beta in single precision.
     */
    static final double FORMAT_1_FIRST_SCALE = (1 - (double) (float) BETA1) / (1 - BETA1);

    static final double FORMAT_1_SECOND_SCALE = (1 - (double) (float) BETA2) / (1 - BETA2);

    /**
     * Scales the gradients by the clipping (and loss-unscaling) factor first, as {@code
     * clip_grad_norm_} does in place before PyTorch's step, then steps, then zeroes the gradients
     * so the next step's backward passes accumulate from zero.
     */
    private static final String KERNEL =
            """
              def forward(self: __torch__.AdamWKernel,
                params: List[Tensor],
                grads: List[Tensor],
                exp_avgs: List[Tensor],
                exp_avg_sqs: List[Tensor],
                steps: List[Tensor],
                lr: float,
                beta1: float,
                beta2: float,
                weight_decay: float,
                eps: float,
                grad_factor: float) -> int:
                if grad_factor != 1.:
                  torch._foreach_mul_(grads, grad_factor)
                torch._fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, annotate(List[Tensor], []), steps, lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay, eps=eps, amsgrad=False, maximize=False)
                torch._foreach_zero_(grads)
                return len(params)
            """;

    private final float weightDecay;
    private final NDManager manager;
    private final Map<String, NDArray> first = new LinkedHashMap<>();
    private final Map<String, NDArray> second = new LinkedHashMap<>();
    private TorchScriptFunction kernel;
    private long step;

    /**
     * @param manager owns the moments and the compiled kernel until {@link #close} (the model's
     *     manager: on the model's device)
     */
    public AdamW(float weightDecay, NDManager manager) {
        this.weightDecay = weightDecay;
        this.manager = manager;
    }

    /** Counts one optimizer step; call once per step before {@link #update}. */
    public void beginStep() {
        step++;
    }

    public long step() {
        return step;
    }

    /**
     * Updates every weight in place from its gradient at learning rate {@code lr}, with the weight
     * decay where {@code decays} says so (biases and norm weights go without, as in Hugging Face's
     * Trainer: {@link io.tuneline.engine.model.TunableModel#decays}), and zeroes the gradients, so
     * the next step's backward passes accumulate from zero.
     *
     * @param weights the trained weights by name, each with its gradient
     * @param gradientScale multiplies the gradients first (global-norm clipping's factor over the
     *     loss scale, 1 for neither)
     */
    public void update(
            Map<String, NDArray> weights, Predicate<String> decays, float lr, float gradientScale) {
        List<String> decayed = new ArrayList<>();
        List<String> plain = new ArrayList<>();
        for (String name : weights.keySet()) {
            (weightDecay > 0 && decays.test(name) ? decayed : plain).add(name);
        }
        try (NDManager scratch = manager.newSubManager()) {
            // PyTorch's step count is a float32 tensor per parameter; they all read the same.
            PtNDArray count = (PtNDArray) scratch.create((float) step);
            run(weights, decayed, weightDecay, lr, gradientScale, count);
            run(weights, plain, 0f, lr, gradientScale, count);
        }
    }

    private void run(
            Map<String, NDArray> weights,
            List<String> names,
            float decay,
            float lr,
            float gradientScale,
            PtNDArray count) {
        if (names.isEmpty()) {
            return;
        }
        int n = names.size();
        PtNDArray[] params = new PtNDArray[n];
        PtNDArray[] grads = new PtNDArray[n];
        PtNDArray[] m = new PtNDArray[n];
        PtNDArray[] v = new PtNDArray[n];
        PtNDArray[] steps = new PtNDArray[n];
        try {
            for (int i = 0; i < n; i++) {
                NDArray weight = weights.get(names.get(i));
                params[i] = (PtNDArray) weight;
                grads[i] = (PtNDArray) weight.getGradient();
                m[i] = (PtNDArray) first.computeIfAbsent(names.get(i), k -> zerosLike(weight));
                v[i] = (PtNDArray) second.computeIfAbsent(names.get(i), k -> zerosLike(weight));
                steps[i] = count;
            }
            IValue[] args = {
                IValue.listFrom(params),
                IValue.listFrom(grads),
                IValue.listFrom(m),
                IValue.listFrom(v),
                IValue.listFrom(steps),
                IValue.from((double) lr),
                IValue.from(BETA1),
                IValue.from(BETA2),
                IValue.from((double) decay),
                IValue.from(EPS),
                IValue.from((double) gradientScale)
            };
            try (IValue done = kernel().call("forward", args)) {
                // The method returns how many tensors it stepped; nothing else to read.
            } finally {
                for (IValue a : args) {
                    a.close();
                }
            }
        } finally {
            for (PtNDArray g : grads) {
                if (g != null) {
                    g.close();
                }
            }
        }
    }

    /** Compiled at the first step, on the manager's device. */
    private TorchScriptFunction kernel() {
        if (kernel == null) {
            kernel = TorchScriptFunction.compile((PtNDManager) manager, "AdamWKernel", KERNEL);
        }
        return kernel;
    }

    /** Frees the moments and the compiled kernel; the optimizer is not used after. */
    @Override
    public void close() {
        first.values().forEach(NDArray::close);
        second.values().forEach(NDArray::close);
        first.clear();
        second.clear();
        if (kernel != null) {
            kernel.close();
            kernel = null;
        }
    }

    /** The moments by parameter name, for a checkpoint: {@code m.<name>} and {@code v.<name>}. */
    public Map<String, NDArray> state() {
        Map<String, NDArray> out = new LinkedHashMap<>();
        first.forEach((k, a) -> out.put("m." + k, a));
        second.forEach((k, a) -> out.put("v." + k, a));
        return out;
    }

    /**
     * Restores moments and the step count saved by {@link #state()}; {@code format} is the
     * checkpoint's ({@link TrainingCheckpoint}), whose moments of format 1 are converted.
     */
    public void restore(
            long step, Map<String, float[]> state, Map<String, long[]> shapes, int format) {
        this.step = step;
        state.forEach(
                (key, values) -> {
                    if (format == 1) {
                        double scale =
                                key.startsWith("m.") ? FORMAT_1_FIRST_SCALE : FORMAT_1_SECOND_SCALE;
                        for (int i = 0; i < values.length; i++) {
                            values[i] = (float) (values[i] / scale);
                        }
                    }
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
