package io.tuneline.training.run;

/** Where a run stands, as an executor sees it. */
public sealed interface RunState {
    /** Accepted, not started yet (no node, image being pulled, waiting for a slot). */
    record Pending(String detail) implements RunState {}

    /**
     * Waiting in a cluster queue (Kueue) for quota: the run's Job exists, suspended, and starts
     * when the queue admits it. Neither running nor failed; a run that was running and is back in
     * this state was preempted by the queue.
     *
     * @param queue the queue the run waits in
     * @param why the queue's own reason, when it gives one (quota, an eviction)
     */
    record WaitingForAdmission(String queue, java.util.Optional<String> why) implements RunState {
        public WaitingForAdmission(String queue) {
            this(queue, java.util.Optional.empty());
        }

        /** What the job's status says while the run waits. */
        public String detail() {
            return "waiting for admission by Kueue (queue "
                    + queue
                    + ")"
                    + why.map(w -> ": " + w).orElse("");
        }
    }

    /** The worker is running. */
    record Running() implements RunState {}

    /** The worker finished and reported success. */
    record Succeeded() implements RunState {}

    /**
     * The run cannot finish. {@code retriable} when another attempt may succeed (the node was lost,
     * the pod was evicted); not when the same attempt would fail again (image missing, out of
     * memory at this size, deadline).
     */
    record Failed(String reason, boolean retriable) implements RunState {}

    /**
     * The worker was stopped from outside (SIGTERM: a spot node reclaimed, a pod preempted or
     * evicted, a node drained) and stored a checkpoint within its grace period: the run resumes
     * from it, and the stop does not count as a failed attempt.
     */
    record Preempted(String reason) implements RunState {}

    /** Nothing is known of this run (never launched, or deleted after its TTL). */
    record Unknown() implements RunState {}
}
