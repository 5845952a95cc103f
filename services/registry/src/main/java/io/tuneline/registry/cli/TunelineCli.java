package io.tuneline.registry.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.net.ConnectException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The command-line client behind {@code ./platform submit|publish|jobs|watch|models}: it talks to
 * the registry's REST API (and, for {@code publish}, to Kafka directly, as kcat would).
 *
 * <p>Settings come from the environment: {@code TUNELINE_REGISTRY_URL} (default {@code
 * http://127.0.0.1:8080}), {@code TUNELINE_API_TOKEN}, {@code KAFKA_BOOTSTRAP_SERVERS}.
 */
public final class TunelineCli {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final DateTimeFormatter CLOCK =
            DateTimeFormatter.ofPattern("MM-dd HH:mm:ss").withZone(ZoneId.systemDefault());

    private final String registry;
    private final String token;
    private final String kafka;
    private final PrintStream out;
    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private final boolean tty = System.console() != null;

    public TunelineCli(Map<String, String> env, PrintStream out) {
        this.registry = env.getOrDefault("TUNELINE_REGISTRY_URL", "http://127.0.0.1:8080");
        this.token = env.getOrDefault("TUNELINE_API_TOKEN", "tuneline-local-token");
        this.kafka = env.getOrDefault("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092");
        this.out = out;
    }

    public static void main(String[] args) {
        TunelineCli cli = new TunelineCli(System.getenv(), System.out);
        try {
            System.exit(cli.run(List.of(args)));
        } catch (CliException e) {
            System.err.println("platform: " + e.getMessage());
            System.exit(1);
        }
    }

    /** A failure the user can act on; its message says what and how. */
    static final class CliException extends RuntimeException {
        CliException(String message) {
            super(message);
        }
    }

    public int run(List<String> args) {
        if (args.isEmpty()) {
            throw new CliException(
                    "usage: submit FILE [--new-id] [--watch] [--dry-run] | publish FILE [--new-id] [--watch] | jobs [STATUS] | watch JOB | models [NAME]");
        }
        String command = args.get(0);
        List<String> rest = args.subList(1, args.size());
        return switch (command) {
            case "submit" -> submit(rest, false);
            case "publish" -> submit(rest, true);
            case "jobs" -> jobs(rest);
            case "watch" -> watch(single(rest, "watch JOB"));
            case "models" -> models(rest);
            default -> throw new CliException("unknown command '" + command + "'");
        };
    }

    // --- submit / publish --------------------------------------------------------------------

    private int submit(List<String> args, boolean viaKafka) {
        String file =
                args.stream()
                        .filter(a -> !a.startsWith("--"))
                        .findFirst()
                        .orElseThrow(
                                () ->
                                        new CliException(
                                                "name a job file, e.g. examples/sentiment-inline.json"));
        boolean newId = args.contains("--new-id");
        boolean watch = args.contains("--watch");
        ObjectNode job;
        try {
            job = (ObjectNode) JSON.readTree(Files.readString(Path.of(file)));
        } catch (java.nio.file.NoSuchFileException e) {
            throw new CliException("no job file at " + file + " (examples: ls examples/)");
        } catch (IOException | ClassCastException e) {
            throw new CliException(
                    "cannot read job file " + file + " as a JSON object: " + e.getMessage());
        }
        String jobId = job.path("job_id").asText("");
        if (newId || jobId.isEmpty()) {
            String base = jobId.isEmpty() ? "job" : jobId.replaceAll("-\\d{8}-\\d{6}$", "");
            jobId =
                    base
                            + "-"
                            + DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")
                                    .format(LocalDateTime.now());
            job.put("job_id", jobId);
        }
        if (args.contains("--dry-run")) {
            if (viaKafka) {
                throw new CliException(
                        "--dry-run goes through the registry: ./platform submit FILE --dry-run");
            }
            return dryRun(file, job);
        }
        if (viaKafka) {
            publish(jobId, job);
            out.println("published job " + jobId + " to finetune.jobs.requested at " + kafka);
        } else {
            JsonNode body = ok(postJob("/api/v1/jobs", job), "submitting " + file);
            out.println(
                    "submitted job "
                            + body.path("job_id").asText()
                            + " ("
                            + registry
                            + "/api/v1/jobs/"
                            + jobId
                            + ")");
        }
        return watch ? watch(jobId) : 0;
    }

    /**
     * {@code submit FILE --dry-run}: the registry validates and estimates the job as it would a
     * submission and publishes nothing; prints the estimate by part (docs/planning.md), or the
     * refusal with its ways out.
     */
    private int dryRun(String file, ObjectNode job) {
        JsonNode body = ok(postJob("/api/v1/jobs?dry_run=true", job), "the dry run of " + file);
        JsonNode e = body.path("estimate");
        out.println(
                "dry run of job "
                        + body.path("job_id").asText()
                        + ": it would be admitted (nothing was submitted)");
        if (e.isMissingNode()) {
            out.println("  (planning is switched off in the registry: no estimate)");
            return 0;
        }
        List<String[]> rows = new ArrayList<>();
        rows.add(
                new String[] {
                    "  device",
                    e.path("device").asText() + ", " + gib(e.path("device_memory_bytes")) + " GiB"
                });
        rows.add(
                new String[] {
                    "  parameters",
                    String.format(
                            Locale.ROOT,
                            "%,d trainable of %,d",
                            e.path("trainable_parameters").asLong(),
                            e.path("total_parameters").asLong())
                });
        rows.add(
                new String[] {
                    "  batch",
                    e.path("micro_batch").asInt()
                            + " x "
                            + e.path("accumulation").asInt()
                            + " accumulation, "
                            + e.path("sequence_length").asInt()
                            + " tokens"
                });
        for (String[] part :
                new String[][] {
                    {"weights", "weight_bytes"},
                    {"gradients", "gradient_bytes"},
                    {"optimizer (AdamW)", "optimizer_bytes"},
                    {"activations", "activation_bytes"},
                    {"workspace", "workspace_bytes"},
                    {"runtime", "runtime_bytes"},
                    {"peak", "peak_bytes"}
                }) {
            rows.add(new String[] {"  " + part[0], gib(e.path(part[1])) + " GiB"});
        }
        JsonNode total = e.path("total_seconds");
        rows.add(
                new String[] {
                    "  time",
                    String.format(
                                    Locale.ROOT,
                                    "%.2f s per step",
                                    e.path("seconds_per_step").asDouble())
                            + (total.isNumber()
                                    ? String.format(
                                            Locale.ROOT, ", %.0f s in total", total.asDouble())
                                    : ", total unknown until the dataset is read")
                });
        table(rows);
        if (body.has("auto_fit")) {
            out.println("  auto-fit: " + body.path("auto_fit").asText());
        }
        return 0;
    }

    /** POSTs a job file's JSON to the registry with the write token. */
    private HttpResponse<String> postJob(String path, ObjectNode job) {
        return send(
                HttpRequest.newBuilder(uri(path))
                        .header("Content-Type", "application/json")
                        .header("Authorization", "Bearer " + token)
                        .POST(HttpRequest.BodyPublishers.ofString(job.toString())));
    }

    private static String gib(JsonNode bytes) {
        return String.format(Locale.ROOT, "%.2f", bytes.asLong() / (double) (1L << 30));
    }

    private void publish(String jobId, JsonNode job) {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "15000");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            producer.send(new ProducerRecord<>("finetune.jobs.requested", jobId, job.toString()))
                    .get();
        } catch (Exception e) {
            throw new CliException(
                    "cannot publish to Kafka at "
                            + kafka
                            + " (is ./platform up running?): "
                            + e.getMessage());
        }
    }

    // --- jobs / models -----------------------------------------------------------------------

    private int jobs(List<String> args) {
        String query = args.isEmpty() ? "" : "?status=" + enc(args.get(0));
        JsonNode page = get("/api/v1/jobs" + query + (query.isEmpty() ? "?" : "&") + "size=50");
        List<String[]> rows = new ArrayList<>();
        rows.add(new String[] {"JOB", "STATUS", "METHOD", "PROGRESS", "MODEL", "UPDATED"});
        for (JsonNode j : page.path("items")) {
            JsonNode p = j.path("progress");
            String progress =
                    p.isMissingNode() || p.isNull()
                            ? ""
                            : String.format(
                                    Locale.ROOT,
                                    "%d/%d",
                                    p.path("step").asLong(),
                                    p.path("total_steps").asLong());
            JsonNode reg = j.path("registered");
            String model =
                    reg.isObject()
                            ? reg.path("model").asText() + " v" + reg.path("version").asLong()
                            : j.path("model_name").asText("");
            rows.add(
                    new String[] {
                        j.path("job_id").asText(),
                        j.path("status").asText(),
                        j.path("method").asText(""),
                        progress,
                        model,
                        time(j.path("updated_at").asText())
                    });
        }
        table(rows);
        out.println(page.path("total").asLong() + " job(s)");
        return 0;
    }

    private int models(List<String> args) {
        if (!args.isEmpty()) {
            JsonNode versions = get("/api/v1/models/" + enc(args.get(0)) + "/versions?size=50");
            List<String[]> rows = new ArrayList<>();
            rows.add(
                    new String[] {
                        "VERSION",
                        "STAGE",
                        "ALIASES",
                        "METHOD",
                        "PRIMARY METRIC",
                        "GATE",
                        "JOB",
                        "CREATED"
                    });
            for (JsonNode v : versions.path("items")) {
                String primary = v.path("primary_metric").asText("");
                JsonNode value =
                        v.path("metrics").path("tuned_metrics").path(primary).path("value");
                rows.add(
                        new String[] {
                            v.path("version").asText(),
                            v.path("stage").asText(),
                            join(v.path("aliases")),
                            v.path("method").asText(),
                            primary.isEmpty() ? "" : primary + " " + fmt(value.asDouble()),
                            v.path("gate").path("passed").asBoolean() ? "passed" : "failed",
                            v.path("job_id").asText(),
                            time(v.path("created_at").asText())
                        });
            }
            table(rows);
            return 0;
        }
        JsonNode page = get("/api/v1/models?size=100");
        List<String[]> rows = new ArrayList<>();
        rows.add(new String[] {"MODEL", "TASK", "VERSIONS", "LATEST", "PRODUCTION", "ALIASES"});
        for (JsonNode m : page.path("items")) {
            List<String> aliases = new ArrayList<>();
            m.path("aliases")
                    .fields()
                    .forEachRemaining(e -> aliases.add(e.getKey() + "=v" + e.getValue().asText()));
            rows.add(
                    new String[] {
                        m.path("name").asText(),
                        m.path("task").asText(),
                        m.path("versions").asText(),
                        m.path("latest_version").asText(""),
                        m.path("production_version").isNull()
                                ? "-"
                                : m.path("production_version").asText("-"),
                        String.join(",", aliases)
                    });
        }
        table(rows);
        return 0;
    }

    // --- watch -------------------------------------------------------------------------------

    private int watch(String jobId) {
        out.println("watching job " + jobId + " (Ctrl-C stops watching, not the job)");
        Instant started = Instant.now();
        HttpRequest request =
                HttpRequest.newBuilder(uri("/api/v1/jobs/" + enc(jobId) + "/events?wait=true"))
                        .header("Accept", "text/event-stream")
                        .GET()
                        .build();
        HttpResponse<java.io.InputStream> response;
        try {
            response = http.send(request, HttpResponse.BodyHandlers.ofInputStream());
        } catch (IOException e) {
            throw unreachable(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 130;
        }
        if (response.statusCode() != 200) {
            try (var body = response.body()) {
                ok(
                        new StringResponse(
                                response.statusCode(),
                                new String(body.readAllBytes(), StandardCharsets.UTF_8)),
                        "watching " + jobId);
            } catch (IOException e) {
                throw unreachable(e);
            }
        }
        String finalStatus = null;
        String stage = "";
        try (BufferedReader reader =
                new BufferedReader(
                        new InputStreamReader(response.body(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = reader.readLine()) != null) {
                if (!line.startsWith("data:")) {
                    continue;
                }
                JsonNode event = JSON.readTree(line.substring(5));
                String type = event.path("type").asText();
                JsonNode s = event.path("summary");
                if (type.equals("TrainingProgress")) {
                    progress(s);
                    continue;
                }
                String status = event.path("job_status").asText();
                String text = describe(type, s);
                if (text != null) {
                    endProgressLine();
                    out.printf(
                            "%s  %-13s %s%n",
                            time(event.path("occurred_at").asText()),
                            type.equals("JobStatusChanged") ? s.path("status").asText() : stage,
                            text);
                }
                if (type.equals("JobStatusChanged")) {
                    stage = s.path("status").asText();
                }
                if (event.path("terminal").asBoolean()) {
                    finalStatus = status;
                }
            }
        } catch (IOException e) {
            throw new CliException(
                    "the event stream of " + jobId + " broke off: " + e.getMessage());
        }
        endProgressLine();
        Duration took = Duration.between(started, Instant.now());
        JsonNode job = get("/api/v1/jobs/" + enc(jobId));
        finalStatus = job.path("status").asText(finalStatus == null ? "?" : finalStatus);
        out.printf("%njob %s %s after %s%n", jobId, finalStatus, human(took));
        switch (finalStatus) {
            case "SUCCEEDED" -> {
                JsonNode reg = job.path("registered");
                if (reg.isObject()) {
                    summary(reg.path("model").asText(), reg.path("version").asLong());
                } else {
                    out.println(job.path("status_message").asText(""));
                }
                return 0;
            }
            case "FAILED" -> {
                JsonNode f = job.path("failure");
                out.printf(
                        "failed in %s (%s): %s%n",
                        f.path("stage").asText(),
                        f.path("code").asText(),
                        f.path("reason").asText());
                return 1;
            }
            default -> {
                out.println(job.path("status_message").asText(""));
                return 2;
            }
        }
    }

    private String lastProgress = "";

    private void progress(JsonNode s) {
        long step = s.path("step").asLong();
        long total = Math.max(1, s.path("total_steps").asLong());
        int width = 30;
        int filled = (int) Math.min(width, width * step / total);
        String bar = "#".repeat(filled) + ".".repeat(width - filled);
        String line =
                String.format(
                        Locale.ROOT,
                        "  TRAINING      [%s] %3d%% step %d/%d loss %.4f ETA %s",
                        bar,
                        100 * step / total,
                        step,
                        total,
                        s.path("loss").asDouble(),
                        human(Duration.ofSeconds(s.path("eta_seconds").asLong())));
        if (tty) {
            out.print("\r" + line);
            lastProgress = line;
        } else if (step == total || step % Math.max(1, total / 10) == 0) {
            out.println(line);
        }
    }

    private void endProgressLine() {
        if (tty && !lastProgress.isEmpty()) {
            out.println();
            lastProgress = "";
        }
    }

    private static String describe(String type, JsonNode s) {
        return switch (type) {
            case "JobRequested" ->
                    "requested: "
                            + s.path("display_name").asText()
                            + " ("
                            + s.path("method").asText()
                            + " on "
                            + s.path("base_model").asText()
                            + ")";
            case "JobStatusChanged" ->
                    s.has("percent_done")
                            ? String.format(
                                    Locale.ROOT,
                                    "%3.0f%% %s",
                                    s.path("percent_done").asDouble(),
                                    s.path("message").asText(""))
                            : s.path("message").asText("");
            case "JobFailed" ->
                    "FAILED " + s.path("error_code").asText() + ": " + s.path("message").asText();
            case "CancelJob" -> "cancel requested: " + s.path("reason").asText();
            case "DatasetIngested" ->
                    String.format(
                            Locale.ROOT,
                            "ingested %d records (%d bad), sha256 %.12s",
                            s.path("valid_records").asLong(),
                            s.path("bad_records").asLong(),
                            s.path("raw_sha256").asText());
            case "DatasetPrepared" ->
                    String.format(
                            Locale.ROOT,
                            "prepared train %d / validation %d / test %d (%d duplicates removed)",
                            s.path("train").asLong(),
                            s.path("validation").asLong(),
                            s.path("test").asLong(),
                            s.path("exact_duplicates_removed").asLong()
                                    + s.path("near_duplicates_removed").asLong());
            case "TrainingCompleted" ->
                    method(s)
                            + String.format(
                                    Locale.ROOT,
                                    "trained %d steps in %.1fs on %s, final loss %.4f, %,d of %,d parameters trained",
                                    s.path("steps").asLong(),
                                    s.path("duration_seconds").asDouble(),
                                    s.path("device").asText(),
                                    s.path("final_loss").asDouble(),
                                    s.path("trainable_parameters").asLong(),
                                    s.path("total_parameters").asLong());
            case "EvaluationCompleted" ->
                    method(s)
                            + String.format(
                                    Locale.ROOT,
                                    "evaluated: %s %s tuned vs %s base; gate %s",
                                    s.path("primary_metric").asText(),
                                    fmt(s.path("tuned").path("value").asDouble()),
                                    fmt(s.path("base").path("value").asDouble()),
                                    s.path("gate_passed").asBoolean() ? "passed" : "failed");
            case "ModelRegistered" ->
                    "registered "
                            + s.path("model_name").asText()
                            + " version "
                            + s.path("version").asLong();
            default -> null;
        };
    }

    /** "lora: " before a comparison method's training and evaluation lines; else nothing. */
    private static String method(JsonNode summary) {
        String method = summary.path("method").asText("");
        return method.isEmpty() ? "" : method + ": ";
    }

    /** The evaluation table and where to look next. */
    private void summary(String model, long version) {
        JsonNode v = get("/api/v1/models/" + enc(model) + "/versions/" + version);
        JsonNode tuned = v.path("metrics").path("tuned_metrics");
        JsonNode base = v.path("metrics").path("base_metrics");
        out.printf(
                "%nmodel %s version %d (stage %s, gate %s)%n%n",
                model,
                version,
                v.path("stage").asText(),
                v.path("gate").path("passed").asBoolean() ? "passed" : "failed");
        List<String[]> rows = new ArrayList<>();
        rows.add(new String[] {"METRIC", "BASE [95% CI]", "TUNED [95% CI]", "CHANGE"});
        TreeSet<String> names = new TreeSet<>();
        tuned.fieldNames().forEachRemaining(names::add);
        for (String n : names) {
            JsonNode t = tuned.path(n);
            JsonNode b = base.path(n);
            rows.add(
                    new String[] {
                        n,
                        b.isMissingNode() ? "-" : ci(b),
                        ci(t),
                        b.isMissingNode()
                                ? ""
                                : String.format(
                                        Locale.ROOT,
                                        "%+.3f",
                                        t.path("value").asDouble() - b.path("value").asDouble())
                    });
        }
        table(rows);
        out.println();
        out.println("where to look next:");
        out.println(
                "  version     " + registry + "/api/v1/models/" + model + "/versions/" + version);
        out.println(
                "  downloads   "
                        + registry
                        + "/api/v1/models/"
                        + model
                        + "/versions/"
                        + version
                        + "/downloads");
        String report = v.path("report_uri").asText();
        String comparison = "";
        for (JsonNode d :
                get("/api/v1/models/" + enc(model) + "/versions/" + version + "/downloads")) {
            if (d.path("name").asText().equals("report.html")) {
                report = d.path("url").asText() + "  (valid for an hour)";
            }
            if (d.path("name").asText().equals("comparison.html")) {
                comparison = d.path("url").asText() + "  (valid for an hour)";
            }
        }
        out.println("  report      " + report);
        if (!comparison.isEmpty()) {
            out.println("  comparison  " + comparison);
        }
        out.println("  API docs    " + registry + "/q/swagger-ui");
        out.println("  metrics     http://127.0.0.1:9090 (Prometheus, when installed)");
    }

    private static String ci(JsonNode m) {
        return String.format(
                Locale.ROOT,
                "%.3f [%.3f, %.3f]",
                m.path("value").asDouble(),
                m.path("ci_lower").asDouble(),
                m.path("ci_upper").asDouble());
    }

    // --- plumbing ----------------------------------------------------------------------------

    private JsonNode get(String path) {
        HttpRequest.Builder b =
                HttpRequest.newBuilder(uri(path)).header("Authorization", "Bearer " + token).GET();
        return ok(send(b), "GET " + path);
    }

    private HttpResponse<String> send(HttpRequest.Builder request) {
        try {
            return http.send(
                    request.timeout(Duration.ofSeconds(60)).build(),
                    HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw unreachable(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CliException("interrupted");
        }
    }

    private CliException unreachable(IOException e) {
        String why = e instanceof ConnectException ? "nothing answers there" : e.getMessage();
        return new CliException(
                "cannot reach the registry at "
                        + registry
                        + " ("
                        + why
                        + "); start it with ./platform up");
    }

    private record StringResponse(int status, String body) {}

    private static JsonNode ok(HttpResponse<String> r, String what) {
        return ok(new StringResponse(r.statusCode(), r.body()), what);
    }

    private static JsonNode ok(StringResponse r, String what) {
        JsonNode body;
        try {
            body = r.body().isBlank() ? JSON.createObjectNode() : JSON.readTree(r.body());
        } catch (IOException e) {
            throw new CliException(what + " failed with HTTP " + r.status() + ": " + r.body());
        }
        if (r.status() >= 400) {
            StringBuilder m =
                    new StringBuilder(
                            what + " failed: " + body.path("detail").asText(body.toString()));
            for (JsonNode e : body.path("errors")) {
                m.append("\n  - ").append(e.asText());
            }
            throw new CliException(m.toString());
        }
        return body;
    }

    private URI uri(String path) {
        return URI.create(registry + path);
    }

    private void table(List<String[]> rows) {
        int[] width = new int[rows.get(0).length];
        for (String[] r : rows) {
            for (int i = 0; i < r.length; i++) {
                width[i] = Math.max(width[i], r[i].length());
            }
        }
        for (String[] r : rows) {
            StringBuilder line = new StringBuilder();
            for (int i = 0; i < r.length; i++) {
                line.append(String.format("%-" + (width[i] + 2) + "s", r[i]));
            }
            out.println(line.toString().stripTrailing());
        }
    }

    private static String single(List<String> args, String usage) {
        if (args.size() != 1) {
            throw new CliException("usage: ./platform " + usage);
        }
        return args.get(0);
    }

    private static String join(JsonNode array) {
        List<String> s = new ArrayList<>();
        for (Iterator<JsonNode> it = array.elements(); it.hasNext(); ) {
            s.add(it.next().asText());
        }
        return String.join(",", s);
    }

    private static String time(String iso) {
        try {
            return iso.isEmpty() ? "" : CLOCK.format(Instant.parse(iso));
        } catch (RuntimeException e) {
            return iso;
        }
    }

    private static String fmt(double v) {
        return String.format(Locale.ROOT, "%.3f", v);
    }

    static String human(Duration d) {
        long s = d.toSeconds();
        return s >= 60 ? (s / 60) + "m" + String.format("%02d", s % 60) + "s" : s + "s";
    }

    private static String enc(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8).replace("+", "%20");
    }
}
