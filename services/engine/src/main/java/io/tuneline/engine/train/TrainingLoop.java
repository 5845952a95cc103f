package io.tuneline.engine.train;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.GradientCollector;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.nn.Scalars;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.Random;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The optimisation loop every task shares: AdamW (decoupled weight decay, Loshchilov & Hutter 2019,
 * arXiv:1711.05101), the learning-rate schedule, gradient accumulation, global gradient-norm
 * clipping, validation with early stopping, checkpoints and exact resume, the step report, and
 * skipping steps whose loss or gradients are not numbers (a run failing {@link
 * #MAX_NON_FINITE_STEPS} in a row has diverged), and fp16's dynamic loss scaling ({@link
 * LossScaler}, when the settings carry one). A task ({@link Task}) says how a batch becomes a loss
 * and how the validation split is scored; {@link ClassifierTrainer} and {@link CausalLmTrainer} are
 * the two today, and further methods and tasks plug in the same way.
 *
 * <p>Seeded: the same data, settings and seed give the same run. Per-step arrays live in a
 * sub-manager closed after the step, so memory stays flat.
 */
final class TrainingLoop {
    /** Steps in a row whose loss or gradients are not numbers before a run counts as diverged. */
    static final int MAX_NON_FINITE_STEPS = 3;

    private static final Logger LOG = LoggerFactory.getLogger(TrainingLoop.class);

    private TrainingLoop() {}

    /** What one task brings to the loop. */
    interface Task<E> {
        /** The model, whose trainable parameters' gradients are clipped together. */
        Block block();

        /** Every parameter under its name; those that require gradients are trained. */
        Map<String, Parameter> namedParameters();

        /**
         * Whether AdamW decays parameter {@code name}; by default Hugging Face Trainer's rule
         * ({@link TunableModel#decaysByType}).
         */
        default boolean decays(String name) {
            return TunableModel.decaysByType(namedParameters().get(name));
        }

        /**
         * A training-mode forward pass over {@code batch}, its arrays in {@code manager}: the
         * batch's mean loss (a scalar to differentiate) and the number of real tokens it held.
         */
        BatchLoss loss(NDManager manager, List<E> batch);

        /**
         * {@link #loss} and its backward pass: the gradients of the loss divided by {@code
         * lossDivisor} (the size of the accumulation group the batch is one of, over the loss scale
         * under fp16's loss scaling) are added to the parameters'. A task that cuts its model into
         * segments (activation checkpointing) runs both itself.
         */
        default BatchLoss lossAndBackward(
                NDManager manager, List<E> batch, GradientCollector collector, double lossDivisor) {
            BatchLoss l = loss(manager, batch);
            collector.backward(Scalars.div(l.loss(), lossDivisor));
            return l;
        }

        /** The mean loss on {@code examples}, without dropout or gradients. */
        double validationLoss(List<E> examples);
    }

    /** A batch's mean loss and its non-padding tokens. */
    record BatchLoss(NDArray loss, long tokens) {}

    /**
     * Trains {@code task} on {@code examples}, measuring the validation loss as {@code validation}
     * says (and stopping early when it stops improving), saving checkpoints as {@code
     * checkpointing} says and resuming from one when given: a resumed run takes the same steps with
     * the same data, dropout masks and optimizer state as an uninterrupted one, so its loss curve
     * continues where the checkpoint left it.
     */
    /**
     * One full collection before the first step. Loading a model leaves its file's bytes and copies
     * on the heap (MiniLM: about 120 MiB) and G1 has grown the heap to hold them; nothing collects
     * them before the run's own small allocations fill the young generation, and the heap stays
     * grown. A full collection frees them and lets G1 give the heap back to the system, so the
     * run's resident memory is the model and its training, not its loading: MiniLM with LoRA peaks
     * at 498 MiB instead of 638 (bench/training-throughput.sh, 2026-12-04). Once per run, a
     * fraction of a second.
     */
    private static void releaseLoadingGarbage() {
        System.gc();
    }

    static <E> TrainingOutcome run(
            Model model,
            Task<E> task,
            List<E> examples,
            TrainingSettings s,
            Validation<E> validation,
            TrainingListener listener,
            Checkpointing checkpointing)
            throws IOException {
        return run(model, task, List.of(), examples, s, validation, listener, checkpointing);
    }

