package io.tuneline.engine.plan;

import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.llama.LlamaConfig;
import io.tuneline.engine.quant.Nf4;
import java.nio.file.FileSystems;
import java.nio.file.Path;
import java.nio.file.PathMatcher;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.Set;

/**
 * The pre-flight estimate: parameters, memory and time of a training run from the model's {@code
 * config.json} and the job's settings, without loading a weight (docs/planning.md derives each term
 * and shows its measured accuracy).
 *
 * <p>Activations follow Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
 * Transformer Models" (arXiv:2205.05198, section 4.1), counted tensor by tensor as eager PyTorch
 * keeps them for the backward pass without recomputation: per layer and token the inputs of the
 * norms and linear layers, queries, keys and values, the attention context and the MLP's
 * intermediates, plus the softmax output per head, token and key ({@code a s^2 b}), and a mask and
 * a copy for each dropout that is on. Only layers at or above the lowest one that needs a gradient
 * keep anything (autograd records nothing below it). Time counts matmul FLOPs (Kaplan et al. 2020,
 * arXiv:2001.08361: 2 per weight and token forward; backward 2 more for the activations' gradient
 * where one is needed and 2 for the weight's gradient where the weight trains) divided by the
 * device's achieved FLOP/s.
 *
 * <p>Two settings of the job change this as the engine runs them. Activation checkpointing (Chen et
 * al. 2016, arXiv:1604.06174; the engine's {@code train.ActivationCheckpointing}, on a model it can
 * cut at its layers: every family without virtual tokens or a prefix) keeps only each layer's
 * input, recomputes one layer at a time during the backward pass (one more forward pass of every
 * layer) and passes the gradient down through every layer. bf16 precision holds each frozen linear
 * base weight in 2 bytes ({@code nn.Dense.WeightStore.Bf16}) and widens it to an fp32 copy for each
 * call, which lives until the micro-batch ends (until its layer's recomputation ends with
 * checkpointing), as an NF4 base's dequantized copy does. fp16 precision holds the same weights in
 * 2 bytes ({@code nn.Dense.WeightStore.Fp16}) and on a GPU multiplies with them as they are, so no
 * widened copy (on a CPU it widens them as bf16 does); the float16 copy of each such layer's input
 * it makes on a GPU is not counted.
 */
public final class Estimator {
    /**
     * On CPU, the JVM heap keeps what the loader read (each tensor is read into a Java array before
     * it becomes a native tensor; the heap grows and stays grown): this fraction of the fp32
     * weights, fitted to the calibration runs (docs/planning.md).
     */
    static final double CPU_LOADER_FRACTION = 1.0;

    /**
     * Seconds per trainable parameter and step for the optimizer and clipping on CPU: MiniLM's full
     * fine-tuning on the idle 2-core machine, 26 ms in libtorch's fused AdamW and 7 ms of clipping
     * for 22.6 M parameters (docs/benchmarks.md, 2026-12-05; DJL's kernel before it took 4 ns).
     */
    static final double CPU_OPTIMIZER_SECONDS_PER_PARAMETER = 1.5e-9;

    /**
     * Seconds per micro-batch outside the matmuls on CPU (the other operations' JNI calls and
     * memory traffic): fitted with {@code Device.CPU_FLOPS_PER_CORE} to the calibration runs of
     * 2026-12-06 (docs/planning.md).
     */
    static final double CPU_SECONDS_PER_MICRO_BATCH = 0.025;

    private Estimator() {}

