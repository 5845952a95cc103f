package io.tuneline.engine.plan;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.withinPercentage;

import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.TargetMatcher;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.llama.LlamaConfig;
import java.util.List;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;

/**
 * The estimator's parameter counts against independent figures: the model cards' totals
 * (all-MiniLM-L6-v2 22.7 M, bert-base-uncased 109.5 M, gpt2 124.4 M, TinyLlama-1.1B 1.10 B) as
 * PyTorch counts them, and trainable counts as PEFT's {@code print_trainable_parameters} prints
 * them, each recomputed here by hand from the architecture (no code shared with the estimator).
 * Then the memory and time terms' behaviour, and auto-fit.
 */
class EstimatorTest {

    /** sentence-transformers/all-MiniLM-L6-v2's config.json. */
    static final String MINILM =
            """
            {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": 30522,
             "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
             "intermediate_size": 1536, "max_position_embeddings": 512, "type_vocab_size": 2,
             "hidden_act": "gelu", "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1,
             "attention_probs_dropout_prob": 0.1}
            """;

    /** bert-base-uncased's config.json. */
    static final String BERT_BASE =
            """
            {"architectures": ["BertForMaskedLM"], "model_type": "bert", "vocab_size": 30522,
             "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072, "max_position_embeddings": 512, "type_vocab_size": 2,
             "hidden_act": "gelu", "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1,
             "attention_probs_dropout_prob": 0.1, "pad_token_id": 0}
            """;

    /** openai-community/gpt2's config.json. */
    static final String GPT2 =
            """
            {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257,
             "n_positions": 1024, "n_ctx": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12,
             "activation_function": "gelu_new", "layer_norm_epsilon": 1e-05, "attn_pdrop": 0.1,
             "embd_pdrop": 0.1, "resid_pdrop": 0.1}
            """;

    /** TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T's config.json. */
    static final String TINYLLAMA =
            """
            {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32000,
             "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
             "num_attention_heads": 32, "num_key_value_heads": 4, "hidden_act": "silu",
             "max_position_embeddings": 2048, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
             "rope_scaling": null, "tie_word_embeddings": false, "attention_bias": false,
             "bos_token_id": 1, "eos_token_id": 2}
            """;

    static ModelShape minilm(boolean pooler, int labels) {
        return new ModelShape.Encoder(BertConfig.parse(MINILM), pooler, labels);
    }

    static ModelShape bertBase(int labels) {
        return new ModelShape.Encoder(BertConfig.parse(BERT_BASE), true, labels);
    }

    static ModelShape gpt2() {
        return new ModelShape.Gpt2(Gpt2Config.parse(GPT2));
    }

    static ModelShape tinyLlama() {
        return new ModelShape.Llama(LlamaConfig.parse(TINYLLAMA));
    }

    static TrainingPlan plan(ModelShape shape, FineTuningMethod method, int batch, int seq) {
        return new TrainingPlan(shape, method, batch, seq, 1, OptionalLong.empty());
    }

    static long[] counts(ModelShape shape, FineTuningMethod method) {
        Estimate e = Estimator.estimate(plan(shape, method, 1, 16), Device.cpu(1L << 40));
        return new long[] {e.totalParameters(), e.trainableParameters()};
    }

    /** BertModel: embeddings, L layers, pooler (hand count of modeling_bert.py's modules). */
    static long bertModel(long v, long h, long layers, long inner, long positions, boolean pooler) {
        long embeddings = v * h + positions * h + 2 * h + 2 * h;
        long layer = 4 * (h * h + h) + 2 * h + (h * inner + inner) + (inner * h + h) + 2 * h;
        return embeddings + layers * layer + (pooler ? h * h + h : 0);
    }

