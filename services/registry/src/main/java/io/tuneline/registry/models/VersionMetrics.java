package io.tuneline.registry.models;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.narayana.jta.QuarkusTransaction;
import io.quarkus.runtime.StartupEvent;
import io.tuneline.registry.db.RegistryDatabase;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicReference;
import org.jboss.logging.Logger;

/**
 * {@code tuneline_registry_version_metric{model,version,metric}}: the headline metric of every
 * registered version, so dashboards can plot a model's quality version by version. Set when a
 * version is registered, and filled from the stored versions at start-up, so a restart loses none.
 * One series per version: registries hold tens of versions per model, not thousands.
 */
@ApplicationScoped
public class VersionMetrics {
    public static final String NAME = "tuneline.registry.version.metric";
    private static final Logger LOG = Logger.getLogger(VersionMetrics.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    private final MeterRegistry meters;
    private final RegistryDatabase db;
    private final Map<String, AtomicReference<Double>> values = new ConcurrentHashMap<>();

    @Inject
    public VersionMetrics(MeterRegistry meters, RegistryDatabase db) {
        this.meters = meters;
        this.db = db;
    }

    void load(@Observes StartupEvent start) {
        try {
            List<Object[]> rows =
                    QuarkusTransaction.requiringNew()
                            .call(
                                    () ->
                                            db.em()
                                                    .createQuery(
                                                            "select m.name, v.version,"
                                                                    + " v.primaryMetric, v.metrics"
                                                                    + " from ModelVersion v,"
                                                                    + " RegisteredModel m where"
                                                                    + " v.modelId = m.id",
                                                            Object[].class)
                                                    .getResultList());
            for (Object[] row : rows) {
                String metric = (String) row[2];
                JsonNode value =
                        JSON.readTree((String) row[3])
                                .path("tuned_metrics")
                                .path(metric)
                                .path("value");
                if (value.isNumber()) {
                    record((String) row[0], (Long) row[1], metric, value.asDouble());
                }
            }
            LOG.infof("headline metrics of %d registered versions published", values.size());
        } catch (Exception e) {
            // Metrics must not keep the registry from starting; new versions still get theirs.
            LOG.warnf(e, "stored versions' headline metrics not published: %s", e.getMessage());
        }
    }

    /** Publishes (or updates) the headline metric of one version. */
    public void record(String model, long version, String metric, double value) {
        values.computeIfAbsent(
                        model + "/" + version + "/" + metric,
                        key -> {
                            AtomicReference<Double> ref = new AtomicReference<>(Double.NaN);
                            Gauge.builder(NAME, ref, AtomicReference::get)
                                    .description("Headline metric of a registered model version")
                                    .tag("model", model)
                                    .tag("version", Long.toString(version))
                                    .tag("metric", metric)
                                    .register(meters);
                            return ref;
                        })
                .set(value);
    }
}
