package io.tuneline.engine.train;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import io.tuneline.engine.model.CausalLanguageModel;
import io.tuneline.engine.model.LayerSegments;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Trains a {@link CausalLanguageModel} (GPT-2, the Llama family) on causal language modelling
 * ({@link CausalLmLoss}) in the shared {@link TrainingLoop} (AdamW, schedule, accumulation,
 * clipping, seeding, checkpoints).
 *
 * <p>Examples longer than {@code maxSeqLength} (and the model's positions, {@code n_positions} or
 * {@code max_position_embeddings}) keep their first tokens; a batch is padded on the right to its
 * longest example with id 0, attention mask 0 and label -100, so padding neither attends nor is
 * scored. Each batch's loss is the mean over its scored tokens (as Hugging Face's).
 */
public final class CausalLmTrainer {
    /** The id padding takes; it is masked and never scored, so any valid id does. */
    static final long PAD = 0;

    /** Trains; returns the mean loss of the last epoch and the number of steps taken. */
    public TrainingOutcome train(
            Model model,
            CausalLanguageModel lm,
            List<LmExample> examples,
            TrainingSettings s,
            TrainingListener listener) {
        try {
            return train(model, lm, examples, s, Validation.none(), listener, Checkpointing.none());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Trains in the shared {@link TrainingLoop}: validation (the token-weighted mean loss of the
     * split) with early stopping, checkpoints and exact resume as for classifiers.
     */
    public TrainingOutcome train(
            Model model,
            CausalLanguageModel lm,
            List<LmExample> examples,
            TrainingSettings s,
            Validation<LmExample> validation,
            TrainingListener listener,
            Checkpointing checkpointing)
            throws IOException {
        return train(model, lm, List.of(), examples, s, validation, listener, checkpointing);
    }

    /**
     * Trains with data parallelism: {@code replicas} are the same model on further devices (the
     * same method applied), each taking a share of every batch; {@code lm} steps, validates,
     * checkpoints and is the result (see {@link DataParallel}).
     */
    public TrainingOutcome train(
            Model model,
            CausalLanguageModel lm,
            List<CausalLanguageModel> replicas,
            List<LmExample> examples,
            TrainingSettings s,
            Validation<LmExample> validation,
            TrainingListener listener,
            Checkpointing checkpointing)
            throws IOException {
        List<TrainingLoop.Task<LmExample>> others = new ArrayList<>();
        for (CausalLanguageModel replica : replicas) {
            others.add(task(model, replica, s));
        }
        return TrainingLoop.run(
                model,
                task(model, lm, s),
                others,
                examples,
                s,
                validation,
                listener,
                checkpointing);
    }

    private static TrainingLoop.Task<LmExample> task(
            Model model, CausalLanguageModel lm, TrainingSettings s) {
        int maxLength = maxLength(lm, s);
        return new TrainingLoop.Task<>() {
            @Override
            public Block block() {
                return lm;
            }

            @Override
            public Map<String, Parameter> namedParameters() {
                return lm.namedParameters();
            }

            @Override
            public boolean decays(String name) {
                return lm.decays(name);
            }

            @Override
            public TrainingLoop.BatchLoss loss(NDManager manager, List<LmExample> batch) {
                Batch b = Batch.of(manager, batch, maxLength);
                return new TrainingLoop.BatchLoss(
                        trainingLoss(lm, manager, b.ids(), b.mask(), b.labels(), true), b.tokens());
            }

            @Override
            public TrainingLoop.BatchLoss lossAndBackward(
                    NDManager manager,
                    List<LmExample> batch,
                    GradientCollector collector,
                    double lossDivisor) {
                Batch b = Batch.of(manager, batch, maxLength);
                NDArray loss =
                        CausalLmTrainer.lossAndBackward(
                                lm,
                                manager,
                                b.ids(),
                                b.mask(),
                                b.labels(),
                                s.activationCheckpointing(),
                                collector,
                                lossDivisor);
                return new TrainingLoop.BatchLoss(loss, b.tokens());
            }

            @Override
            public double validationLoss(List<LmExample> heldOut) {
                return CausalLmTrainer.validationLoss(model, lm, heldOut, maxLength);
            }
        };
    }

    /**
     * The mean next-token loss training minimises on one batch. With virtual tokens (prompt tuning,
     * P-tuning) it also scores the first real token from the last virtual one, as PEFT's {@code
     * PeftModelForCausalLM} does by putting N x -100 in front of the labels; validation and
     * evaluation score the real tokens only, the tokens the base model is scored on too.
     *
     * @param labels (B, T), {@value CausalLmLoss#IGNORE} where not scored
     */
    public static NDArray trainingLoss(
            CausalLanguageModel lm,
            NDManager manager,
            NDArray ids,
            NDArray mask,
            NDArray labels,
            boolean training) {
        ParameterStore ps = new ParameterStore(manager, false);
        if (lm.virtualTokens().isEmpty()) {
            NDArray logits = lm.forward(ps, new NDList(ids, mask), training).singletonOrThrow();
            return CausalLmLoss.mean(logits, labels);
        }
        PairList<String, Object> lead = new PairList<>();
        lead.add(CausalLanguageModel.WITH_LAST_VIRTUAL_TOKEN, true);
        NDArray logits = lm.forward(ps, new NDList(ids, mask), training, lead).singletonOrThrow();
        NDArray ignored =
                manager.full(
                        new Shape(labels.getShape().get(0), 1),
                        (float) CausalLmLoss.IGNORE,
                        labels.getDataType());
        return CausalLmLoss.mean(logits, ignored.concat(labels, 1));
    }

    /**
     * One training batch's loss and backward pass as the trainer runs them: the gradients of the
     * loss divided by {@code lossDivisor} (the accumulation group's size, over the loss scale under
     * loss scaling) are added to every parameter that requires one. A model that can be cut at its
     * layers ({@link CausalLanguageModel#segments}) runs segment by segment, with activation
     * checkpointing when {@code activationCheckpointing} ({@link ActivationCheckpointing}); others
     * run {@link #trainingLoss} whole. Inside {@code collector}.
     *
     * @return the batch's mean loss
     */
    public static NDArray lossAndBackward(
            CausalLanguageModel lm,
            NDManager manager,
            NDArray ids,
            NDArray mask,
            NDArray labels,
            boolean activationCheckpointing,
            GradientCollector collector,
            double lossDivisor) {
        Optional<LayerSegments> segments =
                lm.virtualTokens().isEmpty()
                        ? lm.segments(new ParameterStore(manager, false), ids, mask, true)
                        : Optional.empty();
        return ActivationCheckpointing.lossAndBackward(
                segments,
                new NDList(ids, mask, labels),
                in -> trainingLoss(lm, in, ids, mask, labels, true),
                logits -> CausalLmLoss.mean(logits, labels),
                lossDivisor,
                activationCheckpointing,
                collector,
                manager);
    }

    /** The longest input the run feeds: the job's max_seq_length within the model's positions. */
    static int maxLength(CausalLanguageModel lm, TrainingSettings s) {
        return Math.min(s.maxSeqLength(), lm.maxPositions());
    }

    /**
     * The mean next-token loss over every scored token of {@code examples} (truncated as training
     * truncates), in padded batches, without gradients.
     */
    public static double validationLoss(
            Model model, CausalLanguageModel lm, List<LmExample> examples, int maxLength) {
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