    @Test
    void modelCardTotalsAreCounted() {
        // all-MiniLM-L6-v2 with its pooler: 22,713,216 (the card's 22.7M).
        assertThat(counts(minilm(true, 2), new FineTuningMethod.Full())[0] - (384 * 2 + 2))
                .isEqualTo(22_713_216L)
                .isEqualTo(bertModel(30522, 384, 6, 1536, 512, true));
        // bert-base-uncased's BertModel: 109,482,240 (109.5M).
        assertThat(counts(bertBase(2), new FineTuningMethod.Full())[0] - (768 * 2 + 2))
                .isEqualTo(109_482_240L)
                .isEqualTo(bertModel(30522, 768, 12, 3072, 512, true));
        // GPT-2 small: 124,439,808 (wte tied with lm_head, counted once).
        long gpt2 =
                50257L * 768
                        + 1024L * 768
                        + 12L
                                * (2 * 768 * 2
                                        + (768L * 2304 + 2304)
                                        + (768L * 768 + 768)
                                        + (768L * 3072 + 3072)
                                        + (3072L * 768 + 768))
                        + 2 * 768;
        assertThat(counts(gpt2(), new FineTuningMethod.Full())).containsExactly(gpt2, gpt2);
        assertThat(gpt2).isEqualTo(124_439_808L);
        // TinyLlama-1.1B: 1,100,048,384 (untied lm_head, GQA 32/4 heads of 64).
        long tiny =
                2 * 32000L * 2048
                        + 22L * (2 * 2048 + 2048L * 2048 * 2 + 2 * 2048L * 256 + 3 * 2048L * 5632)
                        + 2048;
        assertThat(tiny).isEqualTo(1_100_048_384L);
        assertThat(counts(tinyLlama(), new FineTuningMethod.Full())[0]).isEqualTo(tiny);
    }

    @Test
    void loraCountsAsPeftPrintsThem() {
        // PEFT, r=8 on its default targets: "trainable params: 294,912 || all params:
        // 124,734,720" for gpt2 (c_attn: 8 x (768 + 2304) per layer).
        assertThat(counts(gpt2(), FineTuningMethod.Lora.gpt2Defaults()))
                .containsExactly(124_734_720L, 294_912L);
        // TinyLlama, q_proj and v_proj: 22 x 8 x ((2048 + 2048) + (2048 + 256)) = 1,126,400 of
        // 1,101,174,784.
        FineTuningMethod.Lora llama =
                new FineTuningMethod.Lora(8, 16f, 0.05f, List.of("q_proj", "v_proj"));
        assertThat(counts(tinyLlama(), llama)).containsExactly(1_101_174_784L, 1_126_400L);
        // bert-base with 2 labels: 12 x 2 x 8 x (768 + 768) adapter weights plus the classifier
        // (PEFT's modules_to_save), 294,912 + 1,538.
        assertThat(counts(bertBase(2), FineTuningMethod.Lora.defaults())[1])
                .isEqualTo(294_912L + 768 * 2 + 2);
    }

    @Test
    void everyMethodCountsAsTheEngineTrainsMiniLm() {
        // The engine's own counts for the built-in MiniLM with 4 labels (docs/methods.md, the
        // Debian-sections table, measured by ParameterCounts on the built model).
        ModelShape m = minilm(false, 4);
        assertThat(counts(m, new FineTuningMethod.Full())[1]).isEqualTo(22_566_916L);
        assertThat(counts(m, new FineTuningMethod.Freeze(2, false, List.of()))[1])
                .isEqualTo(3_550_468L);
        assertThat(counts(m, FineTuningMethod.Lora.defaults()))
                .containsExactly(22_640_644L, 75_268L);
        assertThat(counts(m, new FineTuningMethod.Qlora(FineTuningMethod.Lora.defaults()))[1])
                .isEqualTo(75_268L);
        assertThat(counts(m, FineTuningMethod.Adapter.houlsby())[1]).isEqualTo(227_620L);
        assertThat(counts(m, FineTuningMethod.Adapter.pfeiffer())[1]).isEqualTo(114_580L);
        assertThat(counts(m, FineTuningMethod.Prefix.of(10))[1]).isEqualTo(47_620L);
        assertThat(counts(m, new FineTuningMethod.Prefix(10, 128))[1]).isEqualTo(649_092L);
        assertThat(
                        counts(
                                m,
                                new FineTuningMethod.PTuning(
                                        10, FineTuningMethod.PTuning.Encoder.MLP, 128, 0f))[1])
                .isEqualTo(120_708L);
        assertThat(
                        counts(
                                m,
                                new FineTuningMethod.Prompt(
                                        10, FineTuningMethod.Prompt.Init.RANDOM, List.of()))[1])
                .isEqualTo(5_380L);
    }

    @Test
    void loraTargetsThatMatchNothingFailAsTheWorkerWould() {
        FineTuningMethod.Lora wrong =
                new FineTuningMethod.Lora(8, 16f, 0f, TargetMatcher.anyOf(List.of("q_proj")));
        assertThatThrownBy(() -> counts(minilm(false, 2), wrong))
                .isInstanceOf(TargetMatcher.NoTargetMatchException.class);
    }