    /** The estimate of {@code plan} on {@code device}. */
    public static Estimate estimate(TrainingPlan plan, Device device) {
        ParameterLayout layout = ParameterLayout.of(plan.shape());
        Counts counts = count(layout, plan);
        boolean checkpointed = plan.checkpointingRequested() && checkpointable(plan);
        if (plan.precision().halfOn(device)) {
            holdFrozenLinearsInBf16(layout, counts);
        }
        Dims dims = Dims.of(plan);
        // The engine trains in fp32: gradients, moments and activations in 4 bytes; only frozen
        // linear weights are held in less (NF4, bf16).
        int bytes = 4;

        long weightBytes =
                (counts.total - counts.quantized - counts.heldBf16) * bytes
                        + counts.heldBf16 * 2
                        + nf4Bytes(counts, plan);
        long gradientBytes = counts.trainable * bytes;
        long optimizerBytes = counts.trainable * 8L;
        long activationBytes = activationElements(layout, counts, dims, plan, checkpointed) * bytes;
        // AdamW's step (libtorch's fused kernel) updates weights and moments in place: no fp32
        // scratch per trainable parameter. DJL's kernel before it kept two copies (fitted on the
        // calibration runs of 2026-12-04; MiniLM's full fine-tuning peaked 183 MiB lower without).
        long workspace = 0;
        // The fp32 copies of NF4 (dequantized) and bf16 (widened) weights made for each matmul:
        // autograd keeps them for the input's gradient, in every layer that passes gradients down
        // for NF4, in every layer for bf16 (the copy belongs to the micro-batch's manager); with
        // checkpointing each layer runs in a manager of its own, so one layer's at a time.
        long widened = plan.precision().widensOn(device) ? counts.heldBf16 : 0;
        workspace +=
                4L
                        * (checkpointed
                                ? largestLayerHeld(layout, counts, widened > 0)
                                : counts.quantizedWithGrad + widened);
        // A QLoRA job streams its base into NF4 (quant.Nf4Loading, every family): one linear
        // weight at a time is read in fp32 and quantized, never the whole base.
        workspace += 4L * largestQuantized(layout, counts);
        // Likewise for bf16, but the fp32 load is over before training allocates: the high-water
        // mark is the larger of the two (freed memory is reused, by glibc's allocator on CPU and
        // PyTorch's caching allocator on a GPU).
        long training = weightBytes + gradientBytes + optimizerBytes + activationBytes + workspace;
        workspace += Math.max(0, (counts.baseTotal - counts.quantized) * 4L - training);
        if (!device.gpu()) {
            workspace += (long) (CPU_LOADER_FRACTION * counts.baseTotal * 4);
        }
        long peak =
                weightBytes
                        + gradientBytes
                        + optimizerBytes
                        + activationBytes
                        + workspace
                        + device.runtimeBytes();

        double flopsPerToken = flopsPerToken(layout, counts, dims, checkpointed);
        long tokensPerStep = (long) dims.tokens * plan.microBatch() * plan.accumulation();
        double flops = flopsPerToken * tokensPerStep;
        double seconds = flops / device.flopsPerSecond();
        if (!device.gpu()) {
            seconds +=
                    counts.trainable * CPU_OPTIMIZER_SECONDS_PER_PARAMETER
                            + plan.accumulation() * CPU_SECONDS_PER_MICRO_BATCH;
        }
        OptionalDouble total =
                plan.totalSteps().isPresent()
                        ? OptionalDouble.of(seconds * plan.totalSteps().getAsLong())
                        : OptionalDouble.empty();
        return new Estimate(
                device.name(),
                device.memoryBytes(),
                plan.microBatch(),
                plan.accumulation(),
                plan.sequenceLength(),
                counts.total,
                counts.trainable,
                weightBytes,
                gradientBytes,
                optimizerBytes,
                activationBytes,
                workspace,
                device.runtimeBytes(),
                peak,
                flops,
                seconds,
                total);
    }

    /**
     * Whether the engine can train {@code plan} with activation checkpointing: every family cuts
     * itself at its layers ({@code TunableModel.segments}: Llama, GPT-2, the BERT-family
     * classifier), but not with virtual tokens or a key/value prefix. There the job's setting
     * changes nothing, and the estimate ignores it too.
     */
    static boolean checkpointable(TrainingPlan plan) {
        FineTuningMethod m = plan.method();
        return !(m instanceof FineTuningMethod.Prompt)
                && !(m instanceof FineTuningMethod.PTuning)
                && !(m instanceof FineTuningMethod.Prefix);
    }

    /**
     * bf16 precision ({@code method.Precision.apply}): every linear base weight that neither trains
     * nor is in NF4 is held in bf16.
     */
    private static void holdFrozenLinearsInBf16(ParameterLayout layout, Counts c) {
        for (Map.Entry<String, ParameterLayout.Linear> e : layout.linears().entrySet()) {
            String module = e.getKey();
            if (!c.quantizedModules.contains(module)
                    && !c.trainableTensors.contains(module + ".weight")) {
                c.heldBf16Modules.add(module);
                c.heldBf16 += e.getValue().weights();
            }
        }
    }

    /** The most NF4 and bf16 weight elements one layer holds: what one layer widens at a time. */
    /** The largest linear weight held in NF4: the one fp32 tensor a streamed NF4 load holds. */
    private static long largestQuantized(ParameterLayout layout, Counts c) {
        return c.quantizedModules.stream()
                .mapToLong(m -> layout.linears().get(m).weights())
                .max()
                .orElse(0);
    }

