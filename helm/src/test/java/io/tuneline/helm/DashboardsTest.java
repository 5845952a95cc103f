package io.tuneline.helm;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.common.observability.MetricNames;
import io.tuneline.serving.load.ServingMetrics;
import io.tuneline.training.progress.TrainingMetrics;
import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;
import org.junit.jupiter.api.Test;

/**
 * The dashboards in deploy/grafana/dashboards: importable anywhere (datasource variable, stable
 * uid), filterable by namespace and service, and every query valid PromQL over metrics the services
 * export. The end-to-end test runs the same queries against a real Prometheus.
 */
class DashboardsTest {
    private static final Path DIR = Path.of("../deploy/grafana/dashboards").toAbsolutePath();
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern SELECTOR = Pattern.compile("([a-zA-Z_:][a-zA-Z0-9_:]*)\\s*\\{");

    /**
     * Metrics that exist only in clusters (NVIDIA's DCGM exporter); the end-to-end test skips them
     * when it runs the queries against a real Prometheus.
     */
    static final Set<String> CLUSTER_ONLY = Set.of("DCGM_FI_DEV_GPU_UTIL");

    /**
     * Metric families that come from Quarkus' Micrometer binders and Prometheus itself, not from
     * MetricNames; each was seen on a running service's /q/metrics.
     */
    private static final Set<String> BUILT_IN =
            Set.of(
                    "up",
                    "jvm_memory_used_bytes",
                    "kafka_consumer_fetch_manager_records_lag_max",
                    "kafka_consumer_fetch_manager_records_consumed_total",
                    // Quarkus' HTTP server binder (method, uri, status, outcome): serving's 413s
                    // and 429s by status.
                    "http_server_requests_seconds_count");

    @Test
    void everyDashboardIsImportableAndFilterable() throws IOException {
        List<JsonNode> dashboards = dashboards();
        assertThat(dashboards).hasSize(5);
        Set<String> uids = new HashSet<>();
        for (JsonNode d : dashboards) {
            String title = d.path("title").asText();
            assertThat(d.has("id")).as("%s must not carry a numeric id", title).isFalse();
            assertThat(uids.add(d.path("uid").asText())).as("unique uid of %s", title).isTrue();
            assertThat(d.path("uid").asText()).startsWith("tuneline-");
            List<String> variables =
                    StreamSupport.stream(d.path("templating").path("list").spliterator(), false)
                            .map(v -> v.path("name").asText())
                            .toList();
            assertThat(variables).as(title).contains("DS_PROMETHEUS", "namespace", "service");
            for (JsonNode panel : d.path("panels")) {
                assertThat(panel.path("datasource").path("uid").asText())
                        .as("%s / %s", title, panel.path("title").asText())
                        .isEqualTo("${DS_PROMETHEUS}");
                for (JsonNode target : panel.path("targets")) {
                    assertThat(target.path("datasource").path("uid").asText())
                            .isEqualTo("${DS_PROMETHEUS}");
                    assertThat(target.path("expr").asText()).isNotBlank();
                }
            }
        }
    }

