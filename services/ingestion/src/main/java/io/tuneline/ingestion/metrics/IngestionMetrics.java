package io.tuneline.ingestion.metrics;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.quarkus.runtime.Startup;
import io.tuneline.ingestion.validate.RejectionReason;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.EnumMap;
import java.util.Map;

/**
 * Ingestion's own metrics, registered at zero at start-up so {@code increase()} sees the first
 * dataset: bytes read, records accepted, records rejected by reason, and the time per dataset.
 */
@Startup
@ApplicationScoped
public class IngestionMetrics {
    public static final String BYTES = "tuneline.ingestion.bytes";
    public static final String RECORDS = "tuneline.ingestion.records";
    public static final String REJECTED = "tuneline.ingestion.records.rejected";
    public static final String DURATION = "tuneline.ingestion.duration";
    public static final String REUSED_JOB_IDS = "tuneline.ingestion.jobs.reused.id";

    private final Counter bytes;
    private final Counter records;
    private final Map<RejectionReason, Counter> rejected = new EnumMap<>(RejectionReason.class);
    private final Timer duration;
    private final Counter reusedJobIds;

    @Inject
    public IngestionMetrics(MeterRegistry registry) {
        bytes =
                Counter.builder(BYTES)
                        .baseUnit("bytes")
                        .description("Dataset bytes stored")
                        .register(registry);
        records = Counter.builder(RECORDS).description("Valid records ingested").register(registry);
        for (RejectionReason r : RejectionReason.values()) {
            rejected.put(
                    r,
                    Counter.builder(REJECTED)
                            .tag("reason", r.tag())
                            .description("Records rejected, by reason")
                            .register(registry));
        }
        reusedJobIds =
                Counter.builder(REUSED_JOB_IDS)
                        .description(
                                "Job requests ignored because their job id belongs to another job")
                        .register(registry);
        duration =
                Timer.builder(DURATION)
                        .description("Time to fetch, store and validate one dataset")
                        .publishPercentileHistogram()
                        .register(registry);
    }

    public void stored(long byteCount) {
        bytes.increment(byteCount);
    }

    public void validated(long valid, Map<RejectionReason, Long> rejections) {
        records.increment(valid);
        rejections.forEach((reason, n) -> rejected.get(reason).increment(n));
    }

    /** Counts a request whose job id another job already uses. */
    public Counter reusedJobIds() {
        return reusedJobIds;
    }

    public void took(Duration d) {
        duration.record(d);
    }
}
