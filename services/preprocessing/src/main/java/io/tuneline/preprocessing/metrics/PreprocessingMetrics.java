package io.tuneline.preprocessing.metrics;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.quarkus.runtime.Startup;
import io.tuneline.proto.v1.DatasetPrepared;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.Map;

/**
 * Preprocessing's metrics, registered at zero at start-up: records read, records removed by reason,
 * examples written per split, and the time per dataset.
 */
@Startup
@ApplicationScoped
public class PreprocessingMetrics {
    public static final String RECORDS = "tuneline.preprocessing.records";
    public static final String REMOVED = "tuneline.preprocessing.records.removed";
    public static final String EXAMPLES = "tuneline.preprocessing.examples";
    public static final String DURATION = "tuneline.preprocessing.duration";
    public static final String BYTES = "tuneline.preprocessing.bytes";
    public static final String TRUNCATED = "tuneline.preprocessing.truncated";

    private final Counter records;
    private final Map<String, Counter> removed;
    private final Map<String, Counter> examples;
    private final Timer duration;
    private final Counter bytes;
    private final Counter truncated;

    @Inject
    public PreprocessingMetrics(MeterRegistry registry) {
        records = Counter.builder(RECORDS).description("Records read").register(registry);
        removed =
                Map.of(
                        "exact_duplicate", removed(registry, "exact_duplicate"),
                        "near_duplicate", removed(registry, "near_duplicate"),
                        "empty", removed(registry, "empty"),
                        "test_leakage", removed(registry, "test_leakage"));
        examples =
                Map.of(
                        "train", examples(registry, "train"),
                        "validation", examples(registry, "validation"),
                        "test", examples(registry, "test"));
        bytes =
                Counter.builder(BYTES)
                        .baseUnit("bytes")
                        .description("Bytes of ingested records read")
                        .register(registry);
        truncated =
                Counter.builder(TRUNCATED)
                        .description("Examples longer than max_seq_length, truncated")
                        .register(registry);
        duration =
                Timer.builder(DURATION)
                        .description("Time to clean, deduplicate, split and store one dataset")
                        .publishPercentileHistogram()
                        .register(registry);
    }

    private static Counter removed(MeterRegistry registry, String reason) {
        return Counter.builder(REMOVED)
                .tag("reason", reason)
                .description("Records removed, by reason")
                .register(registry);
    }

    private static Counter examples(MeterRegistry registry, String split) {
        return Counter.builder(EXAMPLES)
                .tag("split", split)
                .description("Examples written, by split")
                .register(registry);
    }

    /**
     * @param inputBytes size of the records read
     */
    public void prepared(DatasetPrepared p, long inputBytes, Duration took) {
        records.increment(p.getStats().getInputRecords());
        bytes.increment(inputBytes);
        truncated.increment(p.getStats().getTruncatedExamples());
        removed.get("test_leakage").increment(p.getStats().getLeakageRemoved());
        removed.get("exact_duplicate").increment(p.getStats().getExactDuplicatesRemoved());
        removed.get("near_duplicate").increment(p.getStats().getNearDuplicatesRemoved());
        removed.get("empty").increment(p.getStats().getEmptyRemoved());
        examples.get("train").increment(p.getCounts().getTrain());
        examples.get("validation").increment(p.getCounts().getValidation());
        examples.get("test").increment(p.getCounts().getTest());
        duration.record(took);
    }
}