    private static long largestLayerHeld(ParameterLayout layout, Counts c, boolean widensHeld) {
        Map<Integer, Long> perLayer = new java.util.HashMap<>();
        for (Set<String> held :
                widensHeld
                        ? List.of(c.quantizedModules, c.heldBf16Modules)
                        : List.of(c.quantizedModules)) {
            for (String module : held) {
                perLayer.merge(
                        layout.layerOf(module), layout.linears().get(module).weights(), Long::sum);
            }
        }
        return perLayer.values().stream().mapToLong(Long::longValue).max().orElse(0);
    }

    /**
     * A plan that fits {@code device}: the micro-batch halved and the accumulation doubled (the
     * examples per optimizer step stay the same) until the estimate fits; empty when even a
     * micro-batch of one does not.
     */
    public static Optional<TrainingPlan> autoFit(TrainingPlan plan, Device device) {
        TrainingPlan p = plan;
        while (true) {
            if (estimate(p, device).fits()) {
                return Optional.of(p);
            }
            if (p.microBatch() == 1) {
                return Optional.empty();
            }
            int micro = p.microBatch() / 2;
            // Keep the effective batch: an odd micro-batch rounds the accumulation up.
            int accumulation = (int) ((plan.effectiveBatch() + micro - 1) / micro);
            p = p.withBatch(micro, accumulation);
        }
    }

    // --- parameters ---------------------------------------------------------------------------

    /** What a method trains and adds, on a layout. */
    static final class Counts {
        long baseTotal;
        long total;
        long trainable;

        /** Elements of the base's linear weights stored in NF4, and their blocks. */
        long quantized;

        long quantizedWithGrad;

        final Set<String> quantizedModules = new HashSet<>();

        /** Elements of the frozen linear weights held in bf16. */
        long heldBf16;

        final Set<String> heldBf16Modules = new HashSet<>();

        int blocksize = Nf4.DEFAULT_BLOCKSIZE;
        boolean doubleQuant = true;

        /** The lowest layer whose activations autograd keeps; layers() when none. */
        int lowestGradLayer;

        boolean embeddingsTrain;
        final Set<String> trainableTensors = new HashSet<>();

        /** LoRA adapters: target module -> rank. */
        final List<Map.Entry<String, Integer>> lora = new ArrayList<>();

        float loraDropout;
        int adaptersPerLayer;
        int bottleneck;
        int promptTokens;
        int prefixTokens;
    }

    /** Counts total and trainable parameters of {@code plan}'s method on {@code layout}. */
    public static long[] parameters(TrainingPlan plan) {
        Counts c = count(ParameterLayout.of(plan.shape()), plan);
        return new long[] {c.total, c.trainable};
    }

