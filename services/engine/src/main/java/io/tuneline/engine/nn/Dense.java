package io.tuneline.engine.nn;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import ai.djl.training.initializer.ConstantInitializer;
import ai.djl.training.initializer.NormalInitializer;
import ai.djl.util.PairList;
import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.io.safetensors.SafetensorsStreamWriter;
import io.tuneline.engine.quant.Nf4;
import io.tuneline.engine.quant.Nf4Device;
import io.tuneline.engine.quant.Nf4Weight;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code y = x W^T + b} with PyTorch's layout, W of shape (out, in), so Hugging Face weights load
 * as they are. Methods change it through {@link LinearDelta}s attached by module path (LoRA: {@link
 * LoraDelta}); the layer itself knows no method.
 *
 * <p>The base weight is held one of two ways ({@link WeightStore}): as a dense parameter, or, after
 * {@link #quantizeWeight}, frozen in NF4 (QLoRA, Dettmers et al. 2023, arXiv:2305.14314). An NF4
 * base is dequantized for each forward call and the dense copy is released right after the matmul,
 * as bitsandbytes' {@code Linear4bit.forward} dequantizes per call ({@code
 * bitsandbytes/nn/modules.py}, {@code functional.dequantize_4bit}); the deltas are added on top.
 * Or, after {@link #holdWeightInBf16}, frozen as bfloat16 values in two bytes each, widened to
 * float32 for each forward call as an NF4 base is (the matmul, the bias and the deltas in float32).
 * Or, after {@link #holdWeightInFp16}, frozen in IEEE float16 and multiplied in float16 with the
 * input narrowed to float16 (as {@code torch.autocast(dtype=torch.float16)} runs a linear layer),
 * the bias added in float32; or, where half matmuls are slow (a CPU), widened as a bf16 weight is.
 */
public final class Dense extends AbstractBlock {
    private final int in;
    private final int out;
    private final Parameter weight;
    private WeightStore base;
    private final Parameter bias;
    private boolean biasAbsent;
    private final List<LinearDelta> deltas = new ArrayList<>();

    public Dense(int in, int out) {
        this.in = in;
        this.out = out;
        // BERT's initializer range (config.initializer_range = 0.02).
        weight =
                addParameter(
                        Parameters.of(
                                "weight",
                                Parameter.Type.WEIGHT,
                                new Shape(out, in),
                                new NormalInitializer(0.02f)));
        bias =
                addParameter(
                        Parameters.of(
                                "bias",
                                Parameter.Type.BIAS,
                                new Shape(out),
                                new ConstantInitializer(0f)));
        base = new WeightStore.DenseWeight(weight);
    }

    /**
     * How the frozen base weight W is held: a dense parameter (trainable or not) or NF4 codes that
     * only a forward pass turns back into floats. A sealed pair so that every use of the base says
     * what it does with each.
     */
    public sealed interface WeightStore {
        /** W as a DJL parameter (out, in): what every method but QLoRA trains or freezes. */
        record DenseWeight(Parameter parameter) implements WeightStore {}

        /**
         * W frozen in NF4; not a parameter, so no gradient and no optimizer state can reach it.
         * Held on the heap as loaded until the first forward call or merge, then only in native
         * memory on the layer's device ({@link Nf4Device}), where every later call dequantizes it
         * without copying anything from the JVM.
         */
        final class Nf4 implements WeightStore {
            private Nf4Weight loaded;
            private Nf4Device resident;

            Nf4(Nf4Weight weight) {
                loaded = weight;
            }

            /**
             * The NF4 weight on the heap: as loaded, or a copy of the native arrays once they are
             * resident (for exports, checkpoints and checks; not for the forward pass).
             */
            public synchronized Nf4Weight weight() {
                return loaded != null ? loaded : resident.toWeight();
            }

            /**
             * The weight in native memory of {@code manager} (the layer's parameters' manager),
             * moved there by the first call; the heap copy is dropped then.
             */
            synchronized Nf4Device resident(NDManager manager) {
                if (resident == null) {
                    resident = Nf4Device.of(loaded, manager);
                    loaded = null;
                }
                return resident;
            }

            public synchronized int blocksize() {
                return loaded != null ? loaded.blocksize() : resident.blocksize();
            }

            public synchronized boolean doubleQuantized() {
                return loaded != null ? loaded.doubleQuantized() : resident.doubleQuantized();
            }

            /** {@link Nf4Weight#residentBytes()}, wherever the weight is held now. */
            public synchronized long residentBytes() {
                return loaded != null ? loaded.residentBytes() : resident.residentBytes();
            }
        }

        /**
         * W frozen as bfloat16 values (training precision {@code bf16}); not a parameter either,
         * held in the model's manager. The container is a float16 array: DJL 0.36's PyTorch JNI
         * maps no bfloat16 dtype (creating or casting to {@code DataType.BFLOAT16} ends in {@code
         * std::terminate}, which aborts the JVM), and float16 holds every bfloat16 value of
         * magnitude 2^-17 to 65504 exactly (11 significant bits against bf16's 8; below 2^-17
         * float16's subnormals round it once more, by less than 2^-25 absolute).
         */
        record Bf16(NDArray weight) implements WeightStore {}

        /**
         * W frozen in IEEE float16 (training precision {@code fp16}, {@code tensor.half()}'s
         * rounding); not a parameter, held in the model's manager. Unlike {@link Bf16} it can be
         * computed with as it is (DJL maps float16 to libtorch's {@code torch.half}): when {@code
         * halfMatmul}, the product runs in float16; otherwise W is widened to float32 per call as a
         * bf16 weight is.
         */
        record Fp16(NDArray weight, boolean halfMatmul) implements WeightStore {}
    }

    /** How W is held now. */
    public WeightStore base() {
        return base;
    }

    /**
     * The dense weight parameter.
     *
     * @throws IllegalStateException when W is held in NF4 (it is no parameter then)
     */
    public Parameter weight() {
        if (base instanceof WeightStore.Nf4) {
            throw new IllegalStateException("the weight of this layer is held in NF4");
        }
        requireNotHalf();
        return weight;
    }

    /** The largest finite float16, the container of a bf16-held weight. */
    private static final float FLOAT16_MAX = 65504f;

    /**
     * Replaces the frozen float32 W by its bfloat16 rounding (round to nearest even, as {@code
     * tensor.to(torch.bfloat16)}), held in two bytes per value ({@link WeightStore.Bf16}), and
     * frees the float32 array: W is no parameter of the layer any more (checkpoints and optimizers
     * do not see it) and cannot change. The bias stays a float32 parameter. A no-op unless W is a
     * frozen dense parameter: a trainable W stays float32 (the optimizer updates float32 master
     * weights), an NF4 W stays NF4.
     *
     * @return whether W is now held in bf16 by this call
     * @throws IllegalStateException when a value of W exceeds 65504 in magnitude (no such weight is
     *     known in a trained model; the float16 container cannot hold it)
     */
    public boolean holdWeightInBf16() {
        if (!(base instanceof WeightStore.DenseWeight) || weight.requiresGradient()) {
            return false;
        }
        NDArray w = weight.getArray();
        float[] v = w.toFloatArray();
        for (int i = 0; i < v.length; i++) {
            float r = Float.intBitsToFloat(SafetensorsStreamWriter.bfloat16(v[i]) << 16);
            if (!(Math.abs(r) <= FLOAT16_MAX)) {
                throw new IllegalStateException(
                        "a weight value "
                                + v[i]
                                + " is not finite or beyond 65504, the largest the bf16 weight"
                                + " store holds;"
                                + " train this model in fp32");
            }
            v[i] = r;
        }
        NDArray held;
        // In W's manager (the model's), so it is closed with the model.
        try (NDArray rounded = w.getManager().create(v, w.getShape())) {
            held = rounded.toType(DataType.FLOAT16, true);
        }
        parameters.remove("weight");
        weight.close();
        base = new WeightStore.Bf16(held);
        return true;
    }

    /**
     * Replaces the frozen float32 W by its float16 rounding (round to nearest even, as {@code
     * tensor.half()}), held in two bytes per value ({@link WeightStore.Fp16}), and frees the
     * float32 array: W is no parameter of the layer any more (checkpoints and optimizers do not see
     * it) and cannot change. The bias stays a float32 parameter. A no-op unless W is a frozen dense
     * parameter: a trainable W stays float32 (the optimizer updates float32 master weights), an NF4
     * W stays NF4. Values below float16's smallest subnormal (2^-24) round to zero, as in PyTorch.
     *
     * @param halfMatmul whether the forward pass multiplies in float16 (on a GPU, where that is
     *     what fp16 is for) or widens W to float32 for each call (on a CPU, where libtorch's half
     *     GEMM is tens of times slower than its float32 one: the engine README, "Training
     *     precision")
     * @return whether W is now held in fp16 by this call
     * @throws IllegalStateException when a value of W is not finite or exceeds 65504 in magnitude
     *     (float16 would hold it as infinity, which {@code tensor.half()} does silently)
     */
    public boolean holdWeightInFp16(boolean halfMatmul) {
        if (!(base instanceof WeightStore.DenseWeight) || weight.requiresGradient()) {
            return false;
        }
        NDArray w = weight.getArray();
        float largest;
        try (NDArray magnitude = w.abs();
                NDArray max = magnitude.max()) {
            largest = max.getFloat();
        }
        if (!(largest <= FLOAT16_MAX)) {
            throw new IllegalStateException(
                    "a weight value of magnitude "
                            + largest
                            + " is not finite or beyond 65504, the largest float16;"
                            + " train this model in bf16 or fp32");
        }
        // In W's manager (the model's), so it is closed with the model.
        NDArray held = w.toType(DataType.FLOAT16, true);
        parameters.remove("weight");
        weight.close();
        base = new WeightStore.Fp16(held, halfMatmul);
        return true;
    }

    /**
     * Replaces the dense W by its NF4 quantization (bitsandbytes' {@code quantize_4bit}, {@link
     * Nf4}) and frees the dense array: from now on W is no parameter of the layer (DJL's parameter
     * walk, checkpoints and optimizers do not see it) and cannot change. The bias stays a dense
     * parameter, as in bitsandbytes' {@code Linear4bit}.
     *
     * @param blocksize values per absmax block (the QLoRA paper's 64)
     * @param doubleQuant whether the block scales are quantized to 8 bits too (QLoRA's double
     *     quantization, {@code bnb_4bit_use_double_quant})
     * @throws IllegalStateException when W is already in NF4, or has deltas attached (they were
     *     initialised against the dense base; quantize first, as PEFT's {@code
     *     prepare_model_for_kbit_training} expects a model loaded in 4 bits)
     */
    public void quantizeWeight(int blocksize, boolean doubleQuant) {
        if (base instanceof WeightStore.Nf4) {
            throw new IllegalStateException("the weight of this layer is in NF4 already");
        }
        requireNotHalf();
        NDArray w = weight.getArray();
        holdInNf4(
                Nf4.quantize(
                        w.toFloatArray(),
                        w.getShape().getShape(),
                        Dtype.F32,
                        blocksize,
                        doubleQuant));
    }

    /**
     * Holds W as {@code nf4} from now on, quantized elsewhere: by the checkpoint loader straight
     * from the file's tensor (QLoRA's streaming load, so the full-precision base is never resident
     * at once). Called before the block is initialized, no dense W is ever allocated; called after,
     * the dense array is freed. Either way W is no parameter of the layer from then on.
     *
     * @throws IllegalArgumentException when {@code nf4}'s shape is not (out, in)
     * @throws IllegalStateException when W is already in NF4 or deltas are attached
     */
    public void holdInNf4(Nf4Weight nf4) {
        if (base instanceof WeightStore.Nf4) {
            throw new IllegalStateException("the weight of this layer is in NF4 already");
        }
        requireNotHalf();
        if (!deltas.isEmpty()) {
            throw new IllegalStateException("quantize the base before attaching deltas");
        }
        if (!java.util.Arrays.equals(nf4.shape(), new long[] {out, in})) {
            throw new IllegalArgumentException(
                    "an NF4 weight of shape "
                            + java.util.Arrays.toString(nf4.shape())
                            + " for a layer of shape ("
                            + out
                            + ", "
                            + in
                            + ")");
        }
        weight.freeze(true);
        parameters.remove("weight");
        if (weight.isInitialized()) {
            weight.close();
        }
        base = new WeightStore.Nf4(nf4);
    }

    /** Number of values of W, however it is held. */
    public long weightElements() {
        return (long) in * out;
    }

    /**
     * Attaches {@code delta}: from now on the layer adds its output to {@code x W^T + b}. W stays
     * as it is; freezing it is the method's job.
     *
     * @throws IllegalStateException when an attached delta already uses one of its parameter names
     */
    public void attach(LinearDelta delta) {
        // Two deltas of one kind would share PEFT's names (lora_A.weight), and an export could
        // hold only one of them.
        for (LinearDelta d : deltas) {
            for (String name : delta.namedParameters().keySet()) {
                if (d.namedParameters().containsKey(name)) {
                    throw new IllegalStateException(
                            "this layer already has a delta with a parameter named " + name);
                }
            }
        }
        addChildBlock(delta.getClass().getSimpleName(), delta);
        deltas.add(delta);
    }

    /** The attached deltas, in the order they were attached. */
    public List<LinearDelta> deltas() {
        return Collections.unmodifiableList(deltas);
    }

    /**
     * The layer's parameters under names relative to its module path: {@code weight} (unless it is
     * held in NF4), {@code bias}, then each delta's ({@code lora_A.weight}, PEFT's names).
     */
    public Map<String, Parameter> namedParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>();
        if (base instanceof WeightStore.DenseWeight) {
            p.put("weight", weight);
        }
        p.put("bias", bias);
        for (LinearDelta d : deltas) {
            p.putAll(d.namedParameters());
        }
        return p;
    }

    /**
     * W plus every delta as a weight change (LoRA: W + (alpha / r) B A); a new array. An NF4 W is
     * dequantized first: the merge bitsandbytes users are told to do (dequantize the base, add the
     * adapter, save in full precision; PEFT's {@code merge_and_unload} on a 4-bit model does the
     * same through {@code dequantize_bnb_weight}).
     */
    public NDArray mergedWeight() {
        NDArray merged;
        if (base instanceof WeightStore.Nf4 q) {
            NDManager manager = bias.getArray().getManager();
            merged = q.resident(manager).dequantize(manager);
        } else if (halfWeight() != null) {
            // Widening to float32 is exact.
            merged = halfWeight().toType(DataType.FLOAT32, true);
        } else {
            merged = weight.getArray().duplicate();
        }
        for (LinearDelta d : deltas) {
            try (NDArray change = d.weightDelta()) {
                merged.addi(change);
            }
        }
        return merged;
    }

    /** W as held in two bytes per value (bf16 or fp16), or null when it is not. */
    private NDArray halfWeight() {
        if (base instanceof WeightStore.Bf16 h) {
            return h.weight();
        }
        return base instanceof WeightStore.Fp16 h ? h.weight() : null;
    }

    private void requireNotHalf() {
        if (base instanceof WeightStore.Bf16) {
            throw new IllegalStateException("the weight of this layer is held in bf16");
        }
        if (base instanceof WeightStore.Fp16) {
            throw new IllegalStateException("the weight of this layer is held in fp16");
        }
    }

    /** Whether the layer's arrays live on a GPU (its bias is always a dense array). */
    public boolean onGpu() {
        return bias.getArray().getDevice().isGpu();
    }

    public Parameter bias() {
        return bias;
    }

    /**
     * Marks the bias as one the architecture does not have (Llama's projections and head): it stays
     * a zero, frozen parameter, so the layer's parameters, names and checkpoints are those of every
     * {@code Dense}, and the forward pass leaves it out. A zero bias changes no value, but it has a
     * cost: with a bias libtorch's linear is {@code addmm}, which first writes the bias into every
     * row of the output and then accumulates the product onto it; without one, {@code mm}.
     */
    public void omitBias() {
        bias.freeze(true);
        biasAbsent = true;
    }

    /** The bias for the forward pass, or null where the architecture has none. */
    private NDArray forwardBias(ParameterStore ps, Device device, boolean training) {
        return biasAbsent ? null : ps.getValue(bias, device, training);
    }

    public int in() {
        return in;
    }

    public int out() {
        return out;
    }

    @Override
    protected NDList forwardInternal(
            ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        NDArray x = inputs.singletonOrThrow();
        NDList y;
        if (base instanceof WeightStore.Nf4 q) {
            // Dequantized in x's manager (the step's sub-manager in training). In inference the
            // handle is closed after the matmul, so the dense copy is gone before the next layer
            // runs. In training autograd needs the tensor for the input gradient until backward
            // (bitsandbytes' MatMul4Bit saves only the 4-bit state and dequantizes again in
            // backward; DJL offers no custom autograd function to do that), so the dense copy
            // lives until backward has run whatever the handle does; the handle goes with the
            // step's manager.
            NDArray w = q.resident(bias.getArray().getManager()).dequantize(x.getManager());
            if (!w.getDevice().equals(x.getDevice())) {
                NDArray moved = w.toDevice(x.getDevice(), false);
                w.close();
                w = moved;
            }
            y = Linear.linear(x, w, forwardBias(ps, x.getDevice(), training));
            if (!training) {
                w.close();
            }
        } else if (base instanceof WeightStore.Fp16 h && h.halfMatmul()) {
            // torch.autocast(float16)'s linear: input and weight in float16 (libtorch's GEMM
            // accumulates in float32 inside). DJL's toType records no gradient (its JNI cast runs
            // under NoGradGuard), so both casts are operations autograd differentiates: the input
            // is written into a float16 array (index_put_; autograd hands its gradient back as
            // float32), and the float32 bias added to the float16 product promotes the sum to
            // float32, so the deltas, norms, softmax and loss run in float32. All in x's manager.
            NDArray x16 = x.getManager().zeros(x.getShape(), DataType.FLOAT16, x.getDevice());
            x16.set(new NDIndex("..."), x);
            NDArray product = x16.matMul(h.weight().transpose());
            y = new NDList(product.add(ps.getValue(bias, x.getDevice(), training)));
        } else if (halfWeight() != null) {
            // A bf16 weight (or an fp16 one where half matmuls are slow) widened per call, as the
            // NF4 base is dequantized per call: the product runs in float32 on the held values
            // (not torch.autocast's bf16 product: DJL 0.36 has no bfloat16 tensors to compute
            // with). Attached to x's manager, so the copy goes with the step (training) or right
            // after the matmul (inference).
            NDArray w = halfWeight().toType(DataType.FLOAT32, false);
            w.attach(x.getManager());
            y = Linear.linear(x, w, forwardBias(ps, x.getDevice(), training));
            if (!training) {
                w.close();
            }
        } else {
            // One device query (a native call) for both parameters.
            Device device = x.getDevice();
            y =
                    Linear.linear(
                            x,
                            ps.getValue(weight, device, training),
                            forwardBias(ps, device, training));
        }
        if (deltas.isEmpty()) {
            return y;
        }
        NDArray out = y.singletonOrThrow();
        for (LinearDelta d : deltas) {
            out = out.add(d.delta(ps, x, training));
        }
        return new NDList(out);
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        Shape s = inputShapes[0];
        return new Shape[] {s.slice(0, s.dimension() - 1).add(out)};
    }
}
