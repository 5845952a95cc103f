package io.tuneline.common.event;

import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * Runs the work for an event id at most once to success. A duplicate that arrives while the first
 * delivery is still being worked on waits for it, then is skipped; a delivery whose work threw is
 * not remembered, so its redelivery is worked on again.
 *
 * <p>Memory is bounded: the oldest ids are forgotten past {@code capacity}. That covers Kafka's
 * redeliveries (a rebalance, a retry, a producer resend), which arrive close together. Surviving a
 * restart is the job of each stage's own check that the job is already past it (its output exists
 * in the object store or its state in the database).
 */
public final class IdempotencyGuard {
    private final int capacity;
    private final Map<String, Boolean> done;
    private final Set<String> inFlight = new HashSet<>();

    public IdempotencyGuard(int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity must be positive, was " + capacity);
        }
        this.capacity = capacity;
        this.done =
                new LinkedHashMap<>(16, 0.75f, false) {
                    @Override
                    protected boolean removeEldestEntry(Map.Entry<String, Boolean> eldest) {
                        return size() > IdempotencyGuard.this.capacity;
                    }
                };
    }

    /** Runs {@code work} unless {@code key} already ran to success; returns whether it ran. */
    public boolean runOnce(String key, Runnable work) {
        synchronized (this) {
            while (inFlight.contains(key)) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted waiting for " + key, e);
                }
            }
            if (done.containsKey(key)) {
                return false;
            }
            inFlight.add(key);
        }
        boolean succeeded = false;
        try {
            work.run();
            succeeded = true;
        } finally {
            synchronized (this) {
                inFlight.remove(key);
                if (succeeded) {
                    done.put(key, Boolean.TRUE);
                }
                notifyAll();
            }
        }
        return true;
    }

    /** Whether {@code key} already ran to success (and is still remembered). */
    public synchronized boolean seen(String key) {
        return done.containsKey(key);
    }
}