    static Counts count(ParameterLayout layout, TrainingPlan plan) {
        Counts c = new Counts();
        c.baseTotal = layout.total();
        c.total = c.baseTotal;
        c.lowestGradLayer = layout.layers();
        FineTuningMethod method = plan.method();
        int h = hidden(plan.shape());
        if (method instanceof FineTuningMethod.Full) {
            layout.tensors().forEach(t -> c.trainableTensors.add(t.name()));
            c.embeddingsTrain = true;
        } else if (method instanceof FineTuningMethod.Freeze f) {
            List<PathMatcher> patterns =
                    f.trainablePatterns().stream()
                            .map(p -> FileSystems.getDefault().getPathMatcher("glob:" + p))
                            .toList();
            for (ParameterLayout.Tensor t : layout.tensors()) {
                String name = t.name();
                int layer = layout.layerOf(name);
                boolean embedding = ParameterLayout.inAny(name, layout.embeddingModules());
                boolean train =
                        ParameterLayout.inAny(name, layout.outputModules())
                                || (f.trainEmbeddings() && embedding)
                                || (layer >= 0 && layer >= layout.layers() - f.trainTopLayers())
                                || patterns.stream().anyMatch(m -> m.matches(Path.of(name)));
                if (train) {
                    c.trainableTensors.add(name);
                    if (embedding) {
                        c.embeddingsTrain = true;
                    }
                }
            }
        } else {
            layout.tensors().stream()
                    .filter(t -> ParameterLayout.inAny(t.name(), layout.headModules()))
                    .forEach(t -> c.trainableTensors.add(t.name()));
        }
        c.trainable =
                layout.tensors().stream()
                        .filter(t -> c.trainableTensors.contains(t.name()))
                        .mapToLong(ParameterLayout.Tensor::elements)
                        .sum();
        for (String name : c.trainableTensors) {
            int layer = layout.layerOf(name);
            if (layer >= 0) {
                c.lowestGradLayer = Math.min(c.lowestGradLayer, layer);
            }
        }
        if (c.embeddingsTrain) {
            c.lowestGradLayer = 0;
        }

        FineTuningMethod.Lora lora = null;
        if (method instanceof FineTuningMethod.Qlora q) {
            lora = q.lora();
            c.blocksize = q.blocksize();
            c.doubleQuant = q.doubleQuant();
            List<String> quantized = q.quantized().select(layout.linears().keySet());
            for (String module : quantized) {
                c.quantized += layout.linears().get(module).weights();
            }
            c.quantizedModules.addAll(quantized);
            // Fails here, as the worker would, when the LoRA targets match nothing.
            lora.targets().select(layout.linears().keySet());
            c.lowestGradLayer = lowestLayer(layout, lora);
            for (String module : quantized) {
                if (layout.layerOf(module) >= c.lowestGradLayer) {
                    c.quantizedWithGrad += layout.linears().get(module).weights();
                }
            }
        } else if (method instanceof FineTuningMethod.Lora l) {
            lora = l;
            c.lowestGradLayer = lowestLayer(layout, l);
        }
        if (lora != null) {
            c.loraDropout = lora.dropout();
            for (String module : lora.targets().select(layout.linears().keySet())) {
                ParameterLayout.Linear linear = layout.linears().get(module);
                long added = (long) lora.rank() * (linear.in() + linear.out());
                c.total += added;
                c.trainable += added;
                c.lora.add(Map.entry(module, lora.rank()));
            }
        }
        long added = 0;
        if (method instanceof FineTuningMethod.Prompt p) {
            c.promptTokens = p.virtualTokens();
            added = (long) p.virtualTokens() * h;
        } else if (method instanceof FineTuningMethod.PTuning p) {
            c.promptTokens = p.virtualTokens();
            added = promptEncoder(p, h);
        } else if (method instanceof FineTuningMethod.Prefix p) {
            c.prefixTokens = p.virtualTokens();
            long out = (long) layout.layers() * 2 * kvWidth(plan.shape());
            if (p.projectionHiddenSize() == 0) {
                added = p.virtualTokens() * out;
            } else {
                int d = kvWidth(plan.shape());
                int ph = p.projectionHiddenSize();
                added = (long) p.virtualTokens() * d + ((long) ph * d + ph) + (out * ph + out);
            }
        } else if (method instanceof FineTuningMethod.Adapter a) {
            c.adaptersPerLayer = a.placement().afterAttention() ? 2 : 1;
            c.bottleneck = a.bottleneck(h);
            added =
                    (long) layout.layers()
                            * c.adaptersPerLayer
                            * (2L * c.bottleneck * h + c.bottleneck + h);
        }
        if (added > 0) {
            c.total += added;
            c.trainable += added;
            c.lowestGradLayer = 0;
        }
        return c;
    }

    private static int lowestLayer(ParameterLayout layout, FineTuningMethod.Lora lora) {
        return lora.targets().select(layout.linears().keySet()).stream()
                .mapToInt(layout::layerOf)
                .filter(i -> i >= 0)
                .min()
                .orElse(layout.layers());
    }

    /**
     * PEFT's {@code PromptEncoder} (the engine's {@code nn.PromptEncoder}): the (N, h) embedding,
     * then an MLP {@code h -> e -> e -> h} or a two-layer bidirectional LSTM of width e followed by
     * {@code 2e -> 2e -> h}.
     */
    private static long promptEncoder(FineTuningMethod.PTuning p, int h) {
        long e = p.encoderHiddenSize() > 0 ? p.encoderHiddenSize() : h;
        long n = (long) p.virtualTokens() * h;
        if (p.encoder() == FineTuningMethod.PTuning.Encoder.MLP) {
            return n + (h * e + e) + (e * e + e) + (e * h + h);
        }
        long lstm = 0;
        for (int layer = 0; layer < 2; layer++) {
            long in = layer == 0 ? h : 2 * e;
            lstm += 2 * (4 * e * in + 4 * e * e + 8 * e);
        }
        return n + lstm + (2 * e * 2 * e + 2 * e) + (2 * e * h + h);
    }

