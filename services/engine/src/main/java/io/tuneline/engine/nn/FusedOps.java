package io.tuneline.engine.nn;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;
import ai.djl.pytorch.jni.IValue;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * libtorch operations DJL's API does not offer, each one native call into a TorchScript method run
 * with autograd recording ({@link TorchScriptFunction#callRecorded}), so they differentiate as the
 * operations they are made of.
 *
 * <ul>
 *   <li>{@link #rmsNorm}: {@code torch.rms_norm}, Llama's RMSNorm as {@code LlamaRMSNorm} computes
 *       it ({@code x * rsqrt(mean(x^2) + eps)} in float32, cast back, times the weight); written
 *       from DJL's operations it divided by a square root, whose backward makes more whole-tensor
 *       passes than a product's, and took six native calls.
 *   <li>{@link #siluTimes}: SwiGLU's {@code silu(g) * u} with libtorch's fused SiLU and its
 *       backward, where DJL offers only {@code g * sigmoid(g)}: three forward operations and about
 *       six backward ones over the MLP's widest tensors, against two and three.
 *   <li>{@link #transposedProduct}: {@code (w h^T)^T}, contiguous (see {@link LmHead}).
 * </ul>
 *
 * <p>The methods are compiled once per device, on a manager that lives as long as the process.
 */
public final class FusedOps {
    private static final String KERNELS =
            """
              def rms_norm(self: __torch__.FusedOps, x: Tensor, w: Tensor, eps: float) -> Tensor:
                return torch.rms_norm(x, [x.size(-1)], w, eps)
              def silu_times(self: __torch__.FusedOps, g: Tensor, u: Tensor) -> Tensor:
                return torch.silu(g) * u
              def transposed_product(self: __torch__.FusedOps, h: Tensor, w: Tensor) -> Tensor:
                return torch.mm(w, h.t()).t().contiguous()
            """;

    private static final Map<Device, TorchScriptFunction> ON = new ConcurrentHashMap<>();

    private FusedOps() {}

    /** RMSNorm of the last axis of {@code x} with weight {@code w} (its size), as Llama's. */
    public static NDArray rmsNorm(NDArray x, NDArray w, float eps) {
        try (IValue xv = IValue.from((PtNDArray) x);
                IValue wv = IValue.from((PtNDArray) w);
                IValue ev = IValue.from((double) eps)) {
            return run(x, "rms_norm", xv, wv, ev);
        }
    }

    /** {@code silu(g) * u}, elementwise. */
    public static NDArray siluTimes(NDArray g, NDArray u) {
        try (IValue gv = IValue.from((PtNDArray) g);
                IValue uv = IValue.from((PtNDArray) u)) {
            return run(g, "silu_times", gv, uv);
        }
    }

    /** {@code h w^T} for h (N, H) and w (V, H), computed as {@code (w h^T)^T}, contiguous. */
    public static NDArray transposedProduct(NDArray h, NDArray w) {
        try (IValue hv = IValue.from((PtNDArray) h);
                IValue wv = IValue.from((PtNDArray) w)) {
            return run(h, "transposed_product", hv, wv);
        }
    }

    /** Runs {@code method} on {@code like}'s device; the result joins {@code like}'s manager. */
    private static NDArray run(NDArray like, String method, IValue... args) {
        TorchScriptFunction kernels =
                ON.computeIfAbsent(
                        like.getDevice(),
                        d ->
                                TorchScriptFunction.compile(
                                        (PtNDManager) NDManager.newBaseManager(d, "PyTorch"),
                                        "FusedOps",
                                        KERNELS));
        try (IValue out = kernels.callRecorded(method, args)) {
            return out.toTensor((PtNDManager) like.getManager());
        }
    }
}