    @Test
    void qloraStoresTheLinearWeightsInAboutHalfAByte() {
        FineTuningMethod.Lora targets =
                new FineTuningMethod.Lora(8, 16f, 0.05f, List.of("q_proj", "v_proj"));
        // fp32: on an A100 the job's default precision would hold LoRA's frozen base in bf16.
        Estimate lora =
                Estimator.estimate(
                        plan(tinyLlama(), targets, 1, 16)
                                .withPrecision(TrainingPlan.Precision.FP32),
                        Device.gpu("nvidia-a100-80gb").orElseThrow());
        Estimate qlora =
                Estimator.estimate(
                        plan(tinyLlama(), new FineTuningMethod.Qlora(targets), 1, 16),
                        Device.gpu("nvidia-a100-80gb").orElseThrow());
        long linears = 22L * (2048L * 2048 * 2 + 2 * 2048L * 256 + 3 * 2048L * 5632);
        long rest = 1_101_174_784L - linears;
        // NF4: 0.5 byte per weight, 8-bit block scales per 64 (double quantization), the rest fp32.
        assertThat(qlora.weightBytes())
                .isBetween(
                        rest * 4 + linears / 2 + linears / 64,
                        rest * 4 + linears / 2 + linears / 60);
        assertThat(lora.weightBytes()).isGreaterThan(qlora.weightBytes() * 3);
    }

    @Test
    void activationsGrowLinearlyWithTheBatchAndTheScoresWithTheSquareOfTheSequence() {
        Device big = Device.gpu("nvidia-h100-80gb").orElseThrow();
        FineTuningMethod full = new FineTuningMethod.Full();
        long a1 = Estimator.estimate(plan(bertBase(2), full, 1, 512), big).activationBytes();
        long a8 = Estimator.estimate(plan(bertBase(2), full, 8, 512), big).activationBytes();
        assertThat((double) a8 / a1).isCloseTo(8.0, org.assertj.core.data.Offset.offset(0.01));
        // Korthikanti et al.'s per-layer term s b h (34 + 5 a s / h) in 16-bit: at s = 512 the
        // attention scores (5 a s / h = 40) outweigh the rest (34); the fp32 count here, with
        // dropout copies, must sit in the same range once scaled to 4 bytes (x2).
        double korthikanti = 12 * 512.0 * 768 * (34 + 5.0 * 12 * 512 / 768) * 2;
        assertThat((double) a1).isBetween(0.7 * korthikanti, 1.5 * korthikanti);
    }

    @Test
    void frozenLowerLayersKeepNoActivations() {
        Device big = Device.gpu("nvidia-h100-80gb").orElseThrow();
        long full =
                Estimator.estimate(plan(bertBase(2), new FineTuningMethod.Full(), 8, 128), big)
                        .activationBytes();
        long top2 =
                Estimator.estimate(
                                plan(
                                        bertBase(2),
                                        new FineTuningMethod.Freeze(2, false, List.of()),
                                        8,
                                        128),
                                big)
                        .activationBytes();
        long headOnly =
                Estimator.estimate(
                                plan(bertBase(2), FineTuningMethod.Freeze.headOnly(), 8, 128), big)
                        .activationBytes();
        assertThat(top2).isLessThan(full / 3);
        assertThat(headOnly).isLessThan(top2 / 2);
    }

    @Test
    void fullFineTuningPaysGradientsAndTwoAdamMomentsPerParameter() {
        Estimate e =
                Estimator.estimate(
                        plan(tinyLlama(), new FineTuningMethod.Full(), 1, 128),
                        Device.gpu("nvidia-a100-80gb").orElseThrow());
        assertThat(e.gradientBytes()).isEqualTo(1_100_048_384L * 4);
        assertThat(e.optimizerBytes()).isEqualTo(1_100_048_384L * 8);
        assertThat(e.peakBytes())
                .isEqualTo(
                        e.weightBytes()
                                + e.gradientBytes()
                                + e.optimizerBytes()
                                + e.activationBytes()
                                + e.workspaceBytes()
                                + e.runtimeBytes());
        // 6 FLOPs per parameter and token for the linears (Kaplan et al. 2020), plus attention.
        double linears = 22.0 * (2048L * 2048 * 2 + 2 * 2048L * 256 + 3 * 2048L * 5632);
        double head = 2048.0 * 32000;
        assertThat(e.flopsPerStep())
                .isBetween(6 * (linears + head) * 128, 6.5 * (linears + head) * 128);
    }

