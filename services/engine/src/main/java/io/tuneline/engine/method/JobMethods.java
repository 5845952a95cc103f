package io.tuneline.engine.method;

import io.tuneline.proto.v1.LoraParams;
import io.tuneline.proto.v1.MethodSpec;
import io.tuneline.proto.v1.PromptTuningParams;
import java.util.List;
import java.util.Locale;
import java.util.function.Function;

/**
 * A job's {@code method} ({@code job.proto}'s {@code MethodSpec}) as the engine's {@link
 * FineTuningMethod}, with the defaults the job's comments promise. One place for the worker, which
 * trains with it, and the registry's pre-flight estimate, which counts what it would train.
 */
public final class JobMethods {

    private JobMethods() {}

    /**
     * The job's method; a LoRA job's targets are its {@code target_modules} list, its {@code
     * target_modules_regex}, or when it names neither PEFT's targets for the model family ({@code
     * defaultTargets}: query and value for BERT, c_attn for GPT-2). {@code tokenize} gives a text's
     * token ids for prompt tuning's TEXT init.
     */
    public static FineTuningMethod of(
            MethodSpec spec,
            List<String> defaultTargets,
            Function<String, List<Integer>> tokenize) {
        return switch (spec.getKindCase()) {
            case FULL, KIND_NOT_SET -> new FineTuningMethod.Full();
            case FREEZE ->
                    spec.getFreeze().getHeadOnly()
                            ? FineTuningMethod.Freeze.headOnly()
                            : new FineTuningMethod.Freeze(
                                    spec.getFreeze().getTrainTopLayers(),
                                    spec.getFreeze().getTrainEmbeddings(),
                                    spec.getFreeze().getTrainablePatternsList());
            case LORA -> lora(spec.getLora(), defaultTargets);
            case QLORA -> {
                var q = spec.getQlora();
                yield new FineTuningMethod.Qlora(
                        lora(q.getLora(), defaultTargets),
                        blocksize(q),
                        !q.getDisableDoubleQuant());
            }
            case ADAPTER ->
                    FineTuningMethod.Adapter.fromJob(
                            spec.getAdapter().getPlacement(),
                            spec.getAdapter().getBottleneckSize(),
                            spec.getAdapter().getReductionFactor(),
                            spec.getAdapter().getActivation(),
                            spec.getAdapter().getDropout());
            case PREFIX ->
                    new FineTuningMethod.Prefix(
                            spec.getPrefix().getNumVirtualTokens() > 0
                                    ? spec.getPrefix().getNumVirtualTokens()
                                    : 20,
                            spec.getPrefix().getProjectionHiddenSize());
            case PROMPT -> prompt(spec.getPrompt(), tokenize);
            case P_TUNING -> {
                var p = spec.getPTuning();
                yield new FineTuningMethod.PTuning(
                        p.getNumVirtualTokens() > 0 ? p.getNumVirtualTokens() : 20,
                        p.getEncoderType().isEmpty()
                                ? FineTuningMethod.PTuning.Encoder.MLP
                                : FineTuningMethod.PTuning.Encoder.valueOf(
                                        p.getEncoderType().toUpperCase(Locale.ROOT)),
                        p.getEncoderHiddenSize(),
                        (float) p.getEncoderDropout());
            }
        };
    }

    /**
     * Prompt tuning with the job's init: the text's token ids (special tokens included, as PEFT
     * tokenizes {@code prompt_tuning_init_text}) when it gives a text, rows drawn from the
     * vocabulary for "vocab", random vectors otherwise.
     */
    private static FineTuningMethod.Prompt prompt(
            PromptTuningParams p, Function<String, List<Integer>> tokenize) {
        int n = p.getNumVirtualTokens() > 0 ? p.getNumVirtualTokens() : 20;
        String init = p.getInit().toLowerCase(Locale.ROOT);
        if (!p.getInitText().isBlank() || init.equals("text")) {
            return new FineTuningMethod.Prompt(
                    n, FineTuningMethod.Prompt.Init.TEXT, tokenize.apply(p.getInitText()));
        }
        return new FineTuningMethod.Prompt(
                n,
                init.equals("vocab")
                        ? FineTuningMethod.Prompt.Init.VOCAB
                        : FineTuningMethod.Prompt.Init.RANDOM,
                List.of());
    }

    private static FineTuningMethod.Lora lora(LoraParams l, List<String> defaultTargets) {
        int rank = l.getRank() > 0 ? l.getRank() : 8;
        return new FineTuningMethod.Lora(
                rank,
                l.getAlpha() > 0 ? (float) l.getAlpha() : 2f * rank,
                l.getDropout() > 0 ? (float) l.getDropout() : 0.05f,
                !l.getTargetModulesRegex().isEmpty()
                        ? TargetMatcher.fullMatch(l.getTargetModulesRegex())
                        : TargetMatcher.anyOf(
                                l.getTargetModulesCount() > 0
                                        ? l.getTargetModulesList()
                                        : defaultTargets));
    }

    /**
     * How a QLoRA job's base is quantized while the checkpoint is read ({@link
     * FineTuningMethod.Qlora#loading()}: every linear layer, the job's block size and double
     * quantization); empty for every other method. Needs no model, so the loader can take it before
     * the model exists.
     */
    public static java.util.Optional<io.tuneline.engine.quant.Nf4Loading> nf4Loading(
            MethodSpec spec) {
        if (spec.getKindCase() != MethodSpec.KindCase.QLORA) {
            return java.util.Optional.empty();
        }
        var q = spec.getQlora();
        return java.util.Optional.of(
                new io.tuneline.engine.quant.Nf4Loading(
                        TargetMatcher.fullMatch(".*")::select,
                        blocksize(q),
                        !q.getDisableDoubleQuant()));
    }

    /**
     * QLoRA's defaults (Dettmers et al. 2023, arXiv:2305.14314; transformers' BitsAndBytesConfig as
     * the paper's scripts set it): NF4 in blocks of 64 with double quantization, off only when the
     * job says disable_double_quant.
     */
    private static int blocksize(io.tuneline.proto.v1.QloraParams q) {
        return q.getBlockSize() > 0 ? q.getBlockSize() : 64;
    }
}
