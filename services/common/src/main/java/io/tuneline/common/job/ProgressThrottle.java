package io.tuneline.common.job;

import java.time.Duration;
import java.util.function.LongSupplier;

/**
 * Decides when a long stage publishes its next progress event: when the percent done enters a new
 * multiple of {@code step} (10 %, 20 %, ...) and at least {@code interval} has passed since the
 * start or the previous event, so a big dataset shows steady progress and a small one, done in a
 * moment, publishes none. 100 % is never progress: the stage's next state says it.
 */
public final class ProgressThrottle {
    private final double step;
    private final long intervalNanos;
    private final LongSupplier clock;
    private final long started;
    private long lastStep;
    private long lastAt;

    public ProgressThrottle(double step, Duration interval) {
        this(step, interval, System::nanoTime);
    }

    /**
     * @param clock nanoseconds, like {@link System#nanoTime()}
     */
    public ProgressThrottle(double step, Duration interval, LongSupplier clock) {
        this.step = step;
        this.intervalNanos = interval.toNanos();
        this.clock = clock;
        this.started = clock.getAsLong();
        this.lastAt = started;
    }

    /** True when {@code percent} should be published now; it then counts as published. */
    public boolean due(double percent) {
        long now = clock.getAsLong();
        long reached = (long) (percent / step);
        if (percent >= 100 || reached <= lastStep || now - lastAt < intervalNanos) {
            return false;
        }
        lastStep = reached;
        lastAt = now;
        return true;
    }
}