    /**
     * {@link #run(Model, Task, List, TrainingSettings, Validation, TrainingListener,
     * Checkpointing)} with data parallelism ({@link DataParallel}): {@code others} are the same
     * task on further devices, each taking a share of every batch; {@code task} is the one that
     * steps, reports, checkpoints and resumes, and its weights are copied to the others before the
     * first step (so they start equal however they were initialised) and after each.
     */
    static <E> TrainingOutcome run(
            Model model,
            Task<E> task,
            List<Task<E>> others,
            List<E> examples,
            TrainingSettings s,
            Validation<E> validation,
            TrainingListener listener,
            Checkpointing checkpointing)
            throws IOException {
        // The optimizer driven directly rather than through DJL's Trainer: Trainer.step() rejects
        // a first step whose gradients sum to exactly zero, a heuristic that misfires on softmax
        // heads (their gradient rows cancel) and LoRA's zero-initialised B; and our own AdamW's
        // moments can be checkpointed. Its moments (two copies of the trained weights) are freed
        // when the run ends, not with the model: the export, evaluation or a next run that follow
        // in the same process do not carry them.
        AdamW adamW = new AdamW(s.weightDecay(), model.getNDManager());
        DataParallel parallel = others.isEmpty() ? null : DataParallel.of(task, others);
        try {
            return run(
                    model,
                    task,
                    others,
                    examples,
                    s,
                    validation,
                    listener,
                    checkpointing,
                    adamW,
                    parallel);
        } finally {
            adamW.close();
            if (parallel != null) {
                parallel.close();
            }
        }
    }

