package io.tuneline.training.worker;

import java.lang.management.ManagementFactory;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * Where a worker's start goes before its first training step: milestones in milliseconds since the
 * JVM started (the JVM's own start-up is the first, "main"), printed as one line to the worker's
 * log when the first step is done. {@code bench/overhead.py} reads that line to break the time from
 * a job's event to its first step down; the progress events carry only wall-clock times.
 */
final class StartupMarks {
    private static final long JVM_START = ManagementFactory.getRuntimeMXBean().getStartTime();
    private static final Map<String, Long> MARKS = new LinkedHashMap<>();
    private static boolean reported;

    private StartupMarks() {}

    /** Records that {@code milestone} was reached now; the first time counts. */
    static synchronized void mark(String milestone) {
        MARKS.putIfAbsent(milestone, System.currentTimeMillis() - JVM_START);
    }

    /**
     * Marks the first step and prints every milestone once, e.g. {@code worker start-up of J: jvm
     * start 2026-12-04T20:00:00Z; main +0.41 s, data +0.9 s, ... first step +6.2 s}.
     */
    static synchronized void firstStep(String jobId) {
        if (reported) {
            return;
        }
        reported = true;
        mark("first step");
        System.out.println(line(jobId, JVM_START, MARKS));
    }

    static String line(String jobId, long jvmStart, Map<String, Long> marks) {
        return "worker start-up of "
                + jobId
                + ": jvm start "
                + Instant.ofEpochMilli(jvmStart)
                + "; "
                + marks.entrySet().stream()
                        .map(
                                e ->
                                        String.format(
                                                java.util.Locale.ROOT,
                                                "%s +%.2f s",
                                                e.getKey(),
                                                e.getValue() / 1000.0))
                        .collect(Collectors.joining(", "));
    }
}
