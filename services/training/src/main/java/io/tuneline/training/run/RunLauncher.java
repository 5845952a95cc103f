package io.tuneline.training.run;

import java.util.function.BiConsumer;

/**
 * Where training runs execute: a worker process on this machine ({@code local}) or a Kubernetes Job
 * on a GPU node ({@code kubernetes}). Launching returns at once; a run can take hours, and the
 * controller follows it through {@link #state} and {@link #watch}, never by blocking a consumer.
 */
public interface RunLauncher extends AutoCloseable {

    /** Starts {@code run}, or queues it; launching an attempt that exists already does nothing. */
    void start(RunRequest run);

    RunState state(RunRequest run);

    /** Stops a queued or running run; returns whether there was anything to stop. */
    boolean cancel(RunRequest run);

    /** Calls {@code onChange(run, state)} when a run changes state, until closed. */
    AutoCloseable watch(BiConsumer<RunKey, RunState> onChange);

    @Override
    default void close() {}
}
