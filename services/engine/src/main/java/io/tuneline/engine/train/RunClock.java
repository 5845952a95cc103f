package io.tuneline.engine.train;

/**
 * The time a run has left, as its progress events report it ({@code eta_seconds}; the elapsed time
 * plus this is the run's refined total, docs/planning.md). The loop tells it how long each step's
 * training, each evaluation and each checkpoint took.
 *
 * <p>For the first {@value #REFINE_AFTER} steps the time left is the mean time per step so far,
 * everything included, times the steps left. From then on it is reconciled term by term, because
 * the mean mixes in costs that do not recur at the same rate: the first step (libtorch's first
 * allocations and kernel choices, often several steps' worth) is left out of the step time; the
 * evaluations and checkpoints still due are added at their own measured mean durations rather than
 * smeared over every step. An evaluation not yet measured is taken as a forward pass over the
 * validation examples: a third of a training step per example, as a forward pass is a third of a
 * forward-and-backward's matmul FLOPs (Kaplan et al. 2020, arXiv:2001.08361). A checkpoint not yet
 * measured counts nothing.
 */
final class RunClock {
    /** Steps after which the time left is reconciled from the measured terms. */
    static final int REFINE_AFTER = 10;

    private long steps;
    private double firstStepSeconds;
    private double laterStepSeconds;
    private int evaluations;
    private double evaluationSeconds;
    private int checkpoints;
    private double checkpointSeconds;

    /**
     * One step's training (its batches' forward and backward passes and the optimizer) took this.
     */
    void stepTook(double seconds) {
        if (steps == 0) {
            firstStepSeconds = seconds;
        } else {
            laterStepSeconds += seconds;
        }
        steps++;
    }

    void evaluationTook(double seconds) {
        evaluations++;
        evaluationSeconds += seconds;
    }

    void checkpointTook(double seconds) {
        checkpoints++;
        checkpointSeconds += seconds;
    }

    /**
     * Seconds left for {@code stepsLeft} more steps, with {@code evaluationsLeft} evaluations and
     * {@code checkpointsLeft} checkpoints still due; an evaluation not yet measured costs {@code
     * evaluationSteps} training steps' worth of examples at a third of a step each.
     */
    double secondsLeft(
            long stepsLeft, long evaluationsLeft, long checkpointsLeft, double evaluationSteps) {
        if (steps == 0) {
            return 0;
        }
        double everything =
                firstStepSeconds + laterStepSeconds + evaluationSeconds + checkpointSeconds;
        if (steps < REFINE_AFTER) {
            return everything / steps * stepsLeft;
        }
        double step = laterStepSeconds / (steps - 1);
        double evaluation =
                evaluations > 0 ? evaluationSeconds / evaluations : evaluationSteps * step / 3;
        double checkpoint = checkpoints > 0 ? checkpointSeconds / checkpoints : 0;
        return stepsLeft * step + evaluationsLeft * evaluation + checkpointsLeft * checkpoint;
    }

    /**
     * Evaluations due after {@code step} of {@code total} when the loop evaluates every {@code
     * every} steps and after the last.
     */
    static long evaluationsLeft(long step, long total, long every) {
        if (step >= total) {
            return 0;
        }
        return total / every - step / every + (total % every != 0 ? 1 : 0);
    }

    /**
     * Checkpoints due after {@code step} of {@code total} when the loop stores one every {@code
     * every} steps (0: never) but not after the last.
     */
    static long checkpointsLeft(long step, long total, long every) {
        if (every <= 0 || step >= total) {
            return 0;
        }
        return (total - 1) / every - step / every;
    }
}