    @Test
    void everyQueryIsValidPromQl() throws Exception {
        List<String> exprs = expressions();
        // promtool parses expressions as part of a rule file; Grafana's variables become what a
        // dashboard would substitute.
        StringBuilder rules = new StringBuilder("groups:\n  - name: dashboards\n    rules:\n");
        for (int i = 0; i < exprs.size(); i++) {
            String expr =
                    exprs.get(i)
                            .replace("$__rate_interval", "5m")
                            .replace("$__range", "1h")
                            .replace("$namespace", ".*")
                            .replace("$service", ".*");
            rules.append("      - record: dashboard:query_")
                    .append(i)
                    .append("\n        expr: ")
                    .append(JSON.writeValueAsString(expr))
                    .append('\n');
        }
        Path file = Files.createTempFile("dashboards", ".rules.yml");
        Files.writeString(file, rules);
        Process promtool;
        try {
            promtool =
                    new ProcessBuilder("promtool", "check", "rules", file.toString())
                            .redirectErrorStream(true)
                            .start();
        } catch (IOException e) {
            throw new AssertionError(
                    "promtool is needed to parse the dashboards' PromQL: apt-get install prometheus",
                    e);
        }
        String output =
                new String(promtool.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(promtool.waitFor()).as(output).isZero();
        assertThat(output).contains("SUCCESS: " + exprs.size() + " rules found");
    }

    @Test
    void everyQueryNamesAMetricTheServicesExport() throws IOException {
        Set<String> exported = new HashSet<>(BUILT_IN);
        exported.addAll(CLUSTER_ONLY);
        exported.addAll(tunelineMetrics());
        exported.addAll(trainingMetrics());
        exported.addAll(servingMetrics());
        for (String expr : expressions()) {
            Matcher m = SELECTOR.matcher(expr);
            boolean any = false;
            while (m.find()) {
                any = true;
                assertThat(exported).as("metric in %s", expr).contains(m.group(1));
            }
            assertThat(any).as("no metric selector in %s", expr).isTrue();
        }
    }

    /**
     * Prometheus names of MetricNames' metrics: dots become underscores, counters end in _total.
     */
    private static Set<String> tunelineMetrics() {
        Set<String> names = new HashSet<>();
        for (Field f : MetricNames.class.getFields()) {
            if (Modifier.isStatic(f.getModifiers()) && f.getType() == String.class) {
                try {
                    String value = (String) f.get(null);
                    if (value.startsWith("tuneline.")) {
                        String base = value.replace('.', '_');
                        names.add(base);
                        names.add(base + "_total");
                        // Timers: Micrometer's Prometheus names for count, sum and max.
                        for (String part : new String[] {"_count", "_sum", "_max"}) {
                            names.add(base + "_seconds" + part);
                        }
                    }
                } catch (IllegalAccessException e) {
                    throw new IllegalStateException(e);
                }
            }
        }
        return names;
    }

    /** The training service's gauges (TrainingMetrics), in Prometheus form. */
    private static Set<String> trainingMetrics() {
        Set<String> names = new HashSet<>();
        names.add(TrainingMetrics.RUNS.replace('.', '_'));
        for (String metric : TrainingMetrics.progressNames()) {
            names.add(metric.replace('.', '_'));
        }
        return names;
    }

    /**
     * The serving service's series (ServingMetrics) as Micrometer's Prometheus registry names them:
     * a timer adds {@code _seconds} and, with its percentile histogram, {@code _bucket}; a
     * distribution summary {@code _bucket}, {@code _count}, {@code _sum}, {@code _max}; a counter
     * {@code _total}; a gauge its base unit ({@code _bytes}).
     */
    private static Set<String> servingMetrics() {
        Set<String> names = new HashSet<>();
        for (String part : new String[] {"_bucket", "_count", "_sum", "_max"}) {
            names.add(prometheus(ServingMetrics.REQUEST_DURATION) + "_seconds" + part);
            names.add(prometheus(ServingMetrics.BATCH_INPUTS) + part);
        }
        for (String counter :
                List.of(
                        ServingMetrics.REQUESTS,
                        ServingMetrics.PROMPT_TOKENS,
                        ServingMetrics.GENERATED_TOKENS)) {
            names.add(prometheus(counter) + "_total");
        }
        names.add(prometheus(ServingMetrics.LOADED_MODELS));
        names.add(prometheus(ServingMetrics.QUEUED_REQUESTS));
        names.add(prometheus(ServingMetrics.PARAMETER_BYTES) + "_bytes");
        return names;
    }

    private static String prometheus(String micrometerName) {
        return micrometerName.replace('.', '_');
    }

    private static List<JsonNode> dashboards() throws IOException {
        List<JsonNode> all = new ArrayList<>();
        try (Stream<Path> files = Files.list(DIR)) {
            for (Path p : files.filter(f -> f.toString().endsWith(".json")).sorted().toList()) {
                all.add(JSON.readTree(p.toFile()));
            }
        }
        return all;
    }

    private static List<String> expressions() throws IOException {
        List<String> exprs = new ArrayList<>();
        for (JsonNode d : dashboards()) {
            for (JsonNode panel : d.path("panels")) {
                for (JsonNode target : panel.path("targets")) {
                    exprs.add(target.path("expr").asText());
                }
            }
        }
        return exprs;
    }
}
