package io.tuneline.training.worker;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.S3Uri;
import io.tuneline.engine.train.TrainingListener.StepReport;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.training.run.RunStore;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Every step of a run as JSON Lines ({@code step, epoch, loss, learning_rate, tokens_per_second}
 * and {@code validation_loss} where measured) at {@code runs/{jobId}/metrics.jsonl}: the loss curve
 * the evaluation report draws. Stored with each checkpoint, so a resumed attempt continues the same
 * curve instead of starting a new one.
 */
public final class MetricsLog {
    static final String FILE = "metrics.jsonl";
    private static final ObjectMapper JSON = new ObjectMapper();

    private final ArtifactStore store;
    private final S3Uri uri;
    private final List<String> lines = new ArrayList<>();

    public MetricsLog(ArtifactStore store, String jobId) {
        this.store = store;
        this.uri = store.uri(RunStore.runPrefix(jobId) + FILE);
    }

    /** Takes over the stored lines up to {@code step} (a resumed attempt's checkpoint). */
    public void resumeAt(long step) throws IOException {
        lines.clear();
        if (!store.exists(uri)) {
            return;
        }
        try (InputStream in = store.get(uri);
                BufferedReader reader =
                        new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            String line;
            while ((line = reader.readLine()) != null) {
                JsonNode row = JSON.readTree(line);
                if (row.path("step").asLong() <= step) {
                    lines.add(line);
                }
            }
        }
    }

    public void add(StepReport r) {
        ObjectNode row = JSON.createObjectNode();
        row.put("step", r.step());
        row.put("epoch", r.epoch());
        row.put("loss", r.loss());
        row.put("learning_rate", r.learningRate());
        row.put("tokens_per_second", r.tokensPerSecond());
        r.validationLoss().ifPresent(v -> row.put("validation_loss", v));
        lines.add(row.toString());
    }

    /** Stores the log so far. */
    public ArtifactRef store() {
        byte[] bytes =
                (String.join("\n", lines) + (lines.isEmpty() ? "" : "\n"))
                        .getBytes(StandardCharsets.UTF_8);
        return store.put(uri, bytes, "application/jsonl");
    }
}
