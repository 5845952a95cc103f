package io.tuneline.serving.classify;

import com.fasterxml.jackson.databind.JsonNode;
import io.tuneline.serving.api.ServingException;
import io.tuneline.serving.load.LoadedModel;
import io.tuneline.serving.load.LoadedModels;
import io.tuneline.serving.load.ModelQueue;
import io.tuneline.serving.load.ServingConfig;
import io.tuneline.serving.load.ServingMetrics;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code POST /v1/models/{name}[:{version|alias}]/classify} with {@code {"inputs": ["text", ...]}}:
 * each input's most likely label and every label's probability, the inputs scored in batches.
 */
@Path("/v1/models/{model}/classify")
public class ClassifyResource {
    static final String ENDPOINT = "classify";

    private final LoadedModels models;
    private final ServingConfig config;
    private final ServingMetrics metrics;

    public ClassifyResource(LoadedModels models, ServingConfig config, ServingMetrics metrics) {
        this.models = models;
        this.config = config;
        this.metrics = metrics;
    }

    public record Prediction(String label, Map<String, Double> probabilities) {}

    public record Classification(String model, List<Prediction> predictions) {}

    @POST
    @Consumes(MediaType.APPLICATION_JSON)
    @Produces(MediaType.APPLICATION_JSON)
    public Classification classify(@PathParam("model") String requested, JsonNode body) {
        long start = System.nanoTime();
        String tag = ServingMetrics.UNKNOWN_MODEL;
        int status = 500;
        try {
            List<String> inputs = inputs(body);
            ClassifierModel classifier;
            double[][] probs;
            for (int attempt = 0; ; attempt++) {
                LoadedModel loaded = models.get(requested);
                tag = loaded.version().model();
                if (!(loaded instanceof ClassifierModel c)) {
                    throw ServingException.badRequest(
                            loaded.version().id()
                                    + " is a "
                                    + loaded.task()
                                    + " model, not a classifier; use /v1/completions or"
                                    + " /v1/chat/completions");
                }
                classifier = c;
                try {
                    probs = classifier.classify(inputs);
                    break;
                } catch (ModelQueue.Retired e) {
                    // The alias moved between resolving it and queueing: the name now resolves
                    // to the version that replaced this one.
                    if (attempt > 0) {
                        throw e;
                    }
                }
            }
            List<Prediction> out = new ArrayList<>();
            List<String> labels = classifier.labels();
            for (double[] row : probs) {
                Map<String, Double> p = new LinkedHashMap<>();
                int best = 0;
                for (int k = 0; k < row.length; k++) {
                    p.put(labels.get(k), row[k]);
                    if (row[k] > row[best]) {
                        best = k;
                    }
                }
                out.add(new Prediction(labels.get(best), p));
            }
            status = 200;
            return new Classification(classifier.version().id(), out);
        } catch (ServingException e) {
            status = e.status();
            throw e;
        } finally {
            metrics.record(tag, ENDPOINT, status, start);
        }
    }

    private List<String> inputs(JsonNode body) {
        JsonNode inputs = body == null ? null : body.get("inputs");
        if (inputs == null || !inputs.isArray()) {
            throw ServingException.badRequest(
                    "the body needs \"inputs\": an array of texts, e.g. {\"inputs\": [\"great"
                            + " film\"]}");
        }
        if (inputs.isEmpty()) {
            throw ServingException.badRequest("\"inputs\" is empty; give at least one text");
        }
        ServingConfig.Limits limits = config.limits();
        if (inputs.size() > limits.maxInputs()) {
            throw ServingException.tooLarge(
                    "\"inputs\" has "
                            + inputs.size()
                            + " texts; at most "
                            + limits.maxInputs()
                            + " per request (tuneline.serving.limits.max-inputs)");
        }
        List<String> out = new ArrayList<>();
        for (int i = 0; i < inputs.size(); i++) {
            JsonNode t = inputs.get(i);
            if (!t.isTextual() || t.asText().isBlank()) {
                throw ServingException.badRequest("inputs[" + i + "] is not a non-empty text");
            }
            if (t.asText().length() > limits.maxInputChars()) {
                throw ServingException.tooLarge(
                        "inputs["
                                + i
                                + "] has "
                                + t.asText().length()
                                + " characters; at most "
                                + limits.maxInputChars()
                                + " (tuneline.serving.limits.max-input-chars)");
            }
            out.add(t.asText());
        }
        return out;
    }
}
