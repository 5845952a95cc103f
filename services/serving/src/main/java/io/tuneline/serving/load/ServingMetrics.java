package io.tuneline.serving.load;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;
import jakarta.enterprise.context.ApplicationScoped;
import java.time.Duration;
import java.util.List;
import java.util.TreeSet;
import java.util.function.IntConsumer;

/**
 * The service's Prometheus series: {@code tuneline_serving_request_duration_seconds} (histogram per
 * model and endpoint), {@code tuneline_serving_requests_total} (per model, endpoint and outcome:
 * {@code ok}, {@code rejected} for a 4xx, {@code failed} for a 5xx), {@code
 * tuneline_serving_loaded_models}; per loaded version ({@code model}, {@code version}) {@code
 * tuneline_serving_queued_requests} and {@code tuneline_serving_model_parameters_bytes} (a shared
 * base not counted); per shared base {@code tuneline_serving_base_parameters_bytes}; per model
 * {@code tuneline_serving_batch_inputs} (texts per classify engine batch), {@code
 * tuneline_serving_prompt_tokens_total} and {@code tuneline_serving_generated_tokens_total}, whose
 * {@code rate()} is tokens per second. A request whose model is not known is counted under {@code
 * model="unknown"}, so a flood of made-up names cannot grow the series.
 */
@ApplicationScoped
public class ServingMetrics {
    public static final String REQUEST_DURATION = "tuneline.serving.request.duration";
    public static final String REQUESTS = "tuneline.serving.requests";
    public static final String LOADED_MODELS = "tuneline.serving.loaded.models";
    public static final String QUEUED_REQUESTS = "tuneline.serving.queued.requests";
    public static final String PARAMETER_BYTES = "tuneline.serving.model.parameters";

    /** Per shared base ({@code base}): its bytes, counted once ({@link SharedBases}). */
    public static final String BASE_PARAMETER_BYTES = "tuneline.serving.base.parameters";

    public static final String BATCH_INPUTS = "tuneline.serving.batch.inputs";
    public static final String PROMPT_TOKENS = "tuneline.serving.prompt.tokens";
    public static final String GENERATED_TOKENS = "tuneline.serving.generated.tokens";
    public static final String UNKNOWN_MODEL = "unknown";

    private final MeterRegistry registry;
    private final ServingConfig config;

    public ServingMetrics(MeterRegistry registry, ServingConfig config) {
        this.registry = registry;
        this.config = config;
    }

    public void record(String model, String endpoint, int status, long startNanos) {
        String outcome = status < 400 ? "ok" : status < 500 ? "rejected" : "failed";
        Timer.builder(REQUEST_DURATION)
                .description("Time to answer a serving request, streamed ones to their last byte")
                .tags("model", model, "endpoint", endpoint)
                .publishPercentileHistogram()
                .minimumExpectedValue(Duration.ofMillis(1))
                .maximumExpectedValue(Duration.ofMinutes(5))
                .register(registry)
                .record(Duration.ofNanos(System.nanoTime() - startNanos));
        Counter.builder(REQUESTS)
                .description("Serving requests by outcome")
                .tags("model", model, "endpoint", endpoint, "outcome", outcome)
                .register(registry)
                .increment();
    }

    /**
     * Registers a loaded version's gauges (its waiting requests, the bytes of its parameters) and
     * its model's counters, so they read 0 before the first request; returns the gauges, which
     * {@link #remove} drops when the version is unloaded.
     */
    List<Meter> loaded(LoadedModel model) {
        Tags tags =
                Tags.of(
                        "model",
                        model.version().model(),
                        "version",
                        Long.toString(model.version().version()));
        ModelQueue queue = model.queue();
        Gauge queued =
                Gauge.builder(QUEUED_REQUESTS, queue, ModelQueue::waiting)
                        .description("Requests waiting for a loaded version's engine")
                        .tags(tags)
                        .register(registry);
        long bytes = model.parameterBytes();
        Gauge parameters =
                Gauge.builder(PARAMETER_BYTES, () -> bytes)
                        .description("Bytes of a loaded version's parameters")
                        .baseUnit("bytes")
                        .tags(tags)
                        .register(registry);
        if (model.task().equals("causal_lm")) {
            tokens(model.version().model(), 0, 0);
        } else {
            batchInputs(model.version().model());
        }
        return List.of(queued, parameters);
    }

    void remove(List<Meter> meters) {
        meters.forEach(registry::remove);
    }

    /** Hears the texts of each classify engine batch of {@code model}. */
    public IntConsumer batchInputs(String model) {
        // Bucket bounds at powers of two up to the batch size, and the batch size itself, so that
        // "how full are the batches" reads off the buckets directly.
        int max = config.batch().maxSize();
        TreeSet<Double> bounds = new TreeSet<>();
        for (int b = 1; b < max; b *= 2) {
            bounds.add((double) b);
        }
        bounds.add((double) max);
        DistributionSummary summary =
                DistributionSummary.builder(BATCH_INPUTS)
                        .description("Texts per classify engine batch, gathered across requests")
                        .tags("model", model)
                        .serviceLevelObjectives(
                                bounds.stream().mapToDouble(Double::doubleValue).toArray())
                        .register(registry);
        return summary::record;
    }

    /** Counts a generation's prompt and generated tokens (the end-of-sequence token included). */
    public void tokens(String model, int prompt, int generated) {
        Counter.builder(PROMPT_TOKENS)
                .description("Prompt tokens of completions and chats")
                .tags("model", model)
                .register(registry)
                .increment(prompt);
        Counter.builder(GENERATED_TOKENS)
                .description("Tokens generated by completions and chats; rate() is tokens/s")
                .tags("model", model)
                .register(registry)
                .increment(generated);
    }
}
