package io.tuneline.engine.train;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import ai.djl.training.loss.Loss;
import io.tuneline.engine.model.SequenceClassifier;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Trains a {@link SequenceClassifier} with cross-entropy (optionally smoothed and class-weighted)
 * in the shared {@link TrainingLoop} (AdamW, schedule, accumulation, clipping, seeding,
 * checkpoints); also predicts class probabilities.
 */
public final class ClassifierTrainer {
    private final HuggingFaceTokenizer tokenizer;

    private final ClassificationLoss objective;

    public ClassifierTrainer(HuggingFaceTokenizer tokenizer) {
        this(tokenizer, ClassificationLoss.PLAIN);
    }

    /**
     * @param objective the training loss: cross-entropy, optionally smoothed and weighted
     */
    public ClassifierTrainer(HuggingFaceTokenizer tokenizer, ClassificationLoss objective) {
        this.tokenizer = tokenizer;
        this.objective = objective;
    }

    /** Returns the mean training loss of the last epoch. */
    public double train(
            Model model,
            SequenceClassifier classifier,
            List<LabelledText> examples,
            TrainingSettings s,
            TrainingListener listener) {
        try {
            return train(model, classifier, examples, s, listener, Checkpointing.none());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Trains with checkpoints and without validation; returns the last epoch's mean loss. */
    public double train(
            Model model,
            SequenceClassifier classifier,
            List<LabelledText> examples,
            TrainingSettings s,
            TrainingListener listener,
            Checkpointing checkpointing)
            throws IOException {
        return train(model, classifier, examples, s, Validation.none(), listener, checkpointing)
                .finalLoss();
    }

    /**
     * Trains in the shared {@link TrainingLoop}, measuring the validation loss as {@code
     * validation} says (and stopping early when it stops improving), saving checkpoints as {@code
     * checkpointing} says and resuming from one when given.
     */
    public TrainingOutcome train(
            Model model,
            SequenceClassifier classifier,
            List<LabelledText> examples,
            TrainingSettings s,
            Validation<LabelledText> validation,
            TrainingListener listener,
            Checkpointing checkpointing)
            throws IOException {
        return train(
                model, classifier, List.of(), examples, s, validation, listener, checkpointing);
    }

    /**
     * Trains with data parallelism: {@code replicas} are the same classifier on further devices
     * (the same method applied), each taking a share of every batch; {@code classifier} steps,
     * validates, checkpoints and is the result (see {@link DataParallel}).
     */
    public TrainingOutcome train(
            Model model,
            SequenceClassifier classifier,
            List<SequenceClassifier> replicas,
            List<LabelledText> examples,
            TrainingSettings s,
            Validation<LabelledText> validation,
            TrainingListener listener,
            Checkpointing checkpointing)
            throws IOException {
        List<TrainingLoop.Task<LabelledText>> others = new ArrayList<>();
        for (SequenceClassifier replica : replicas) {
            others.add(task(model, replica, s));
        }
        return TrainingLoop.run(
                model,
                task(model, classifier, s),
                others,
                examples,
                s,
                validation,
                listener,
                checkpointing);
    }

    private TrainingLoop.Task<LabelledText> task(
            Model model, SequenceClassifier classifier, TrainingSettings s) {
        return new TrainingLoop.Task<>() {
            @Override
            public Block block() {
                return classifier;
            }

            @Override
            public Map<String, Parameter> namedParameters() {
                return classifier.namedParameters();
            }

            @Override
            public boolean decays(String name) {
                return classifier.decays(name);
            }

            @Override
            public TrainingLoop.BatchLoss loss(NDManager manager, List<LabelledText> batch) {
                Batch b = encode(manager, batch, room(classifier, s.maxSeqLength()));
                return new TrainingLoop.BatchLoss(
                        trainingLoss(classifier, manager, b.ids, b.mask, b.labels), b.tokens);
            }

            @Override
            public TrainingLoop.BatchLoss lossAndBackward(
                    NDManager manager,
                    List<LabelledText> batch,
                    GradientCollector collector,
                    double lossDivisor) {
                Batch b = encode(manager, batch, room(classifier, s.maxSeqLength()));
                NDArray l =
                        ClassifierTrainer.this.lossAndBackward(
                                classifier,
                                manager,
                                b.ids,
                                b.mask,
                                b.labels,
                                s.activationCheckpointing(),
                                collector,
                                lossDivisor);
                return new TrainingLoop.BatchLoss(l, b.tokens);
            }

            @Override
            public double validationLoss(List<LabelledText> heldOut) {
                return ClassifierTrainer.this.validationLoss(
                        model, classifier, heldOut, s.maxSeqLength());
            }
        };
    }

    /**
     * The training loss of one batch through the classifier's own forward pass (dropout on).
     *
     * @param labels (B) class indices as floats
     */
    public NDArray trainingLoss(
            SequenceClassifier classifier,
            NDManager manager,
            NDArray ids,
            NDArray mask,
            NDArray labels) {
        NDArray logits =
                classifier
                        .forward(new ParameterStore(manager, false), new NDList(ids, mask), true)
                        .singletonOrThrow();
        return score(logits, labels);
    }

    /**
     * One training batch's loss and backward pass as the trainer runs them: the gradients of the
     * loss divided by {@code lossDivisor} (the accumulation group's size, over the loss scale under
     * loss scaling) are added to every parameter that requires one. A classifier without virtual
     * tokens or a key/value prefix runs segment by segment ({@link SequenceClassifier#segments}),
     * with activation checkpointing when {@code activationCheckpointing} ({@link
     * ActivationCheckpointing}); others run {@link #trainingLoss} whole. Inside {@code collector}.
     *
     * @return the batch's loss
     */
    public NDArray lossAndBackward(
            SequenceClassifier classifier,
            NDManager manager,
            NDArray ids,
            NDArray mask,
            NDArray labels,
            boolean activationCheckpointing,
            GradientCollector collector,
            double lossDivisor) {
        return ActivationCheckpointing.lossAndBackward(
                classifier.segments(new ParameterStore(manager, false), ids, mask, true),
                new NDList(ids, mask, labels),
                in -> trainingLoss(classifier, in, ids, mask, labels),
                logits -> score(logits, labels),
                lossDivisor,
                activationCheckpointing,
                collector,
                manager);
    }

    private NDArray score(NDArray logits, NDArray labels) {
        return objective == ClassificationLoss.PLAIN
                ? Loss.softmaxCrossEntropyLoss().evaluate(new NDList(labels), new NDList(logits))
                : objective.evaluate(logits, labels);
    }

    /** Mean cross-entropy on {@code examples}, without dropout or gradients. */
    double validationLoss(
            Model model,
            SequenceClassifier classifier,
            List<LabelledText> examples,
            int maxSeqLength) {
        Loss loss = Loss.softmaxCrossEntropyLoss();
        double sum = 0;
        for (int from = 0; from < examples.size(); from += 32) {
            List<LabelledText> chunk = examples.subList(from, Math.min(examples.size(), from + 32));
            try (NDManager m = model.getNDManager().newSubManager()) {
                Batch b = encode(m, chunk, room(classifier, maxSeqLength));
                NDArray logits =
                        classifier
                                .forward(
                                        new ParameterStore(m, false),
                                        new NDList(b.ids, b.mask),
                                        false)
                                .singletonOrThrow();
                sum +=
                        loss.evaluate(new NDList(b.labels), new NDList(logits)).getFloat()
                                * chunk.size();
            }
        }
        return sum / examples.size();
    }

    /** Predicted class probabilities, in batches, without gradients. */
    public float[][] predict(
            Model model, SequenceClassifier classifier, List<String> texts, int maxSeqLength) {
        float[][] out = new float[texts.size()][];
        for (int from = 0; from < texts.size(); from += 32) {
            List<String> chunk = texts.subList(from, Math.min(texts.size(), from + 32));
            try (NDManager m = model.getNDManager().newSubManager()) {
                Batch b =
                        encode(
                                m,
                                chunk.stream().map(t -> new LabelledText(t, 0)).toList(),
                                room(classifier, maxSeqLength));
                NDArray probs =
                        classifier
                                .forward(
                                        new ParameterStore(m, false),
                                        new NDList(b.ids, b.mask),
                                        false)
                                .singletonOrThrow()
                                .softmax(-1);
                int labels = (int) probs.getShape().get(1);
                float[] flat = probs.toFloatArray();
                for (int i = 0; i < chunk.size(); i++) {
                    out[from + i] =
                            java.util.Arrays.copyOfRange(flat, i * labels, (i + 1) * labels);
                }
            }
        }
        return out;
    }

    /** At most {@code maxSeqLength}, and no more than virtual tokens leave of the positions. */
    private static int room(SequenceClassifier classifier, int maxSeqLength) {
        return Math.min(maxSeqLength, classifier.maxSequenceLength());
    }

    private record Batch(NDArray ids, NDArray mask, NDArray labels, long tokens) {}

    private Batch encode(NDManager manager, List<LabelledText> batch, int maxSeqLength) {
        // One text at a time on this thread, not batchEncode: the Rust tokenizer's batch runs on
        // its rayon pool, whose threads wake, spin and yield around every step and preempt
        // libtorch's on a few cores (MiniLM freeze, 2 cores: median +7% tokens/s over 11
        // alternating runs, ahead in 9; docs/benchmarks.md). A step's batch is too small to gain
        // from them.
        Encoding[] enc = new Encoding[batch.size()];
        for (int i = 0; i < enc.length; i++) {
            enc[i] = tokenizer.encode(batch.get(i).text());
        }
        int length = 1;
        for (Encoding e : enc) {
            length = Math.max(length, Math.min(maxSeqLength, e.getIds().length));
        }
        long[] ids = new long[batch.size() * length];
        long[] mask = new long[batch.size() * length];
        float[] labels = new float[batch.size()];
        long tokens = 0;
        for (int i = 0; i < enc.length; i++) {
            long[] e = enc[i].getIds();
            long[] m = enc[i].getAttentionMask();
            // Truncation keeps the first max-1 tokens and the final [SEP].
            int n = Math.min(length, e.length);
            for (int j = 0; j < n; j++) {
                ids[i * length + j] = (j == n - 1 && e.length > length) ? e[e.length - 1] : e[j];
                mask[i * length + j] = m[j];
                tokens += m[j];
            }
            labels[i] = batch.get(i).label();
        }
        return new Batch(
                manager.create(ids, new Shape(batch.size(), length)),
                manager.create(mask, new Shape(batch.size(), length)),
                manager.create(labels),
                tokens);
    }
}
