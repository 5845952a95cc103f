package io.tuneline.serving.load;

import io.tuneline.serving.api.ServingException;
import java.util.concurrent.Semaphore;

/**
 * Who may use one loaded version's engine and who waits. One engine call runs at a time per version
 * (a classify batch or one generation): the model's native memory and a generation's state are not
 * shared safely between threads, and batching, not parallel calls, is what fills an accelerator. At
 * most {@code tuneline.serving.limits.max-queued} requests wait behind it; the next one is refused
 * at once with a 429 rather than queued into a timeout, so a client or load balancer can go
 * elsewhere. A retired version (its alias moved on) admits nothing more and is closed when the
 * requests it admitted are done.
 */
public final class ModelQueue {
    private final String versionId;
    private final int maxQueued;
    // Fair, so that requests get the engine in the order they started waiting for it.
    private final Semaphore turn = new Semaphore(1, true);
    private int waiting;
    private int admitted;
    private boolean retired;

    public ModelQueue(String versionId, int maxQueued) {
        this.versionId = versionId;
        this.maxQueued = maxQueued;
    }

    /**
     * Admits one request to wait for this version's engine.
     *
     * @throws ServingException 429 when {@code max-queued} requests wait already; {@link Retired}
     *     when the version was retired
     */
    public synchronized Ticket enter() {
        if (retired) {
            throw new Retired(versionId);
        }
        if (waiting >= maxQueued) {
            throw new ServingException(
                            429,
                            "Too many requests queued",
                            versionId
                                    + " has "
                                    + waiting
                                    + " requests waiting already, the most allowed per model"
                                    + " (tuneline.serving.limits.max-queued = "
                                    + maxQueued
                                    + "); retry shortly or send fewer requests at once")
                    .retryAfter(1);
        }
        waiting++;
        admitted++;
        return new Ticket();
    }

    /** Waits for the engine; closing the turn hands it to the next waiter. */
    public Turn awaitTurn() {
        turn.acquireUninterruptibly();
        return new Turn();
    }

    /** Requests admitted and not yet using the engine. */
    public synchronized int waiting() {
        return waiting;
    }

    /** Admits no more requests; {@link #awaitDrained()} then waits for those already admitted. */
    public synchronized void retire() {
        retired = true;
    }

    public synchronized void awaitDrained() throws InterruptedException {
        while (admitted > 0) {
            wait();
        }
    }

    private synchronized void started() {
        waiting--;
    }

    private synchronized void finished() {
        admitted--;
        notifyAll();
    }

    /** One admitted request: counted as waiting until {@link #start()}, admitted until closed. */
    public final class Ticket implements AutoCloseable {
        private boolean started;
        private boolean closed;

        /** The request is now using the engine: it no longer counts as waiting. */
        public synchronized void start() {
            if (!started) {
                started = true;
                started();
            }
        }

        @Override
        public synchronized void close() {
            if (!closed) {
                start();
                closed = true;
                finished();
            }
        }
    }

    /** The engine, held until closed. */
    public final class Turn implements AutoCloseable {
        private boolean released;

        @Override
        public synchronized void close() {
            if (!released) {
                released = true;
                turn.release();
            }
        }
    }

    /** The version was retired after its alias moved: the caller resolves the name again. */
    public static final class Retired extends ServingException {
        Retired(String versionId) {
            super(
                    503,
                    "Model version retired",
                    versionId
                            + " was unloaded because the alias or name it was loaded for now"
                            + " points at another version; retry");
            retryAfter(1);
        }
    }
}