    /** NF4 storage: half a byte per weight, plus the per-block scales (Dettmers et al. 2023). */
    private static long nf4Bytes(Counts c, TrainingPlan plan) {
        if (c.quantized == 0) {
            return 0;
        }
        long blocks = (c.quantized + c.blocksize - 1) / c.blocksize;
        // Double quantization: 8-bit scales with one fp32 scale per 256 of them and the offset.
        long scales = c.doubleQuant ? blocks + (blocks + 255) / 256 * 4 + 4 : blocks * 4;
        return (c.quantized + 1) / 2 + scales;
    }

    // --- activations --------------------------------------------------------------------------

    /** The shape numbers the activation and FLOP counts read. */
    private record Dims(
            int hidden,
            int heads,
            int kvHeads,
            int headDim,
            int intermediate,
            int vocab,
            boolean causalLm,
            boolean gqa,
            boolean rope,
            boolean qkNorm,
            int normsPerLayer,
            double mlpIntermediates,
            int hiddenDropoutSites,
            double hiddenDropout,
            double attentionDropout,
            int tokens,
            int keys) {

        static Dims of(TrainingPlan plan) {
            int prompt = 0;
            int prefix = 0;
            if (plan.method() instanceof FineTuningMethod.Prompt p) {
                prompt = p.virtualTokens();
            } else if (plan.method() instanceof FineTuningMethod.PTuning p) {
                prompt = p.virtualTokens();
            } else if (plan.method() instanceof FineTuningMethod.Prefix p) {
                prefix = p.virtualTokens();
            }
            int s = plan.sequenceLength() + prompt;
            ModelShape shape = plan.shape();
            if (shape instanceof ModelShape.Encoder e) {
                BertConfig c = e.config();
                double hd = dropout(plan, c.hiddenDropout());
                // Exact GELU written from primitives keeps its input, one intermediate and its
                // output (the next linear's input).
                return new Dims(
                        c.hiddenSize(),
                        c.heads(),
                        c.heads(),
                        c.hiddenSize() / c.heads(),
                        c.intermediateSize(),
                        c.vocabSize(),
                        false,
                        false,
                        false,
                        false,
                        2,
                        3,
                        2,
                        hd,
                        dropout(plan, c.attentionDropout()),
                        s,
                        s + prefix);
            }
            if (shape instanceof ModelShape.Gpt2 g) {
                Gpt2Config c = g.config();
                // gelu_new from primitives: x, x^3's input, tanh's output, 0.5 x and 1 + tanh.
                return new Dims(
                        c.hiddenSize(),
                        c.heads(),
                        c.heads(),
                        c.hiddenSize() / c.heads(),
                        c.innerSize(),
                        c.vocabSize(),
                        true,
                        false,
                        false,
                        false,
                        2,
                        5,
                        2,
                        dropout(plan, c.residPdrop()),
                        dropout(plan, c.attnPdrop()),
                        s,
                        s + prefix);
            }
            LlamaConfig c = ((ModelShape.Llama) shape).config();
            // SwiGLU: gate's output, its sigmoid, their product, up's output and down's input.
            return new Dims(
                    c.hiddenSize(),
                    c.heads(),
                    c.kvHeads(),
                    c.headDim(),
                    c.intermediateSize(),
                    c.vocabSize(),
                    true,
                    c.kvHeads() < c.heads(),
                    true,
                    c.qkNorm(),
                    2,
                    5,
                    0,
                    0,
                    dropout(plan, c.attentionDropout()),
                    s,
                    s + prefix);
        }

        private static double dropout(TrainingPlan plan, double own) {
            return plan.modelDropout().orElse(own);
        }
    }

