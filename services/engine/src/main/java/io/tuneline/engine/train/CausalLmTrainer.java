package io.tuneline.engine.train;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import io.tuneline.engine.model.gpt2.Gpt2LmModel;
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
 * Trains a {@link Gpt2LmModel} on causal language modelling ({@link CausalLmLoss}) with the
 * engine's AdamW, the learning-rate schedule, gradient accumulation and global gradient-norm
 * clipping, as {@link ClassifierTrainer} does for classifiers: seeded shuffling, the engine's
 * generator re-seeded from (seed, step) before every step, per-step arrays in a sub-manager.
 *
 * <p>Examples longer than {@code maxSeqLength} (and the model's {@code n_positions}) keep their
 * first tokens; a batch is padded on the right to its longest example with id 0, attention mask 0
 * and label -100, so padding neither attends nor is scored. Each batch's loss is the mean over its
 * scored tokens (as Hugging Face's). Validation, early stopping and checkpoints work as in {@link
 * ClassifierTrainer}.
 */
public final class CausalLmTrainer {
    /** The id padding takes; it is masked and never scored, so any valid id does. */
    static final long PAD = 0;

    /** Trains; returns the mean loss of the last epoch and the number of steps taken. */
    public TrainingOutcome train(
            Model model,
            Gpt2LmModel lm,
            List<LmExample> examples,
            TrainingSettings s,
            TrainingListener listener) {
        try {
            return train(
                    model, lm, examples, s, LmValidation.none(), listener, Checkpointing.none());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Trains, measuring the validation loss as {@code validation} says (and stopping early when it
     * stops improving), saving checkpoints as {@code checkpointing} says and resuming from one when
     * given, as {@link ClassifierTrainer} does: a resumed run takes the same steps with the same
     * data and optimizer state as an uninterrupted one.
     */
    public TrainingOutcome train(
            Model model,
            Gpt2LmModel lm,
            List<LmExample> examples,
            TrainingSettings s,
            LmValidation validation,
            TrainingListener listener,
            Checkpointing checkpointing)
            throws IOException {
        if (examples.isEmpty()) {
            throw new IllegalArgumentException("no training examples");
        }
        int maxLength = maxLength(lm, s);
        int batchesPerEpoch = (examples.size() + s.batchSize() - 1) / s.batchSize();
        int accumulate = s.accumulationSteps();
        int stepsPerEpoch = (batchesPerEpoch + accumulate - 1) / accumulate;
        int total = stepsPerEpoch * s.epochs();
        int warmup = Math.round(total * s.warmupRatio());
        LearningRateSchedule schedule =
                LearningRateSchedule.of(s.schedule(), s.learningRate(), warmup, total);
        AdamW adamW = new AdamW(s.weightDecay(), model.getNDManager());
        Map<String, Parameter> trained = new LinkedHashMap<>();
        lm.namedParameters()
                .forEach(
                        (name, p) -> {
                            if (p.requiresGradient()) {
                                trained.put(name, p);
                            }
                        });
        if (trained.isEmpty()) {
            throw new IllegalArgumentException("every parameter is frozen; nothing would train");
        }
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

        List<LmExample> order = new ArrayList<>(examples);
        Random random = new Random(s.seed());
        NDManager manager = model.getNDManager();
        long started = System.nanoTime();
        long firstStep = step;
        long tokensAtStart = tokens;
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
            for (int groupStart = firstBatch;
                    groupStart < batchesPerEpoch;
                    groupStart += accumulate) {
                int groupEnd = Math.min(batchesPerEpoch, groupStart + accumulate);
                int groupSize = groupEnd - groupStart;
                int batchIndex = groupEnd - 1;
                int seen = Math.min(order.size(), groupEnd * s.batchSize());
                Engine.getInstance().setRandomSeed((int) (s.seed() * 1_000_003L + step));
                double stepLoss = 0;
                for (int micro = groupStart; micro < groupEnd; micro++) {
                    int from = micro * s.batchSize();
                    List<LmExample> batch =
                            order.subList(from, Math.min(order.size(), from + s.batchSize()));
                    try (NDManager stepManager = manager.newSubManager()) {
                        Batch b = Batch.of(stepManager, batch, maxLength);
                        tokens += b.tokens();
                        try (GradientCollector collector =
                                Engine.getInstance().newGradientCollector()) {
                            NDArray logits =
                                    lm.forward(
                                                    new ParameterStore(stepManager, false),
                                                    new NDList(b.ids(), b.mask()),
                                                    true)
                                            .singletonOrThrow();
                            NDArray l = CausalLmLoss.mean(logits, b.labels());
                            collector.backward(l.div(groupSize));
                            stepLoss += l.getFloat() / groupSize;
                        }
                    }
                }
                ClassifierTrainer.clipGradients(lm, s.maxGradNorm());
                adamW.beginStep();
                float lr = (float) schedule.at(adamW.step());
                for (Map.Entry<String, Parameter> e : trained.entrySet()) {
                    NDArray weight = e.getValue().getArray();
                    try (NDArray gradient = weight.getGradient()) {
                        adamW.update(e.getKey(), weight, gradient, lr);
                        gradient.muli(0);
                    }
                }
                step++;
                epochLoss += stepLoss / stepsPerEpoch;
                OptionalDouble validationLoss = OptionalDouble.empty();
                if (validation.enabled() && (step % evalEvery == 0 || step == total)) {
                    double v = validationLoss(model, lm, validation.examples(), maxLength);
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

    /** The longest input the run feeds: the job's max_seq_length within the model's positions. */
    static int maxLength(Gpt2LmModel lm, TrainingSettings s) {
        return Math.min(s.maxSeqLength(), lm.config().maxPositions());
    }

    /**
     * The mean next-token loss over every scored token of {@code examples} (truncated as training
     * truncates), in padded batches, without gradients.
     */
    public static double validationLoss(
            Model model, Gpt2LmModel lm, List<LmExample> examples, int maxLength) {
        double sum = 0;
        double count = 0;
        for (int from = 0; from < examples.size(); from += 16) {
            List<LmExample> chunk = examples.subList(from, Math.min(examples.size(), from + 16));
            try (NDManager m = model.getNDManager().newSubManager()) {
                Batch b = Batch.of(m, chunk, maxLength);
                NDArray logits =
                        lm.forward(
                                        new ParameterStore(m, false),
                                        new NDList(b.ids(), b.mask()),
                                        false)
                                .singletonOrThrow();
                NDArray[] sc = CausalLmLoss.sumAndCount(logits, b.labels());
                sum += sc[0].getFloat();
                count += sc[1].getFloat();
            }
        }
        return count == 0 ? Double.NaN : sum / count;
    }

    /** Ids, mask and labels of a right-padded batch, and its number of real tokens. */
    record Batch(NDArray ids, NDArray mask, NDArray labels, long tokens) {
        static Batch of(NDManager manager, List<LmExample> batch, int maxLength) {
            int length = 2;
            for (LmExample e : batch) {
                length = Math.max(length, Math.min(maxLength, e.inputIds().length));
            }
            long[] ids = new long[batch.size() * length];
            long[] mask = new long[ids.length];
            long[] labels = new long[ids.length];
            java.util.Arrays.fill(ids, PAD);
            java.util.Arrays.fill(labels, CausalLmLoss.IGNORE);
            long tokens = 0;
            for (int i = 0; i < batch.size(); i++) {
                LmExample e = batch.get(i);
                int n = Math.min(length, e.inputIds().length);
                System.arraycopy(e.inputIds(), 0, ids, i * length, n);
                System.arraycopy(e.labels(), 0, labels, i * length, n);
                java.util.Arrays.fill(mask, i * length, i * length + n, 1);
                tokens += n;
            }
            Shape shape = new Shape(batch.size(), length);
            return new Batch(
                    manager.create(ids, shape),
                    manager.create(mask, shape),
                    manager.create(labels, shape),
                    tokens);
        }
    }
}
