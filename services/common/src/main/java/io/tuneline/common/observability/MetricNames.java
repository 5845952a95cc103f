package io.tuneline.common.observability;

/**
 * Metric names shared by every service, in Micrometer's dotted form; Prometheus shows them as
 * {@code tuneline_<area>_<what>_<unit>} (counters get {@code _total}). Tags: {@code service} on
 * everything (added by {@link CommonTags}), {@code job_id} only on series that end with the job.
 */
public final class MetricNames {
    /** Events read by a consumer; tags {@code topic}, {@code type}, {@code outcome}. */
    public static final String EVENTS_CONSUMED = "tuneline.events.consumed";

    /** Events written; tags {@code topic}, {@code type}. */
    public static final String EVENTS_PUBLISHED = "tuneline.events.published";

    /** Bytes written to the object store; tag {@code bucket}. */
    public static final String STORE_BYTES_WRITTEN = "tuneline.store.written.bytes";

    /** Time to evaluate one job (timer: _seconds_count, _sum, _max). */
    public static final String EVALUATION_DURATION = "tuneline.evaluation.duration";

    /** The headline metric of the latest evaluation; tags {@code model}, {@code metric}. */
    public static final String EVALUATION_PRIMARY_METRIC = "tuneline.evaluation.primary.metric";

    public static final String TAG_SERVICE = "service";
    public static final String TAG_TOPIC = "topic";
    public static final String TAG_TYPE = "type";
    public static final String TAG_OUTCOME = "outcome";
    public static final String TAG_JOB_ID = "job_id";

    /** Outcomes of {@link #EVENTS_CONSUMED}. */
    public static final String OUTCOME_PROCESSED = "processed";

    public static final String OUTCOME_DUPLICATE = "duplicate";
    public static final String OUTCOME_INVALID = "invalid";
    public static final String OUTCOME_FAILED = "failed";

    private MetricNames() {}
}
