package io.tuneline.training.worker;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.export.MethodExport;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.JobMethods;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.method.Precision;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.train.LearningRateSchedule;
import io.tuneline.engine.train.LossScaler;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.proto.v1.Hyperparameters;
import io.tuneline.proto.v1.MethodSpec;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.function.Function;

/**
 * What a job asks for, in the engine's terms, for every task: the training settings with the
 * defaults {@code job.proto} promises, the fine-tuning method, the dropout override, the adapter
 * export Python tools load, and the refusal of a base no method can train on.
 */
final class JobSettings {

    private JobSettings() {}

    /** The job's hyperparameters with the defaults its comments promise. */
    static TrainingSettings settings(Hyperparameters h, MethodSpec method) {
        return new TrainingSettings(
                h.getEpochs() > 0 ? h.getEpochs() : 3,
                h.getBatchSize() > 0 ? h.getBatchSize() : 16,
                h.getLearningRate() > 0 ? (float) h.getLearningRate() : defaultLearningRate(method),
                h.getWeightDecay() > 0 ? (float) h.getWeightDecay() : 0.01f,
                h.getWarmupRatio() > 0 ? (float) h.getWarmupRatio() : 0.06f,
                h.getMaxGradNorm() == 0 ? 1f : (float) Math.max(0, h.getMaxGradNorm()),
                h.getMaxSeqLength() > 0 ? h.getMaxSeqLength() : 128,
                h.getSeed() != 0 ? h.getSeed() : 42,
                switch (h.getLrSchedule()) {
                    case LR_SCHEDULE_COSINE -> LearningRateSchedule.Shape.COSINE;
                    case LR_SCHEDULE_CONSTANT -> LearningRateSchedule.Shape.CONSTANT;
                    default -> LearningRateSchedule.Shape.LINEAR;
                },
                Math.max(1, h.getGradientAccumulationSteps()),
                h.getMaxSteps(),
                activationCheckpointing(h, method));
    }

    /**
     * {@code s} for training in {@code precision}: fp16 scales its loss with {@code
     * torch.amp.GradScaler}'s defaults (initial scale 2^16, growth 2 after 2000 clean steps,
     * backoff 0.5), the only precision that needs it.
     */
    static TrainingSettings forPrecision(TrainingSettings s, Precision precision) {
        return precision.needsLossScaling()
                ? s.withLossScaling(LossScaler.Config.TORCH_DEFAULTS)
                : s;
    }

    /**
     * Activation checkpointing as the job sets it; unset, on for QLoRA, whose memory saving needs
     * it (without, every layer's dequantized weight lives until backward), off otherwise.
     */
    static boolean activationCheckpointing(Hyperparameters h, MethodSpec method) {
        return h.hasActivationCheckpointing()
                ? h.getActivationCheckpointing()
                : method.getKindCase() == MethodSpec.KindCase.QLORA;
    }

    /** The job's override of every dropout rate inside the model, when it sets one. */
    static java.util.OptionalDouble modelDropout(Hyperparameters h) {
        return h.hasModelDropout()
                ? java.util.OptionalDouble.of(h.getModelDropout())
                : java.util.OptionalDouble.empty();
    }

    /**
     * The learning rate job.proto promises when the job sets none: 2e-5 for full fine-tuning (the
     * usual rate for BERT-size models, Devlin et al. 2019), 2e-4 for every method that trains a
     * small part of the model (LoRA's and layer freezing's usual rate, as in PEFT's examples).
     */
    static float defaultLearningRate(MethodSpec method) {
        return switch (method.getKindCase()) {
            case FULL, KIND_NOT_SET -> 2e-5f;
            default -> 2e-4f;
        };
    }

    /** The job's method, as {@link JobMethods#of} reads it. */
    static FineTuningMethod method(
            MethodSpec spec,
            List<String> defaultTargets,
            Function<String, List<Integer>> tokenize) {
        return JobMethods.of(spec, defaultTargets, tokenize);
    }

    /** A tokenizer's ids for a text, special tokens included. */
    static Function<String, List<Integer>> tokenIds(HuggingFaceTokenizer tokenizer) {
        return text ->
                java.util.Arrays.stream(tokenizer.encode(text).getIds())
                        .mapToObj(id -> (int) id)
                        .toList();
    }

    /**
     * Writes the adapter a method trains in the layout Python tools load ({@link MethodExport}) and
     * says whether there is one.
     */
    static boolean writeAdapter(
            TunableModel model,
            FineTuningMethod method,
            MethodSpec spec,
            String baseModel,
            List<String> labels,
            Path dir)
            throws IOException {
        String initText = spec.getPrompt().getInitText();
        return MethodExport.write(
                model,
                method,
                initText.isBlank() ? Optional.empty() : Optional.of(initText),
                baseModel,
                labels,
                dir);
    }

    /**
     * Fails for a base model that is a tuned model whose method could not be merged into its
     * weights (its directory carries {@link MethodState}'s files): training on its weights alone
     * would silently start from the untuned base.
     */
    static void requireMergedBase(String ref, PretrainedModel base) throws IOException {
        Optional<Path> dir = base.directory().filter(MethodState::present);
        if (dir.isPresent()) {
            throw new IllegalArgumentException(
                    "base model '"
                            + ref
                            + "' was tuned with "
                            + MethodState.description(dir.get()).path("method").asText("a method")
                            + ", which cannot be merged into its weights: it can be evaluated,"
                            + " but not fine-tuned further; start from its own base model");
        }
    }
}
