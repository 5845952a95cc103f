package io.tuneline.engine.train;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import ai.djl.training.loss.Loss;
import io.tuneline.engine.model.SequenceClassifier;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalDouble;
import java.util.Random;

/**
 * Trains a {@link SequenceClassifier} with cross-entropy and AdamW (decoupled weight decay,
 * Loshchilov & Hutter 2019, arXiv:1711.05101), a linear warm-up then linear decay of the learning
 * rate, and global gradient-norm clipping. Seeded: the same data, settings and seed give the same
 * run. Per-step arrays live in a sub-manager closed after the step, so memory stays flat.
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
     * Trains, measuring the validation loss as {@code validation} says (and stopping early when it
     * stops improving), saving checkpoints as {@code checkpointing} says and resuming from one when
     * given: a resumed run takes the same steps with the same data, dropout masks and optimizer
     * state as an uninterrupted one, so its loss curve continues where the checkpoint left it.
     */
    public TrainingOutcome train(
            Model model,
            SequenceClassifier classifier,
            List<LabelledText> examples,
            TrainingSettings s,
            Validation validation,
            TrainingListener listener,
            Checkpointing checkpointing)
            throws IOException {
        int batchesPerEpoch = (examples.size() + s.batchSize() - 1) / s.batchSize();
        int accumulate = s.accumulationSteps();
        int stepsPerEpoch = (batchesPerEpoch + accumulate - 1) / accumulate;
        int total = stepsPerEpoch * s.epochs();
        int warmup = Math.round(total * s.warmupRatio());
        LearningRateSchedule schedule =
                LearningRateSchedule.of(s.schedule(), s.learningRate(), warmup, total);
        // The optimizer is driven directly rather than through DJL's Trainer: Trainer.step()
        // rejects a first step whose gradients sum to exactly zero, a heuristic that misfires on
        // softmax heads (their gradient rows cancel) and LoRA's zero-initialised B; and our own
        // AdamW's moments can be checkpointed.
        AdamW adamW = new AdamW(s.weightDecay(), model.getNDManager());
        Loss loss = Loss.softmaxCrossEntropyLoss();
        Map<String, Parameter> trained = new LinkedHashMap<>();
        classifier
                .namedParameters()
                .forEach(
                        (name, p) -> {
                            if (p.requiresGradient()) {
                                trained.put(name, p);
                            }
                        });
        for (Parameter p : trained.values()) {
            p.getArray().setRequiresGradient(true);
        }

        TrainingState resumed =
                checkpointing
                        .resumeFrom()
                        .filter(TrainingCheckpoint::exists)
                        .map(dir -> TrainingCheckpoint.load(dir, trained, adamW))
                        .orElse(null);
        if (resumed != null && (resumed.seed() != s.seed() || resumed.totalSteps() != total)) {
            throw new IllegalArgumentException(
                    "the checkpoint is of another run (seed "
                            + resumed.seed()
                            + ", "
                            + resumed.totalSteps()
                            + " steps; this run: seed "
                            + s.seed()
                            + ", "
                            + total
                            + " steps)");
        }
        long step = resumed == null ? 0 : resumed.step();
        int startEpoch = resumed == null ? 0 : resumed.epoch();
        int startBatch = resumed == null ? 0 : resumed.nextBatch();
        long tokens = resumed == null ? 0 : resumed.tokens();
        double epochLoss = resumed == null ? 0 : resumed.epochLoss();
        double best = resumed == null ? Double.NaN : resumed.bestValidationLoss();
        int withoutImprovement = resumed == null ? 0 : resumed.evaluationsWithoutImprovement();
        long evalEvery = validation.everySteps() > 0 ? validation.everySteps() : stepsPerEpoch;
        OptionalDouble lastValidation = OptionalDouble.empty();
        boolean stoppedEarly = false;

        List<LabelledText> order = new ArrayList<>(examples);
        Random random = new Random(s.seed());
        long started = System.nanoTime();
        long firstStep = step;
        long tokensAtStart = tokens;
        NDManager manager = model.getNDManager();
        training:
        for (int epoch = 0; epoch < s.epochs(); epoch++) {
            // Replaying the earlier epochs' shuffles puts the data order where the checkpoint was.
            Collections.shuffle(order, random);
            if (epoch < startEpoch) {
                continue;
            }
            if (epoch > startEpoch) {
                epochLoss = 0;
            }
            int firstBatch = epoch == startEpoch ? startBatch : 0;
            // One optimizer step per group of `accumulate` batches; checkpoints fall between
            // groups, so a resumed run starts at the beginning of one.
            for (int groupStart = firstBatch;
                    groupStart < batchesPerEpoch;
                    groupStart += accumulate) {
                int groupEnd = Math.min(batchesPerEpoch, groupStart + accumulate);
                int groupSize = groupEnd - groupStart;
                int batchIndex = groupEnd - 1;
                int seen = Math.min(order.size(), groupEnd * s.batchSize());
                // Dropout masks come from the engine's generator: seeding it from the step makes
                // a step's masks the same whether or not the run was resumed before it.
                Engine.getInstance().setRandomSeed((int) (s.seed() * 1_000_003L + step));
                double stepLoss = 0;
                for (int micro = groupStart; micro < groupEnd; micro++) {
                    int from = micro * s.batchSize();
                    List<LabelledText> microBatch =
                            order.subList(from, Math.min(order.size(), from + s.batchSize()));
                    try (NDManager stepManager = manager.newSubManager()) {
                        Batch b = encode(stepManager, microBatch, s.maxSeqLength());
                        tokens += b.tokens;
                        try (GradientCollector collector =
                                Engine.getInstance().newGradientCollector()) {
                            NDArray logits =
                                    classifier
                                            .forward(
                                                    new ParameterStore(stepManager, false),
                                                    new NDList(b.ids, b.mask),
                                                    true)
                                            .singletonOrThrow();
                            NDArray l =
                                    objective == ClassificationLoss.PLAIN
                                            ? loss.evaluate(
                                                    new NDList(b.labels), new NDList(logits))
                                            : objective.evaluate(logits, b.labels);
                            // Gradients add up across the group's backward passes: scale each
                            // batch's mean loss so the step follows the group's mean.
                            collector.backward(l.div(groupSize));
                            stepLoss += l.getFloat() / groupSize;
                        }
                    }
                }
                clipGradients(classifier, s.maxGradNorm());
                adamW.beginStep();
                float lr = (float) schedule.at(adamW.step());
                for (Map.Entry<String, Parameter> e : trained.entrySet()) {
                    NDArray weight = e.getValue().getArray();
                    try (NDArray gradient = weight.getGradient()) {
                        adamW.update(e.getKey(), weight, gradient, lr);
                        // Gradients accumulate in place; the next step starts from zero.
                        gradient.muli(0);
                    }
                }
                step++;
                epochLoss += stepLoss / stepsPerEpoch;
                OptionalDouble validationLoss = OptionalDouble.empty();
                if (validation.enabled() && (step % evalEvery == 0 || step == total)) {
                    double v =
                            validationLoss(
                                    model, classifier, validation.examples(), s.maxSeqLength());
                    validationLoss = OptionalDouble.of(v);
                    lastValidation = validationLoss;
                    if (Double.isNaN(best) || v < best - Validation.MIN_IMPROVEMENT) {
                        best = v;
                        withoutImprovement = 0;
                    } else {
                        withoutImprovement++;
                    }
                }
                double seconds = (System.nanoTime() - started) / 1e9;
                listener.onStep(
                        new TrainingListener.StepReport(
                                step,
                                total,
                                epoch + (double) seen / order.size(),
                                stepLoss,
                                schedule.at(step),
                                (tokens - tokensAtStart) / Math.max(seconds, 1e-9),
                                Math.round(seconds / (step - firstStep) * (total - step)),
                                validationLoss));
                if (validation.patience() > 0 && withoutImprovement >= validation.patience()) {
                    stoppedEarly = step < total;
                    break training;
                }
                boolean stop = checkpointing.stopRequested().getAsBoolean() && step < total;
                boolean due =
                        checkpointing.everySteps() > 0
                                && step % checkpointing.everySteps() == 0
                                && step < total;
                if (stop || due) {
                    boolean endOfEpoch = batchIndex + 1 == batchesPerEpoch;
                    TrainingState state =
                            new TrainingState(
                                    step,
                                    endOfEpoch ? epoch + 1 : epoch,
                                    endOfEpoch ? 0 : batchIndex + 1,
                                    tokens,
                                    endOfEpoch ? 0 : epochLoss,
                                    s.seed(),
                                    total,
                                    best,
                                    withoutImprovement);
                    Path dir = checkpointing.directory().resolve(String.format("step-%08d", step));
                    TrainingCheckpoint.save(dir, trained, adamW, state);
                    checkpointing.onSaved().saved(dir, state);
                }
                if (stop) {
                    throw new TrainingStoppedException(step);
                }
            }
        }
        return new TrainingOutcome(epochLoss, lastValidation, step, stoppedEarly);
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
                Batch b = encode(m, chunk, maxSeqLength);
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
                                maxSeqLength);
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

    /** Global L2 norm clipping over every trained parameter (as torch.nn.utils.clip_grad_norm_). */
    static void clipGradients(ai.djl.nn.Block classifier, float maxNorm) {
        if (maxNorm <= 0) {
            return;
        }
        List<NDArray> grads = new ArrayList<>();
        for (var p : classifier.getParameters()) {
            Parameter param = p.getValue();
            if (param.requiresGradient() && param.getArray().hasGradient()) {
                grads.add(param.getArray().getGradient());
            }
        }
        try {
            double sumSquares = 0;
            for (NDArray g : grads) {
                try (NDArray squared = g.square();
                        NDArray sum = squared.sum()) {
                    sumSquares += sum.getFloat();
                }
            }
            double norm = Math.sqrt(sumSquares);
            if (norm > maxNorm) {
                float scale = (float) (maxNorm / (norm + 1e-6));
                for (NDArray g : grads) {
                    g.muli(scale);
                }
            }
        } finally {
            // The gradient handles belong to the model's manager; close them so steps do not
            // accumulate native memory.
            grads.forEach(NDArray::close);
        }
    }

    private record Batch(NDArray ids, NDArray mask, NDArray labels, long tokens) {}

    private Batch encode(NDManager manager, List<LabelledText> batch, int maxSeqLength) {
        Encoding[] enc = tokenizer.batchEncode(batch.stream().map(LabelledText::text).toList());
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