    /**
     * Elements autograd keeps for one micro-batch, plus one layer's gradients in flight; with
     * checkpointing, every layer's input and one layer's activations at a time.
     */
    private static long activationElements(
            ParameterLayout layout, Counts c, Dims d, TrainingPlan plan, boolean checkpointed) {
        long b = plan.microBatch();
        long s = d.tokens;
        int h = d.hidden;
        double qDim = (double) d.heads * d.headDim;
        double kvDim = (double) d.kvHeads * d.headDim;
        // Per token in one layer (Korthikanti et al. 2022, section 4.1, in elements).
        double perToken =
                d.normsPerLayer * h // the norms' inputs
                        + h // the attention's input (shared by q, k, v)
                        + qDim
                        + 2 * kvDim // queries, keys, values as the matmuls keep them
                        + qDim // the attention context, o_proj's input
                        + h // the MLP's input
                        + d.mlpIntermediates * d.intermediate;
        if (d.rope) {
            perToken += qDim + kvDim; // rotated queries and keys
        }
        if (d.qkNorm) {
            perToken += qDim + kvDim;
        }
        if (d.gqa) {
            perToken += 2 * qDim; // keys and values repeated to every query head
        }
        if (d.hiddenDropout > 0) {
            perToken += 2.0 * d.hiddenDropoutSites * h; // a mask and a copy per dropout
        }
        for (Map.Entry<String, Integer> target : c.lora) {
            ParameterLayout.Linear linear = layout.linears().get(target.getKey());
            // LoRA's dropout copy of the input (and its mask) and A's output; per layer below.
            perToken +=
                    ((c.loraDropout > 0 ? 2.0 * linear.in() : 0) + target.getValue())
                            / layout.layers();
        }
        perToken += c.adaptersPerLayer * 2.0 * c.bottleneck;
        double perTokenKey = d.heads * (1 + (d.attentionDropout > 0 ? 2 : 0));
        double layer = b * (s * perToken + s * d.keys * perTokenKey);
        int kept = layout.layers() - c.lowestGradLayer;
        double total = kept * layer;
        if (checkpointed) {
            // The unrecorded forward pass keeps each layer's input and the top layer's output
            // (layer 0's input is the embeddings' output); the backward pass re-runs one layer at
            // a time, recorded, with its gradients in flight. Every layer is re-run, frozen lower
            // ones too: the gradient is passed down to the embeddings.
            total = (layout.layers() + 1.0) * b * s * h + 2 * layer;
        } else if (kept > 0) {
            total += layer; // one layer's gradients while the backward pass runs through it
            total += b * s * (2.0 * h); // the embeddings' output and its norm or dropout
        }
        if (d.causalLm) {
            // Logits, their log-softmax (kept by the loss) and the logits' gradient.
            total += 3.0 * b * s * d.vocab;
        } else {
            total += b * s * (double) h;
        }
        return (long) total;
    }

    // --- time ---------------------------------------------------------------------------------

    /**
     * Matmul FLOPs per token of one training step (forward and backward); with checkpointing every
     * layer runs forward twice and passes its input's gradient down.
     */
    private static double flopsPerToken(
            ParameterLayout layout, Counts c, Dims d, boolean checkpointed) {
        int forwards = checkpointed ? 2 : 1;
        double total = 0;
        for (Map.Entry<String, ParameterLayout.Linear> e : layout.linears().entrySet()) {
            double forward = 2.0 * e.getValue().weights();
            int layer = layout.layerOf(e.getKey());
            boolean needsInputGrad = checkpointed || layer >= c.lowestGradLayer;
            boolean trains = c.trainableTensors.contains(e.getKey() + ".weight");
            total += forward * (forwards + (needsInputGrad ? 1 : 0) + (trains ? 1 : 0));
        }
        double attention = 2.0 * 2 * d.keys * d.heads * d.headDim;
        for (int layer = 0; layer < layout.layers(); layer++) {
            boolean backward = checkpointed || layer >= c.lowestGradLayer;
            total += attention * (forwards + (backward ? 2 : 0));
        }
        // LoRA's and the adapters' matmuls: 2 forward and 4 backward per weight, 2 more forward
        // when recomputed.
        double perWeight = 4.0 + 2 * forwards;
        for (Map.Entry<String, Integer> target : c.lora) {
            ParameterLayout.Linear linear = layout.linears().get(target.getKey());
            total += perWeight * target.getValue() * (linear.in() + linear.out());
        }
        total += perWeight * c.adaptersPerLayer * layout.layers() * 2 * c.bottleneck * d.hidden;
        if (d.causalLm) {
            double head = 2.0 * d.hidden * d.vocab;
            total += head * (2 + (c.embeddingsTrain ? 1 : 0));
        }
        return total;
    }

    private static int hidden(ModelShape shape) {
        if (shape instanceof ModelShape.Encoder e) {
            return e.config().hiddenSize();
        }
        if (shape instanceof ModelShape.Gpt2 g) {
            return g.config().hiddenSize();
        }
        return ((ModelShape.Llama) shape).config().hiddenSize();
    }

    /** PEFT's prefix {@code token_dim}: key/value heads times head size. */
    private static int kvWidth(ModelShape shape) {
        if (shape instanceof ModelShape.Llama l) {
            return l.config().kvHeads() * l.config().headDim();
        }
        return hidden(shape);
    }
}