    @Test
    void autoFitHalvesTheMicroBatchAndKeepsTheEffectiveBatch() {
        TrainingPlan wanted =
                new TrainingPlan(
                        tinyLlama(),
                        new FineTuningMethod.Full(),
                        32,
                        1024,
                        2,
                        OptionalLong.of(100));
        Device a100 = Device.gpu("nvidia-a100-80gb").orElseThrow();
        assertThat(Estimator.estimate(wanted, a100).fits()).isFalse();
        TrainingPlan fitted = Estimator.autoFit(wanted, a100).orElseThrow();
        assertThat(Estimator.estimate(fitted, a100).fits()).isTrue();
        assertThat(fitted.effectiveBatch()).isEqualTo(64);
        assertThat(fitted.microBatch()).isLessThan(32);
        assertThat(Integer.bitCount(fitted.microBatch())).isEqualTo(1);
        // The largest micro-batch that fits: twice it does not.
        assertThat(Estimator.estimate(wanted.withBatch(fitted.microBatch() * 2, 1), a100).fits())
                .isFalse();
    }

    @Test
    void autoFitGivesUpWhenOneExampleDoesNotFit() {
        TrainingPlan wanted =
                new TrainingPlan(
                        tinyLlama(), new FineTuningMethod.Full(), 4, 2048, 1, OptionalLong.empty());
        assertThat(Estimator.autoFit(wanted, Device.gpu("nvidia-t4").orElseThrow())).isEmpty();
    }

    /** TinyLlama's linear weights in one decoder layer, by hand: q, k, v, o, gate, up, down. */
    static final long TINY_LAYER_LINEARS =
            2048L * 2048 + 2 * 2048L * 256 + 2048L * 2048 + 3 * 2048L * 5632;

    static final FineTuningMethod.Lora TINY_QV =
            new FineTuningMethod.Lora(8, 16f, 0.05f, List.of("q_proj", "v_proj"));

    static Estimate tiny(FineTuningMethod method, int layers, boolean checkpointing) {
        String config =
                TINYLLAMA.replace("\"num_hidden_layers\": 22", "\"num_hidden_layers\": " + layers);
        return Estimator.estimate(
                plan(new ModelShape.Llama(LlamaConfig.parse(config)), method, 8, 512)
                        .withPrecision(TrainingPlan.Precision.FP32)
                        .withActivationCheckpointing(checkpointing),
                Device.gpu("nvidia-h100-80gb").orElseThrow());
    }

    @Test
    void checkpointingKeepsEachLayersInputOnlyAndRecomputesEveryLayerOnce() {
        // Checkpointed, a layer more costs only its input, b s h fp32 values; not checkpointed, a
        // whole layer's activations.
        long inputBytes = 8L * 512 * 2048 * 4;
        assertThat(
                        tiny(TINY_QV, 44, true).activationBytes()
                                - tiny(TINY_QV, 22, true).activationBytes())
                .isEqualTo(22 * inputBytes);
        assertThat(
                        tiny(TINY_QV, 44, false).activationBytes()
                                - tiny(TINY_QV, 22, false).activationBytes())
                .isGreaterThan(20 * 22 * inputBytes);
        // At 22 layers it is most of the activations gone; the logits (3 b s V: the logits, their
        // log-softmax and their gradient) stay.
        Estimate on = tiny(TINY_QV, 22, true);
        Estimate off = tiny(TINY_QV, 22, false);
        assertThat(on.activationBytes()).isLessThan(off.activationBytes() / 4);
        assertThat(on.activationBytes()).isGreaterThan(3L * 8 * 512 * 32000 * 4);
        // The price: one more forward pass of every layer per token, by hand: 2 FLOPs per linear
        // weight, the attention's two matmuls (2 x 2 s d per head) and LoRA's A and B.
        long tokens = 8L * 512;
        double linears = 2.0 * 22 * TINY_LAYER_LINEARS;
        double attention = 22 * 2 * 2.0 * 512 * 64 * 32;
        double lora = 22 * 2.0 * 8 * ((2048 + 2048) + (2048 + 256));
        assertThat(on.flopsPerStep() - off.flopsPerStep())
                .isCloseTo((linears + attention + lora) * tokens, withinPercentage(1e-9));
    }

