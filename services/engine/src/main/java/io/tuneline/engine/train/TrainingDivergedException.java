package io.tuneline.engine.train;

/**
 * The loss or gradients of several steps in a row were NaN or infinite: the run has diverged, and
 * every further step would only spread the non-numbers through the weights. Another attempt with
 * the same settings diverges the same way, so this is the job's failure, not the machine's.
 */
public final class TrainingDivergedException extends IllegalStateException {
    private final long step;

    public TrainingDivergedException(long step, double loss, double learningRate, int inARow) {
        super(
                String.format(
                        java.util.Locale.ROOT,
                        "training diverged at step %d: the loss is %s (loss or gradients not a"
                                + " number %d steps in a row); lower the learning rate (%.3g at"
                                + " that step), keep gradient clipping on, or check the data for"
                                + " empty or extreme examples",
                        step,
                        loss,
                        inARow,
                        learningRate));
        this.step = step;
    }

    /** The step whose loss was not a number; the weights are those after the step before. */
    public long step() {
        return step;
    }
}
