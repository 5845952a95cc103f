package io.tuneline.registry.jobs;

import jakarta.enterprise.context.ApplicationScoped;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;

/**
 * Hands each newly applied event to the live streams watching its job. Events are published only
 * after their transaction committed, so a watcher never sees an event the database does not have.
 */
@ApplicationScoped
public class JobEventBus {
    private final Map<String, Set<Consumer<JobEventView>>> watchers = new ConcurrentHashMap<>();

    /** Starts watching a job; close the returned handle to stop. */
    public AutoCloseable watch(String jobId, Consumer<JobEventView> watcher) {
        watchers.computeIfAbsent(jobId, k -> ConcurrentHashMap.newKeySet()).add(watcher);
        return () ->
                watchers.computeIfPresent(
                        jobId,
                        (k, set) -> {
                            set.remove(watcher);
                            return set.isEmpty() ? null : set;
                        });
    }

    public void publish(JobEventView event) {
        Set<Consumer<JobEventView>> set = watchers.get(event.jobId());
        if (set != null) {
            set.forEach(w -> w.accept(event));
        }
    }

    public int watching(String jobId) {
        Set<Consumer<JobEventView>> set = watchers.get(jobId);
        return set == null ? 0 : set.size();
    }
}
