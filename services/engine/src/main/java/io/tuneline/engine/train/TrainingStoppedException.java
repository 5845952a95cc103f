package io.tuneline.engine.train;

/** A run stopped on request between two steps, after saving a checkpoint at {@code step}. */
public final class TrainingStoppedException extends RuntimeException {
    private final long step;

    public TrainingStoppedException(long step) {
        super("training stopped on request after step " + step + "; its checkpoint is saved");
        this.step = step;
    }

    public long step() {
        return step;
    }
}
