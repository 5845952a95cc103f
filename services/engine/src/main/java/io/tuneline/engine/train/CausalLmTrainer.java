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
 * scored tokens (as Hugging Face's). Not yet: checkpoints and validation during the run.
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
        if (examples.isEmpty()) {
            throw new IllegalArgumentException("no training examples");
        }
        int maxLength = Math.min(s.maxSeqLength(), lm.config().maxPositions());
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

        List<LmExample> order = new ArrayList<>(examples);
        Random random = new Random(s.seed());
        NDManager manager = model.getNDManager();
        long started = System.nanoTime();
        long step = 0;
        long tokens = 0;
        double epochLoss = 0;
        for (int epoch = 0; epoch < s.epochs(); epoch++) {
            Collections.shuffle(order, random);
            epochLoss = 0;
            for (int groupStart = 0; groupStart < batchesPerEpoch; groupStart += accumulate) {
                int groupEnd = Math.min(batchesPerEpoch, groupStart + accumulate);
                int groupSize = groupEnd - groupStart;
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
                double seconds = (System.nanoTime() - started) / 1e9;
                listener.onStep(
                        new TrainingListener.StepReport(
                                step,
                                total,
                                epoch + (double) seen / order.size(),
                                stepLoss,
                                schedule.at(step),
                                tokens / Math.max(seconds, 1e-9),
                                Math.round(seconds / step * (total - step)),
                                OptionalDouble.empty()));
            }
        }
        return new TrainingOutcome(epochLoss, OptionalDouble.empty(), step, false);
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
