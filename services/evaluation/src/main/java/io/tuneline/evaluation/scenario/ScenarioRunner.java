package io.tuneline.evaluation.scenario;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.evaluation.run.EvaluationFailedException;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.ScenarioResult;
import io.tuneline.proto.v1.ScenarioSpec;
import io.tuneline.proto.v1.TrainingCompleted;
import jakarta.enterprise.context.ApplicationScoped;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.jboss.logging.Logger;

/**
 * The real-scenario test ({@code evaluation.scenario}): loads the trained run into the serving
 * service as a candidate ({@code PUT /v1/candidates/{name}}), replays the held-out split as
 * requests through the endpoints users call, at the job's concurrency and rate, and measures
 * latency, throughput, errors and whether each served answer equals the offline evaluation's; the
 * candidate is unloaded afterwards, whatever happened.
 */
@ApplicationScoped
public class ScenarioRunner {
    private static final Logger LOG = Logger.getLogger(ScenarioRunner.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int EXAMPLES = 5;

    private final Optional<URI> servingUrl;
    private final Optional<String> token;
    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

    public ScenarioRunner(
            @ConfigProperty(name = "tuneline.evaluation.serving.url") Optional<URI> servingUrl,
            @ConfigProperty(name = "tuneline.evaluation.serving.token") Optional<String> token) {
        this.servingUrl = servingUrl;
        this.token = token;
    }

    /** One request of the scenario and the answer the offline evaluation gave (if any). */
    public record Request(String path, ObjectNode body, Optional<String> expected) {}

    /** A classifier's requests: one text each, expected to get the offline prediction's label. */
    public static List<Request> classify(
            String candidate, List<String> texts, List<String> labels) {
        List<Request> out = new ArrayList<>();
        for (int i = 0; i < texts.size(); i++) {
            ObjectNode body = JSON.createObjectNode();
            body.putArray("inputs").add(texts.get(i));
            out.add(
                    new Request(
                            "/v1/models/" + candidate + "/classify",
                            body,
                            Optional.of(labels.get(i))));
        }
        return out;
    }

    /**
     * A causal LM's requests: a greedy completion of each prompt, {@code maxTokens[i]} tokens at
     * most, expected to equal the offline answer when there is one.
     */
    public static List<Request> complete(
            String candidate,
            List<String> prompts,
            int[] maxTokens,
            List<Optional<String>> expected) {
        List<Request> out = new ArrayList<>();
        for (int i = 0; i < prompts.size(); i++) {
            ObjectNode body = JSON.createObjectNode();
            body.put("model", candidate);
            body.put("prompt", prompts.get(i));
            body.put("max_tokens", maxTokens[i]);
            body.put("temperature", 0);
            out.add(new Request("/v1/completions", body, expected.get(i)));
        }
        return out;
    }

    /** How many requests {@code spec} replays at most: {@code max_requests}, 100 when unset. */
    public static int maxRequests(ScenarioSpec spec) {
        return spec.getMaxRequests() > 0 ? spec.getMaxRequests() : 100;
    }

    /**
     * The serving service's name for {@code training}'s run: its run id (or job id) with what a
     * candidate name may not hold replaced.
     */
    public static String candidateName(TrainingCompleted training) {
        String id = training.getRunId().isBlank() ? training.getJobId() : training.getRunId();
        String name = id.replaceAll("[^A-Za-z0-9._-]", "-");
        name = name.replaceFirst("^[^A-Za-z0-9]+", "");
        return name.isEmpty() ? "candidate" : name.substring(0, Math.min(128, name.length()));
    }

    /**
     * Loads {@code training}'s model into the serving service, replays {@code requests} (the first
     * {@code max_requests}) and unloads it.
     *
     * @throws EvaluationFailedException when no serving service is configured or the candidate
     *     cannot be loaded (requests that fail are counted, not thrown)
     */
    public ScenarioResult run(
            TrainingCompleted training, ScenarioSpec spec, List<Request> requests) {
        URI base =
                servingUrl.orElseThrow(
                        () ->
                                new EvaluationFailedException(
                                        "the job asks for evaluation.scenario, but no serving"
                                                + " service is configured"
                                                + " (tuneline.evaluation.serving.url,"
                                                + " SERVING_URL)"));
        String name = candidateName(training);
        List<Request> replayed = requests.subList(0, Math.min(maxRequests(spec), requests.size()));
        if (replayed.isEmpty()) {
            throw new EvaluationFailedException(
                    "the scenario has no requests: the held-out split is empty");
        }
        load(base, name, training);
        try {
            return replay(base, name, spec, replayed);
        } finally {
            unload(base, name);
        }
    }

    private ScenarioResult replay(
            URI base, String name, ScenarioSpec spec, List<Request> requests) {
        int clients = spec.getConcurrency() > 0 ? spec.getConcurrency() : 4;
        double rate = spec.getRatePerSecond();
        long[] latencies = new long[requests.size()];
        boolean[] answered = new boolean[requests.size()];
        AtomicInteger next = new AtomicInteger();
        AtomicInteger errors = new AtomicInteger();
        AtomicInteger compared = new AtomicInteger();
        AtomicInteger agreed = new AtomicInteger();
        ConcurrentLinkedQueue<String> examples = new ConcurrentLinkedQueue<>();
        long started = System.nanoTime();
        AtomicLong finished = new AtomicLong(started);
        ExecutorService pool = Executors.newFixedThreadPool(clients);
        try {
            List<Future<?>> running = new ArrayList<>();
            for (int c = 0; c < clients; c++) {
                running.add(
                        pool.submit(
                                () -> {
                                    int i;
                                    while ((i = next.getAndIncrement()) < requests.size()) {
                                        if (rate > 0) {
                                            // Open loop: request i starts at i / rate seconds.
                                            long due = started + (long) (i / rate * 1e9);
                                            long wait = due - System.nanoTime();
                                            if (wait > 0) {
                                                java.util.concurrent.locks.LockSupport.parkNanos(
                                                        wait);
                                            }
                                        }
                                        Request r = requests.get(i);
                                        long t0 = System.nanoTime();
                                        Optional<String> answer = send(base, r, i, examples);
                                        long t1 = System.nanoTime();
                                        finished.accumulateAndGet(t1, Math::max);
                                        if (answer.isEmpty()) {
                                            errors.incrementAndGet();
                                            continue;
                                        }
                                        latencies[i] = t1 - t0;
                                        answered[i] = true;
                                        if (r.expected().isPresent()) {
                                            compared.incrementAndGet();
                                            if (r.expected().get().trim().equals(answer.get())) {
                                                agreed.incrementAndGet();
                                            } else if (examples.size() < EXAMPLES) {
                                                examples.add(
                                                        "request "
                                                                + i
                                                                + ": served '"
                                                                + answer.get()
                                                                + "', offline '"
                                                                + r.expected().get().trim()
                                                                + "'");
                                            }
                                        }
                                    }
                                    return null;
                                }));
            }
            for (Future<?> f : running) {
                f.get();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new EvaluationFailedException("the scenario was interrupted", e);
        } catch (java.util.concurrent.ExecutionException e) {
            throw new EvaluationFailedException(
                    "the scenario's client failed: " + e.getCause(), e.getCause());
        } finally {
            pool.shutdownNow();
        }
        double wall = (finished.get() - started) / 1e9;
        double[] ms = new double[requests.size() - errors.get()];
        int k = 0;
        for (int i = 0; i < latencies.length; i++) {
            if (answered[i]) {
                ms[k++] = latencies[i] / 1e6;
            }
        }
        Arrays.sort(ms);
        ScenarioResult result =
                ScenarioResult.newBuilder()
                        .setServingUrl(base.toString())
                        .setModel(name + ":candidate")
                        .setRequests(requests.size())
                        .setErrors(errors.get())
                        .setErrorRate((double) errors.get() / requests.size())
                        .setP50Ms(percentile(ms, 50))
                        .setP95Ms(percentile(ms, 95))
                        .setP99Ms(percentile(ms, 99))
                        .setRequestsPerSecond(wall > 0 ? ms.length / wall : 0)
                        .setWallSeconds(wall)
                        .setAgreement(
                                compared.get() == 0 ? -1 : (double) agreed.get() / compared.get())
                        .addAllExamples(examples)
                        .build();
        LOG.infof(
                "scenario against %s: %d requests, %d errors, p50 %.0f ms, p95 %.0f ms, %.1f"
                        + " requests/s, agreement %.3f",
                result.getModel(),
                result.getRequests(),
                result.getErrors(),
                result.getP50Ms(),
                result.getP95Ms(),
                result.getRequestsPerSecond(),
                result.getAgreement());
        return result;
    }

    /** Nearest rank; 0 for no values. */
    static double percentile(double[] sorted, double p) {
        if (sorted.length == 0) {
            return 0;
        }
        int rank = (int) Math.ceil(p / 100 * sorted.length);
        return sorted[Math.max(0, Math.min(sorted.length - 1, rank - 1))];
    }

    /** The served answer (a label, or a completion's text), empty when the request failed. */
    private Optional<String> send(URI base, Request r, int i, ConcurrentLinkedQueue<String> out) {
        try {
            HttpResponse<String> response =
                    http.send(
                            HttpRequest.newBuilder(base.resolve(r.path()))
                                    .timeout(Duration.ofSeconds(120))
                                    .header("Content-Type", "application/json")
                                    .POST(
                                            HttpRequest.BodyPublishers.ofString(
                                                    JSON.writeValueAsString(r.body())))
                                    .build(),
                            HttpResponse.BodyHandlers.ofString());
            if (response.statusCode() != 200) {
                note(
                        out,
                        "request " + i + ": HTTP " + response.statusCode() + " " + response.body());
                return Optional.empty();
            }
            JsonNode body = JSON.readTree(response.body());
            // A classify answer: every input's label, one per line (a recorded request may carry
            // several texts).
            JsonNode predictions = body.path("predictions");
            if (predictions.isArray() && !predictions.isEmpty()) {
                List<String> labels = new ArrayList<>();
                for (JsonNode p : predictions) {
                    if (!p.path("label").isTextual()) {
                        labels = null;
                        break;
                    }
                    labels.add(p.path("label").asText());
                }
                if (labels != null) {
                    return Optional.of(String.join("\n", labels));
                }
            }
            JsonNode choice = body.path("choices").path(0);
            JsonNode text = choice.path("text");
            if (text.isTextual()) {
                return Optional.of(text.asText().trim());
            }
            JsonNode content = choice.path("message").path("content");
            if (content.isTextual()) {
                return Optional.of(content.asText().trim());
            }
            note(out, "request " + i + ": an answer without a label or text: " + response.body());
            return Optional.empty();
        } catch (IOException e) {
            note(out, "request " + i + ": " + e);
            return Optional.empty();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Optional.empty();
        }
    }

    private static void note(ConcurrentLinkedQueue<String> out, String what) {
        if (out.size() < EXAMPLES) {
            out.add(what.length() > 300 ? what.substring(0, 300) + "..." : what);
        }
    }

    private void load(URI base, String name, TrainingCompleted training) {
        ObjectNode body = JSON.createObjectNode();
        ArrayNode files = body.putArray("files");
        for (ArtifactRef f : training.getModelFilesList()) {
            int at = f.getUri().indexOf("/model/");
            if (at < 0) {
                continue;
            }
            files.addObject()
                    .put("path", f.getUri().substring(at + "/model/".length()))
                    .put("uri", f.getUri())
                    .put("sha256", f.getSha256())
                    .put("size_bytes", f.getSizeBytes());
        }
        body.put("method", training.getJob().getMethod().getKindCase().name());
        body.put("base_model", training.getJob().getBaseModel().getRef());
        int maxSeq = training.getJob().getHyperparameters().getMaxSeqLength();
        if (maxSeq > 0) {
            body.put("max_seq_length", maxSeq);
        }
        HttpResponse<String> response;
        URI url = base.resolve("/v1/candidates/" + name);
        try {
            HttpRequest.Builder request =
                    HttpRequest.newBuilder(url)
                            // Downloading and loading a large model takes a while.
                            .timeout(Duration.ofMinutes(10))
                            .header("Content-Type", "application/json")
                            .PUT(
                                    HttpRequest.BodyPublishers.ofString(
                                            JSON.writeValueAsString(body), StandardCharsets.UTF_8));
            token.ifPresent(t -> request.header("Authorization", "Bearer " + t));
            response = http.send(request.build(), HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new EvaluationFailedException(
                    "the scenario cannot reach the serving service at " + url + ": " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new EvaluationFailedException("interrupted while loading the candidate", e);
        }
        if (response.statusCode() != 200) {
            throw new EvaluationFailedException(
                    "the serving service at "
                            + base
                            + " could not load the run as candidate '"
                            + name
                            + "': HTTP "
                            + response.statusCode()
                            + " "
                            + response.body());
        }
        LOG.infof("loaded the run into %s as %s:candidate", base, name);
    }

    private void unload(URI base, String name) {
        try {
            HttpRequest.Builder request =
                    HttpRequest.newBuilder(base.resolve("/v1/candidates/" + name))
                            .timeout(Duration.ofMinutes(2))
                            .DELETE();
            token.ifPresent(t -> request.header("Authorization", "Bearer " + t));
            http.send(request.build(), HttpResponse.BodyHandlers.discarding());
        } catch (IOException e) {
            LOG.warnf("could not unload the candidate %s from %s: %s", name, base, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
