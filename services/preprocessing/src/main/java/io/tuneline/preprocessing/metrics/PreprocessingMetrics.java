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

    private final Counter records;
    private final Map<String, Counter> removed;
    private final Map<String, Counter> examples;
    private final Timer duration;

    @Inject
    public PreprocessingMetrics(MeterRegistry registry) {
        records = Counter.builder(RECORDS).description("Records read").register(registry);
        removed =
                Map.of(
                        "exact_duplicate", removed(registry, "exact_duplicate"),
                        "near_duplicate", removed(registry, "near_duplicate"),
                        "empty", removed(registry, "empty"));
        examples =
                Map.of(
                        "train", examples(registry, "train"),
                        "validation", examples(registry, "validation"),
                        "test", examples(registry, "test"));
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

    public void prepared(DatasetPrepared p, Duration took) {
        records.increment(p.getStats().getInputRecords());
        removed.get("exact_duplicate").increment(p.getStats().getExactDuplicatesRemoved());
        removed.get("near_duplicate").increment(p.getStats().getNearDuplicatesRemoved());
        removed.get("empty").increment(p.getStats().getEmptyRemoved());
        examples.get("train").increment(p.getCounts().getTrain());
        examples.get("validation").increment(p.getCounts().getValidation());
        examples.get("test").increment(p.getCounts().getTest());
        duration.record(took);
    }
}