    @Test
    void aQloraBaseStreamedIntoNf4NeverHoldsItsFp32LinearWeights() {
        // QLoRA reads one linear weight at a time in fp32 and quantizes it (quant.Nf4Loading), so
        // against LoRA on the same base it saves almost all of the 4 bytes of every linear weight:
        // 4 - 0.52 (NF4, double quantization), less one layer's dequantized copy (both runs
        // checkpointed, QLoRA's default) and the one tensor the load holds in fp32.
        Device h100 = Device.gpu("nvidia-h100-80gb").orElseThrow();
        long linears =
                ParameterLayout.of(tinyLlama()).linears().values().stream()
                        .mapToLong(ParameterLayout.Linear::weights)
                        .sum();
        Estimate lora =
                Estimator.estimate(
                        plan(tinyLlama(), TINY_QV, 1, 128)
                                .withPrecision(TrainingPlan.Precision.FP32)
                                .withActivationCheckpointing(true),
                        h100);
        Estimate qlora =
                Estimator.estimate(
                        plan(tinyLlama(), new FineTuningMethod.Qlora(TINY_QV), 1, 128)
                                .withPrecision(TrainingPlan.Precision.FP32)
                                .withActivationCheckpointing(true),
                        h100);
        assertThat(lora.peakBytes() - qlora.peakBytes()).isGreaterThan(3 * linears);
    }

    @Test
    void qloraIsCheckpointedByDefaultAndThenDequantizesOneLayerAtATime() {
        FineTuningMethod.Qlora qlora = new FineTuningMethod.Qlora(TINY_QV);
        Estimate on = tiny(qlora, 22, true);
        Estimate off = tiny(qlora, 22, false);
        // Not checkpointed, every layer's dequantized fp32 weights live until backward;
        // checkpointed
        // one layer's.
        assertThat(off.workspaceBytes() - on.workspaceBytes())
                .isEqualTo(21 * TINY_LAYER_LINEARS * 4);
        // The job's default (unset): on for QLoRA, off for LoRA, as the worker's JobSettings.
        Device h100 = Device.gpu("nvidia-h100-80gb").orElseThrow();
        TrainingPlan unset =
                plan(tinyLlama(), qlora, 8, 512).withPrecision(TrainingPlan.Precision.FP32);
        assertThat(Estimator.estimate(unset, h100).peakBytes()).isEqualTo(on.peakBytes());
        assertThat(unset.withMethod(TINY_QV).checkpointingRequested()).isFalse();
        // GPT-2 and the encoders are cut into layers too (TunableModel.segments): checkpointed,
        // they keep fewer activations.
        TrainingPlan gpt2 =
                plan(
                        gpt2(),
                        new FineTuningMethod.Qlora(FineTuningMethod.Lora.gpt2Defaults()),
                        8,
                        512);
        assertThat(
                        Estimator.estimate(gpt2.withActivationCheckpointing(true), h100)
                                .activationBytes())
                .isLessThan(
                        Estimator.estimate(gpt2.withActivationCheckpointing(false), h100)
                                .activationBytes());
        // Nor for a prompt: virtual tokens are not cut into segments either.
        TrainingPlan prompt = plan(tinyLlama(), FineTuningMethod.Prompt.defaults(), 8, 512);
        assertThat(Estimator.estimate(prompt.withActivationCheckpointing(true), h100))
                .isEqualTo(Estimator.estimate(prompt.withActivationCheckpointing(false), h100));
    }

