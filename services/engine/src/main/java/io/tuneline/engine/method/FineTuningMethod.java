package io.tuneline.engine.method;

import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.gpt2.Gpt2LmModel;
import java.nio.file.FileSystems;
import java.nio.file.Path;
import java.nio.file.PathMatcher;
import java.util.List;
import java.util.Map;

/**
 * How much of a pretrained model a job trains. Each method decides which parameters get gradients
 * (the others are frozen: no gradient, no optimizer state) and may add its own. QLoRA, adapters,
 * prefix and prompt tuning join this closed set as further records.
 */
public sealed interface FineTuningMethod
        permits FineTuningMethod.Full, FineTuningMethod.Freeze, FineTuningMethod.Lora {

    /** Prepares {@code model} for training and says how many parameters train. */
    ParameterCounts apply(SequenceClassifier model, NDManager manager);

    /**
     * Prepares a GPT-2 language model for training. Its LM head is tied to {@code wte}, so there is
     * no separate head: {@code Freeze} always trains the final LayerNorm {@code ln_f} and trains
     * the (tied) embeddings only when asked; {@code Lora} trains the adapters and nothing else.
     */
    ParameterCounts apply(Gpt2LmModel model, NDManager manager);

    /** Every weight trains. */
    record Full() implements FineTuningMethod {
        @Override
        public ParameterCounts apply(SequenceClassifier model, NDManager manager) {
            model.namedParameters().values().forEach(p -> p.freeze(false));
            return ParameterCounts.of(model);
        }

        @Override
        public ParameterCounts apply(Gpt2LmModel model, NDManager manager) {
            model.namedParameters().values().forEach(p -> p.freeze(false));
            return ParameterCounts.of(model);
        }
    }

    /**
     * Only chosen parts train: the top {@code trainTopLayers} layers, the embeddings if asked, any
     * parameter whose Hugging Face name matches a glob pattern, and always the task head.
     */
    record Freeze(int trainTopLayers, boolean trainEmbeddings, List<String> trainablePatterns)
            implements FineTuningMethod {
        public static Freeze headOnly() {
            return new Freeze(0, false, List.of());
        }

        @Override
        public ParameterCounts apply(SequenceClassifier model, NDManager manager) {
            int layers = model.encoder().config().layers();
            List<PathMatcher> patterns =
                    trainablePatterns.stream()
                            .map(p -> FileSystems.getDefault().getPathMatcher("glob:" + p))
                            .toList();
            for (Map.Entry<String, Parameter> e : model.namedParameters().entrySet()) {
                String name = e.getKey();
                boolean train =
                        name.startsWith("classifier.")
                                || (trainEmbeddings && name.startsWith("embeddings."))
                                || inTopLayers(name, layers, trainTopLayers)
                                || patterns.stream().anyMatch(m -> m.matches(Path.of(name)));
                e.getValue().freeze(!train);
            }
            return ParameterCounts.of(model);
        }

        @Override
        public ParameterCounts apply(Gpt2LmModel model, NDManager manager) {
            int layers = model.config().layers();
            List<PathMatcher> patterns =
                    trainablePatterns.stream()
                            .map(p -> FileSystems.getDefault().getPathMatcher("glob:" + p))
                            .toList();
            for (Map.Entry<String, Parameter> e : model.namedParameters().entrySet()) {
                String name = e.getKey();
                boolean train =
                        name.startsWith("transformer.ln_f.")
                                || (trainEmbeddings
                                        && (name.startsWith("transformer.wte.")
                                                || name.startsWith("transformer.wpe.")))
                                || inTopLayers(name, "transformer.h.", layers, trainTopLayers)
                                || patterns.stream().anyMatch(m -> m.matches(Path.of(name)));
                e.getValue().freeze(!train);
            }
            return ParameterCounts.of(model);
        }

        private static boolean inTopLayers(String name, int layers, int top) {
            return inTopLayers(name, "encoder.layer.", layers, top);
        }

        private static boolean inTopLayers(String name, String prefix, int layers, int top) {
            for (int i = layers - top; i < layers; i++) {
                if (name.startsWith(prefix + i + ".")) {
                    return true;
                }
            }
            return false;
        }
    }

    /**
     * Low-rank adapters on the named projections of every layer ({@code query}, {@code key}, {@code
     * value}, {@code dense} for the attention output); the base is frozen, the head trains.
     */
    record Lora(int rank, float alpha, float dropout, List<String> targetModules)
            implements FineTuningMethod {
        /** The defaults of the job spec: r 8, alpha 16, dropout 0.05, query and value. */
        public static Lora defaults() {
            return new Lora(8, 16f, 0.05f, List.of("query", "value"));
        }

        @Override
        public ParameterCounts apply(SequenceClassifier model, NDManager manager) {
            model.namedParameters().values().forEach(p -> p.freeze(true));
            int wrapped = model.encoder().enableLora(targetModules, rank, alpha, dropout, manager);
            if (wrapped == 0) {
                throw new IllegalArgumentException(
                        "no layer matches the LoRA target modules "
                                + targetModules
                                + "; use query, key, value or dense");
            }
            model.head().weight().freeze(false);
            model.head().bias().freeze(false);
            return ParameterCounts.of(model);
        }

        /** PEFT's default for GPT-2: r 8, alpha 16, dropout 0.05 on the fused {@code c_attn}. */
        public static Lora gpt2Defaults() {
            return new Lora(8, 16f, 0.05f, List.of("c_attn"));
        }

        /**
         * Targets are GPT-2's module names: {@code c_attn}, {@code c_proj} (attention and MLP),
         * {@code c_fc}, or {@code attn.c_proj} / {@code mlp.c_proj}. Only the adapters train.
         */
        @Override
        public ParameterCounts apply(Gpt2LmModel model, NDManager manager) {
            model.namedParameters().values().forEach(p -> p.freeze(true));
            int wrapped = model.enableLora(targetModules, rank, alpha, dropout, manager);
            if (wrapped == 0) {
                throw new IllegalArgumentException(
                        "no GPT-2 layer matches the LoRA target modules "
                                + targetModules
                                + "; use c_attn, c_proj, c_fc, attn.c_proj or mlp.c_proj");
            }
            return ParameterCounts.of(model);
        }
    }
}
