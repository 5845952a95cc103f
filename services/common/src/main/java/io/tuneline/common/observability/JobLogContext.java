package io.tuneline.common.observability;

import org.jboss.logging.MDC;

/**
 * Puts the job id into the logging MDC for the current thread, so every log line written while
 * working on a job carries it (as {@code jobId} in JSON logs and in the console pattern).
 */
public final class JobLogContext implements AutoCloseable {
    public static final String JOB_ID = "jobId";

    private final Object previous;

    private JobLogContext(String jobId) {
        this.previous = MDC.get(JOB_ID);
        MDC.put(JOB_ID, jobId);
    }

    /** Use in try-with-resources: {@code try (var ctx = JobLogContext.of(jobId)) {...}}. */
    public static JobLogContext of(String jobId) {
        return new JobLogContext(jobId);
    }

    @Override
    public void close() {
        if (previous == null) {
            MDC.remove(JOB_ID);
        } else {
            MDC.put(JOB_ID, previous);
        }
    }
}