    @Test
    void bf16HoldsTheFrozenLinearWeightsInTwoBytesAndWidensThemPerCall() {
        Device a100 = Device.gpu("nvidia-a100-80gb").orElseThrow();
        TrainingPlan lora = plan(tinyLlama(), TINY_QV, 8, 512);
        Estimate fp32 = Estimator.estimate(lora.withPrecision(TrainingPlan.Precision.FP32), a100);
        Estimate bf16 = Estimator.estimate(lora.withPrecision(TrainingPlan.Precision.BF16), a100);
        long frozenLinears = 22 * TINY_LAYER_LINEARS;
        assertThat(fp32.weightBytes() - bf16.weightBytes()).isEqualTo(frozenLinears * 2);
        // Each call's fp32 copy lives until the micro-batch ends: every layer's without
        // checkpointing, one layer's with it.
        assertThat(bf16.workspaceBytes() - fp32.workspaceBytes()).isEqualTo(frozenLinears * 4);
        Estimate bf16Checkpointed =
                Estimator.estimate(
                        lora.withPrecision(TrainingPlan.Precision.BF16)
                                .withActivationCheckpointing(true),
                        a100);
        Estimate fp32Checkpointed =
                Estimator.estimate(
                        lora.withPrecision(TrainingPlan.Precision.FP32)
                                .withActivationCheckpointing(true),
                        a100);
        assertThat(bf16Checkpointed.workspaceBytes() - fp32Checkpointed.workspaceBytes())
                .isEqualTo(TINY_LAYER_LINEARS * 4);
        assertThat(fp32Checkpointed.peakBytes() - bf16Checkpointed.peakBytes())
                .isEqualTo(frozenLinears * 2 - TINY_LAYER_LINEARS * 4);
        // auto is bf16 where the worker makes it so: an Ampere or later GPU, not a T4 or a CPU.
        assertThat(Estimator.estimate(lora, a100)).isEqualTo(bf16);
        Device t4 = Device.gpu("nvidia-t4").orElseThrow();
        assertThat(Estimator.estimate(lora, t4).weightBytes()).isEqualTo(fp32.weightBytes());
        assertThat(Estimator.estimate(lora, Device.cpu(1L << 40)).weightBytes())
                .isEqualTo(fp32.weightBytes());
        // Full fine-tuning trains every linear weight: nothing is frozen, nothing held in bf16.
        TrainingPlan full = plan(tinyLlama(), new FineTuningMethod.Full(), 1, 16);
        assertThat(
                        Estimator.estimate(full.withPrecision(TrainingPlan.Precision.BF16), a100)
                                .peakBytes())
                .isEqualTo(
                        Estimator.estimate(full.withPrecision(TrainingPlan.Precision.FP32), a100)
                                .peakBytes());
    }

    @Test
    void fp16HoldsTheFrozenLinearWeightsInTwoBytesAndWidensThemOnlyOnACpu() {
        Device t4 = Device.gpu("nvidia-t4").orElseThrow();
        TrainingPlan lora = plan(tinyLlama(), TINY_QV, 8, 512);
        long frozenLinears = 22 * TINY_LAYER_LINEARS;
        Estimate fp32 = Estimator.estimate(lora.withPrecision(TrainingPlan.Precision.FP32), t4);
        Estimate fp16 = Estimator.estimate(lora.withPrecision(TrainingPlan.Precision.FP16), t4);
        assertThat(fp32.weightBytes() - fp16.weightBytes()).isEqualTo(frozenLinears * 2);
        // On a GPU the matmuls take the float16 weights as they are: no fp32 copies.
        assertThat(fp16.workspaceBytes()).isEqualTo(fp32.workspaceBytes());
        assertThat(fp32.peakBytes() - fp16.peakBytes()).isEqualTo(frozenLinears * 2);
        // On a CPU each call widens its weight, as under bf16.
        Device cpu = Device.cpu(1L << 40);
        assertThat(
                        Estimator.estimate(lora.withPrecision(TrainingPlan.Precision.FP16), cpu)
                                .workspaceBytes())
                .isEqualTo(
                        Estimator.estimate(lora.withPrecision(TrainingPlan.Precision.BF16), cpu)
                                .workspaceBytes());
        // auto never means fp16, on a T4 (no bf16) it stays fp32.
        assertThat(Estimator.estimate(lora, t4)).isEqualTo(fp32);
        assertThat(TrainingPlan.Precision.of(" FP16")).isEqualTo(TrainingPlan.Precision.FP16);
    }

    @Test
    void bf16CannotGoBelowTheFp32BaseTheLoaderReadsFirst() {
        // A micro-batch of one short sequence, checkpointed: training needs less than the fp32
        // base, which the checkpoint loader holds before the weights go to bf16.
        Estimate e =
                Estimator.estimate(
                        plan(tinyLlama(), TINY_QV, 1, 16)
                                .withPrecision(TrainingPlan.Precision.BF16)
                                .withActivationCheckpointing(true),
                        Device.gpu("nvidia-a100-80gb").orElseThrow());
        assertThat(e.peakBytes()).isEqualTo(1_100_048_384L * 4 + Device.CUDA_CONTEXT_BYTES);
    }
}
