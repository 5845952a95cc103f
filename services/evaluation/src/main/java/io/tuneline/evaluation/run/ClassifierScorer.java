package io.tuneline.evaluation.run;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.export.ClassifierWeights;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.model.ClassifierPredictions;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.proto.v1.AttackKind;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Class probabilities from a classifier: the tuned model (its merged weights) or the base model
 * (pretrained encoder with a freshly initialised, seeded head: what the job would get without
 * fine-tuning). Inference only, no gradients, so it runs inside the evaluation service.
 */
final class ClassifierScorer implements AutoCloseable {
    private static final int BATCH = 32;

    private final Model model;
    private final SequenceClassifier classifier;
    private final HuggingFaceTokenizer tokenizer;
    private final int maxLength;

    private ClassifierScorer(
            Model model,
            SequenceClassifier classifier,
            HuggingFaceTokenizer tokenizer,
            int maxLength) {
        this.model = model;
        this.classifier = classifier;
        this.tokenizer = tokenizer;
        this.maxLength = maxLength;
    }

    /**
     * @param tunedWeights merged weights of the tuned model (every encoder weight and the head);
     *     empty for the base model, whose encoder then comes from {@code base}
     */
    static ClassifierScorer load(
            EngineRuntime runtime,
            PretrainedModel base,
            Path tokenizerFile,
            int labels,
            int maxLength,
            Optional<Path> tunedWeights)
            throws IOException {
        ai.djl.engine.Engine.getInstance().setRandomSeed(42);
        // A tuned model's file says which head it has (mean, or Hugging Face's pooler head).
        SequenceClassifier classifier =
                tunedWeights.isPresent()
                        ? ClassifierWeights.classifierFor(
                                tunedWeights.get(), base.config(), labels, 0f)
                        : new SequenceClassifier(new BertEncoder(base.config()), labels, 0f);
        Model model = Model.newInstance("evaluation", runtime.device(), EngineRuntime.ENGINE);
        try {
            classifier.initialize(
                    model.getNDManager(),
                    DataType.FLOAT32,
                    new Shape(1, maxLength),
                    new Shape(1, maxLength));
            if (tunedWeights.isPresent()) {
                ClassifierWeights.load(classifier, tunedWeights.get());
                MethodState.restoreIfPresent(
                        classifier, tunedWeights.get().getParent(), model.getNDManager());
            } else {
                base.loadInto(classifier.encoder());
            }
            model.setBlock(classifier);
            HuggingFaceTokenizer tokenizer =
                    HuggingFaceTokenizer.newInstance(
                            tokenizerFile,
                            Map.of("truncation", "true", "maxLength", Integer.toString(maxLength)));
            return new ClassifierScorer(model, classifier, tokenizer, maxLength);
        } catch (IOException | RuntimeException e) {
            model.close();
            throw e;
        }
    }

    /** The engine's batch scoring, which serving answers with too. */
    double[][] probabilities(List<String> texts) {
        return ClassifierPredictions.probabilities(
                model, classifier, tokenizer, texts, maxLength, BATCH);
    }

    /**
     * Class probabilities under an embedding-space attack on the word embeddings of the real tokens
     * (padding is left alone): FGSM (Goodfellow et al. 2015) takes one step of {@code epsilon}
     * along the sign of the loss gradient; PGD (Madry et al. 2018) takes {@code steps} steps of 2.5
     * epsilon / steps, each projected back into the L-infinity ball of radius epsilon. The loss is
     * the cross-entropy of each example's true label, so the attack pushes away from it.
     */
    double[][] attacked(
            List<String> texts, int[] truth, AttackKind kind, double epsilon, int steps) {
        int n = kind == AttackKind.ATTACK_KIND_FGSM ? 1 : Math.max(1, steps);
        float eps = (float) epsilon;
        float alpha = kind == AttackKind.ATTACK_KIND_FGSM ? eps : 2.5f * eps / n;
        long hidden = classifier.encoder().config().hiddenSize();
        double[][] out = new double[texts.size()][];
        for (int from = 0; from < texts.size(); from += BATCH) {
            ClassifierPredictions.Batch b =
                    ClassifierPredictions.batch(
                            tokenizer,
                            texts.subList(from, Math.min(texts.size(), from + BATCH)),
                            maxLength);
            try (NDManager m = model.getNDManager().newSubManager()) {
                NDList inputs = b.inputs(m);
                NDArray tokens = inputs.get(1).toType(DataType.FLOAT32, false).expandDims(2);
                long[] labels = new long[b.size()];
                for (int i = 0; i < labels.length; i++) {
                    labels[i] = truth[from + i];
                }
                NDArray oneHot = m.create(labels).oneHot(classifier.head().out());
                NDArray delta = m.zeros(new Shape(b.size(), b.length(), hidden));
                for (int step = 0; step < n; step++) {
                    delta.setRequiresGradient(true);
                    NDArray gradient;
                    try (GradientCollector collector =
                            model.getNDManager().getEngine().newGradientCollector()) {
                        NDArray logits =
                                classifier
                                        .forward(
                                                new ParameterStore(m, false),
                                                new NDList(inputs.get(0), inputs.get(1), delta),
                                                false)
                                        .singletonOrThrow();
                        NDArray loss = logits.logSoftmax(-1).mul(oneHot).sum().neg();
                        collector.backward(loss);
                        gradient = delta.getGradient().duplicate();
                    }
                    delta =
                            delta.stopGradient()
                                    .add(gradient.sign().mul(alpha).mul(tokens))
                                    .clip(-eps, eps);
                }
                ClassifierPredictions.copyRows(
                        softmax(m, new NDList(inputs.get(0), inputs.get(1), delta)), out, from);
            }
        }
        return out;
    }

    private NDArray softmax(NDManager m, NDList inputs) {
        return classifier
                .forward(new ParameterStore(m, false), inputs, false)
                .singletonOrThrow()
                .softmax(-1);
    }

    @Override
    public void close() {
        tokenizer.close();
        model.close();
    }

    @Override
    public String toString() {
        return "ClassifierScorer" + Arrays.toString(new int[] {maxLength});
    }
}