    private static <E> TrainingOutcome run(
            Model model,
            Task<E> task,
            List<Task<E>> others,
            List<E> examples,
            TrainingSettings s,
            Validation<E> validation,
            TrainingListener listener,
            Checkpointing checkpointing,
            AdamW adamW,
            DataParallel parallel)
            throws IOException {
        if (examples.isEmpty()) {
            throw new IllegalArgumentException("no training examples");
        }
        releaseLoadingGarbage();
        int batchesPerEpoch = (examples.size() + s.batchSize() - 1) / s.batchSize();
        int accumulate = s.accumulationSteps();
        int stepsPerEpoch = (batchesPerEpoch + accumulate - 1) / accumulate;
        int planned = stepsPerEpoch * s.epochs();
        int total = s.maxSteps() > 0 ? (int) Math.min(planned, s.maxSteps()) : planned;
        int warmup = Math.round(total * s.warmupRatio());
        LearningRateSchedule schedule =
                LearningRateSchedule.of(s.schedule(), s.learningRate(), warmup, total);
        Map<String, Parameter> trained = new LinkedHashMap<>();
        task.namedParameters()
                .forEach(
                        (name, p) -> {
                            if (p.requiresGradient()) {
                                trained.put(name, p);
                            }
                        });
        if (trained.isEmpty()) {
            throw new IllegalArgumentException("every parameter is frozen; nothing would train");
        }
        Map<String, Boolean> decays = new LinkedHashMap<>();
        trained.keySet().forEach(name -> decays.put(name, task.decays(name)));
        Map<String, NDArray> weights = new LinkedHashMap<>();
        for (Map.Entry<String, Parameter> e : trained.entrySet()) {
            e.getValue().getArray().setRequiresGradient(true);
            weights.put(e.getKey(), e.getValue().getArray());
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
        if (parallel != null) {
            parallel.scatterWeights();
        }
        long step = resumed == null ? 0 : resumed.step();
        int startEpoch = resumed == null ? 0 : resumed.epoch();
        int startBatch = resumed == null ? 0 : resumed.nextBatch();
        long tokens = resumed == null ? 0 : resumed.tokens();
        double epochLoss = resumed == null ? 0 : resumed.epochLoss();
        double best = resumed == null ? Double.NaN : resumed.bestValidationLoss();
        int withoutImprovement = resumed == null ? 0 : resumed.evaluationsWithoutImprovement();
        long skipped = resumed == null ? 0 : resumed.skippedSteps();
        Optional<LossScaler> scaler =
                s.lossScaling()
                        .map(
                                c ->
                                        resumed != null && resumed.lossScale() > 0
                                                ? new LossScaler(
                                                        c,
                                                        resumed.lossScale(),
                                                        resumed.lossScaleGrowthTracker())
                                                : new LossScaler(c));
        long evalEvery = validation.everySteps() > 0 ? validation.everySteps() : stepsPerEpoch;
        OptionalDouble lastValidation = OptionalDouble.empty();
        boolean stoppedEarly = false;

        List<E> order = new ArrayList<>(examples);
        Random random = new Random(s.seed());
        RunClock clock = new RunClock();
        double stepsPerEvaluation =
                validation.examples().size() / (double) ((long) s.batchSize() * accumulate);
        // Where the current step's time started: after the last evaluation, less any checkpoint
        // since (the clock times those apart), so the listener's time counts with the steps.
        long mark = System.nanoTime();
        long started = mark;
        long tokensAtStart = tokens;
        NDManager manager = model.getNDManager();
        int nonFinite = 0;
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
                float lossScale = scaler.map(LossScaler::scale).orElse(1f);
                boolean[] ran = new boolean[parallel == null ? 1 : parallel.devices()];
                for (int micro = groupStart; micro < groupEnd; micro++) {
                    int from = micro * s.batchSize();
                    List<E> batch =
                            order.subList(from, Math.min(order.size(), from + s.batchSize()));
                    int devices = parallel == null ? 1 : parallel.devices();
                    List<List<E>> shares =
                            devices == 1 ? List.of(batch) : DataParallel.shares(batch, devices);
                    for (int d = 0; d < devices; d++) {
                        List<E> share = shares.get(d);
                        if (share.isEmpty()) {
                            continue;
                        }
                        ran[d] = true;
                        double part = share.size() / (double) batch.size();
                        try (NDManager stepManager =
                                        d == 0 ? manager.newSubManager() : parallel.stepManager(d);
                                GradientCollector collector =
                                        Engine.getInstance().newGradientCollector()) {
                            // Gradients add up across the group's backward passes (and the
                            // devices' shares): scale each share's mean loss so the step follows
                            // the group's mean (and multiply it by the loss scale, which the
                            // optimizer divides out again).
                            BatchLoss l =
                                    (d == 0 ? task : others.get(d - 1))
                                            .lossAndBackward(
                                                    stepManager,
                                                    share,
                                                    collector,
                                                    groupSize / (part * lossScale));
                            tokens += l.tokens();
                            stepLoss += l.loss().getFloat() * part / groupSize;
                        }
                    }
                }
                if (parallel != null) {
                    parallel.gatherGradients(ran);
                }
                // The true gradients' norm: under loss scaling the scaled gradients' norm (always
                // taken then, as it is the overflow check too) divided by the scale.
                double norm =
                        scaler.isPresent()
                                ? globalNorm(trained.values()) / lossScale
                                : gradientNorm(trained.values(), s.maxGradNorm());
                if (!Double.isFinite(stepLoss) || !Double.isFinite(norm)) {
                    // As PyTorch's GradScaler does: a step whose loss or gradients are not numbers
                    // is not applied, so the weights keep the last good step's values; a run
                    // whose steps keep failing has diverged. Gradients that overflowed float16
                    // at a scale above 1 are no sign of that: the scaler backs off and retries.
                    boolean overflowed =
                            scaler.isPresent() && Double.isFinite(stepLoss) && lossScale > 1;
                    skipped++;
                    if (!overflowed && ++nonFinite >= MAX_NON_FINITE_STEPS) {
                        throw new TrainingDivergedException(
                                step + 1, stepLoss, schedule.at(adamW.step() + 1), nonFinite);
                    }
                    scaler.ifPresent(sc -> sc.update(true));
                    if (scaler.isPresent()) {
                        LOG.warn(
                                "step {}: loss {} / gradient norm {} at loss scale {} is not a"
                                        + " number; update skipped, loss scale now {}",
                                step + 1,
                                stepLoss,
                                norm,
                                lossScale,
                                scaler.get().scale());
                    } else {
                        LOG.warn(
                                "step {}: loss {} / gradient norm {} is not a number; update"
                                        + " skipped",
                                step + 1,
                                stepLoss,
                                norm);
                    }
                    for (Parameter p : trained.values()) {
                        try (NDArray gradient = p.getArray().getGradient()) {
                            // NaN * 0 is NaN: the values are overwritten, not scaled. A native
                            // fill, not set(Buffer): DJL's PyTorch engine makes a tensor alias
                            // the direct buffer it is set from, owned by this short-lived
                            // wrapper, and the parameter's gradient would then live in memory
                            // the garbage collector frees.
                            gradient.set(new NDIndex("..."), 0f);
                        }
                    }
                    continue;
                }
                nonFinite = 0;
                adamW.beginStep();
                float lr = (float) schedule.at(adamW.step());
                // Unscaling folds into the factor AdamW already applies for clipping.
                float gradientScale = (float) (clipScale(norm, s.maxGradNorm()) / lossScale);
                // Also zeroes the gradients, so the next step accumulates from zero.
                adamW.update(weights, decays::get, lr, gradientScale);
                if (parallel != null) {
                    parallel.scatterWeights();
                }
                scaler.ifPresent(sc -> sc.update(false));
                step++;
                clock.stepTook((System.nanoTime() - mark) / 1e9);
                epochLoss += stepLoss / stepsPerEpoch;
                OptionalDouble validationLoss = OptionalDouble.empty();
                if (validation.enabled() && (step % evalEvery == 0 || step == total)) {
                    long evaluating = System.nanoTime();
                    double v = task.validationLoss(validation.examples());
                    clock.evaluationTook((System.nanoTime() - evaluating) / 1e9);
                    validationLoss = OptionalDouble.of(v);
                    lastValidation = validationLoss;
                    if (Double.isNaN(best) || v < best - Validation.MIN_IMPROVEMENT) {
                        best = v;
                        withoutImprovement = 0;
                    } else {
                        withoutImprovement++;
                    }
                }
                mark = System.nanoTime();
                double seconds = (mark - started) / 1e9;
                double left =
                        clock.secondsLeft(
                                total - step,
                                validation.enabled()
                                        ? RunClock.evaluationsLeft(step, total, evalEvery)
                                        : 0,
                                RunClock.checkpointsLeft(step, total, checkpointing.everySteps()),
                                stepsPerEvaluation);
                listener.onStep(
                        new TrainingListener.StepReport(
                                step,
                                total,
                                epoch + (double) seen / order.size(),
                                stepLoss,
                                schedule.at(step),
                                (tokens - tokensAtStart) / Math.max(seconds, 1e-9),
                                Math.round(left),
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
                                    withoutImprovement,
                                    skipped,
                                    scaler.map(LossScaler::scale).orElse(0f),
                                    scaler.map(LossScaler::growthTracker).orElse(0));
                    long saving = System.nanoTime();
                    Path dir = checkpointing.directory().resolve(String.format("step-%08d", step));
                    TrainingCheckpoint.save(dir, trained, adamW, state);
                    checkpointing.onSaved().saved(dir, state);
                    long saved = System.nanoTime() - saving;
                    clock.checkpointTook(saved / 1e9);
                    mark += saved;
                }
                if (stop) {
                    throw new TrainingStoppedException(step);
                }
                if (step == total && total < planned) {
                    // max_steps ended the run inside an epoch: its mean loss is over the steps
                    // it took.
                    long inEpoch = step - (long) epoch * stepsPerEpoch;
                    epochLoss = epochLoss * stepsPerEpoch / Math.max(1, inEpoch);
                    break training;
                }
            }
        }
        return new TrainingOutcome(epochLoss, lastValidation, step, stoppedEarly, skipped);
    }

    /**
     * The global L2 norm of every trained parameter's gradient (as torch.nn.utils.clip_grad_norm_
     * takes it: the norm of the per-tensor norms), or -1 when clipping is off. The parameters are
     * the task's trained ones by name, so parameters a method adds outside DJL's block tree (soft
     * prompts, prefixes) are clipped too. One native norm per tensor, read back once per step.
     */
    static double gradientNorm(Collection<Parameter> trained, float maxNorm) {
        return maxNorm <= 0 ? -1 : globalNorm(trained);
    }

    /** The global L2 norm of every trained parameter's gradient, clipping or not. */
    static double globalNorm(Collection<Parameter> trained) {
        NDManager scratch = null;
        try {
            NDList norms = new NDList();
            for (Parameter param : trained) {
                if (param.requiresGradient() && param.getArray().hasGradient()) {
                    // The gradient handles belong to the model's manager; closing them keeps
                    // steps from accumulating native memory.
                    try (NDArray g = param.getArray().getGradient()) {
                        if (scratch == null) {
                            scratch = g.getManager().newSubManager();
                        }
                        NDArray norm = g.norm();
                        norm.attach(scratch);
                        norms.add(norm);
                    }
                }
            }
            return norms.isEmpty() ? 0 : NDArrays.stack(norms).norm().getFloat();
        } finally {
            if (scratch != null) {
                scratch.close();
            }
        }
    }

    /**
     * What clipping to {@code maxNorm} multiplies the gradients by ({@code clip_grad_norm_}'s
     * {@code max_norm / (norm + 1e-6)}, only when that is below 1); AdamW applies it to its copy of
     * each gradient, so clipping costs no pass of its own over the gradients.
     */
    static float clipScale(double norm, float maxNorm) {
        return norm > maxNorm && maxNorm > 0 ? (float) (maxNorm / (norm + 1e-6)) : 1f;
    }
}
