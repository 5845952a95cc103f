package io.tuneline.engine.method;

import ai.djl.Device;
import ai.djl.util.cuda.CudaUtils;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.nn.Dense;
import java.util.Locale;
import java.util.Map;

/**
 * The training precision of a job ({@code hyperparameters.precision}), applied to any {@link
 * TunableModel} after its method: a method knows no precision and a family knows neither.
 *
 * <p>{@link #BF16} holds every frozen linear base weight as bfloat16 values ({@link
 * Dense#holdWeightInBf16}: half its resident bytes), widened to float32 for each matmul. Trainable
 * parameters (LoRA, adapters, prompts, the head, every weight under full fine-tuning), AdamW's
 * moments, embeddings, norms, softmax and the loss stay float32, as in the mixed-precision recipe
 * of Micikevicius et al. 2018 (arXiv:1710.03740: float32 master weights) with bf16, whose float32
 * exponent range needs no loss scaling (Kalamkar et al. 2019, arXiv:1905.12322). The compute is not
 * {@code torch.autocast}'s bf16 product: DJL 0.36's PyTorch JNI has no bfloat16 tensors ({@link
 * Dense.WeightStore.Bf16}), so this halves the frozen weights' memory between steps, not the time.
 *
 * <p>{@link #FP16} holds every frozen linear base weight in IEEE float16 ({@link
 * Dense#holdWeightInFp16}) and, on a GPU, computes those layers' matmuls in float16 as {@code
 * torch.autocast(dtype=torch.float16)} does; on a CPU it widens them per call as bf16 does
 * (libtorch's half GEMM on a CPU is tens of times slower than its float32 one). What trains, the
 * optimizer and the rest of the model stay float32 as under bf16. float16's narrow exponent range
 * makes small gradients underflow, so an fp16 run scales its loss dynamically ({@link
 * #needsLossScaling}, {@code train.LossScaler}, as {@code torch.amp.GradScaler}). {@code auto}
 * never picks fp16: it is a job's explicit choice, for GPUs without bf16 (before Ampere).
 */
public enum Precision {
    FP32("fp32"),
    BF16("bf16"),
    FP16("fp16");

    /**
     * The lowest CUDA compute capability with native bf16 matmuls (8.0, Ampere; NVIDIA's CUDA C
     * Programming Guide, "Compute Capabilities"), what {@code torch.cuda.is_bf16_supported()}
     * checks.
     */
    public static final int MIN_BF16_COMPUTE_CAPABILITY = 80;

    private final String label;

    Precision(String label) {
        this.label = label;
    }

    /** The job's name for it: {@code fp32}, {@code bf16} or {@code fp16}. */
    public String label() {
        return label;
    }

    /**
     * The precision a job's choice means on {@code device}: {@code fp32}, {@code bf16} and {@code
     * fp16} as named, {@code auto} (or empty) bf16 on a CUDA GPU of compute capability 8.0 or
     * higher, fp32 otherwise (on a CPU bf16 is slower, each matmul widening its weight: a choice,
     * not the default).
     *
     * @throws IllegalArgumentException for any other value, naming the field
     */
    public static Precision of(String choice, Device device) {
        String c = choice.trim().toLowerCase(Locale.ROOT);
        return switch (c) {
            case "fp32" -> FP32;
            case "bf16" -> BF16;
            case "fp16" -> FP16;
            case "", "auto" -> supportsBf16(device) ? BF16 : FP32;
            default ->
                    throw new IllegalArgumentException(
                            "hyperparameters.precision: \""
                                    + choice
                                    + "\" is not one of auto, fp32, bf16, fp16");
        };
    }

    /** Whether {@code device} is a CUDA GPU of compute capability 8.0 or higher. */
    public static boolean supportsBf16(Device device) {
        if (!device.isGpu()) {
            return false;
        }
        try {
            String cc = CudaUtils.getComputeCapability(device.getDeviceId());
            return Integer.parseInt(cc.replace(".", "")) >= MIN_BF16_COMPUTE_CAPABILITY;
        } catch (RuntimeException | UnsatisfiedLinkError e) {
            // No CUDA runtime to ask: stay with float32, the safe choice.
            return false;
        }
    }

    /**
     * Whether training in this precision scales its loss ({@code train.LossScaler}): fp16 only, as
     * PyTorch pairs {@code GradScaler} with float16 autocast; bf16 has float32's exponent range.
     */
    public boolean needsLossScaling() {
        return this == FP16;
    }

    /**
     * Applies the precision to a model whose method is attached (so what trains is decided): under
     * BF16 every frozen linear base weight of {@link TunableModel#linears()} goes to bf16, under
     * FP16 to float16; FP32 changes nothing.
     *
     * @return the linear weights moved to two bytes each and their float32 bytes before
     */
    public Held apply(TunableModel model) {
        return apply(model, model.linears().values().stream().anyMatch(Dense::onGpu));
    }

    /**
     * {@link #apply}, saying whether fp16's matmuls run in float16 ({@code halfMatmuls}) or widened
     * to float32; the device decides in {@link #apply(TunableModel)}, a test or benchmark may
     * choose (the float16 path runs on a CPU too, slowly).
     */
    public Held apply(TunableModel model, boolean halfMatmuls) {
        if (this == FP32) {
            return new Held(0, 0);
        }
        int layers = 0;
        long bytes = 0;
        for (Map.Entry<String, Dense> e : model.linears().entrySet()) {
            Dense d = e.getValue();
            if (this == BF16 ? d.holdWeightInBf16() : d.holdWeightInFp16(halfMatmuls)) {
                layers++;
                bytes += 4L * d.weightElements();
            }
        }
        return new Held(layers, bytes);
    }

    /**
     * What {@link #apply} moved to bf16 or fp16: {@code layers} linear weights of {@code
     * float32Bytes} bytes, now half that.
     */
    public record Held(int layers, long float32Bytes) {
        public long heldBytes() {
            return float32Bytes / 2;
        }
    }
}
