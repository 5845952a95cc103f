package io.tuneline.common.job;

import java.time.Duration;
import java.util.function.LongSupplier;

/**
 * Decides when a long stage publishes its next progress event: after at least {@code step} more
 * percent and {@code interval} more time, so a big dataset shows steady progress and a small one,
 * done in a moment, publishes none.
 */
public final class ProgressThrottle {
    private final double step;
    private final long intervalNanos;
    private final LongSupplier clock;
    private final long started;
    private double lastPercent;
    private long lastAt;

    public ProgressThrottle(double step, Duration interval) {
        this(step, interval, System::nanoTime);
    }

    ProgressThrottle(double step, Duration interval, LongSupplier clock) {
        this.step = step;
        this.intervalNanos = interval.toNanos();
        this.clock = clock;
        this.started = clock.getAsLong();
        this.lastAt = started;
    }

    /** True when {@code percent} should be published now; it then counts as published. */
    public boolean due(double percent) {
        long now = clock.getAsLong();
        if (percent >= 100 || percent - lastPercent < step || now - lastAt < intervalNanos) {
            return false;
        }
        lastPercent = percent;
        lastAt = now;
        return true;
    }
}
