package io.tuneline.training.worker;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.S3Uri;
import io.tuneline.engine.train.TrainingCheckpoint;
import io.tuneline.engine.train.TrainingState;
import io.tuneline.training.run.RunStore;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A run's checkpoints in the object store, so an attempt on another process or node can resume:
 * {@code runs/{jobId}/checkpoints/step-<n>/} holds the engine's checkpoint files, and {@code
 * runs/{jobId}/checkpoints/latest.json} names the newest complete one. The pointer is written only
 * after every file is stored, and older checkpoints are deleted only after it, so a crash at any
 * moment leaves a usable checkpoint behind.
 */
public final class RunCheckpoints {
    static final String LATEST = "latest.json";
    private static final List<String> FILES =
            List.of(
                    TrainingCheckpoint.TRAINABLE,
                    TrainingCheckpoint.OPTIMIZER,
                    TrainingCheckpoint.STATE);
    private static final ObjectMapper JSON = new ObjectMapper();

    private final ArtifactStore store;
    private final String jobId;

    public RunCheckpoints(ArtifactStore store, String jobId) {
        this.store = store;
        this.jobId = jobId;
    }

    private String prefix() {
        return RunStore.runPrefix(jobId) + "checkpoints/";
    }

    /** Copies the newest checkpoint into {@code into}; empty when the run has none yet. */
    public Optional<Path> fetchLatest(Path into) throws IOException {
        S3Uri pointer = store.uri(prefix() + LATEST);
        if (!store.exists(pointer)) {
            return Optional.empty();
        }
        JsonNode latest;
        try (InputStream in = store.get(pointer)) {
            latest = JSON.readTree(in);
        }
        String dir = latest.path("prefix").asText();
        Path target = Files.createDirectories(into.resolve("step-" + latest.path("step").asLong()));
        for (String name : FILES) {
            try (InputStream in = store.get(store.uri(dir + name))) {
                Files.copy(in, target.resolve(name), StandardCopyOption.REPLACE_EXISTING);
            }
        }
        return Optional.of(target);
    }

    /** Stores a finished local checkpoint, points {@code latest.json} at it, drops older ones. */
    public void publish(Path checkpoint, TrainingState state) throws IOException {
        String dir = prefix() + String.format("step-%08d/", state.step());
        for (String name : FILES) {
            store.put(store.uri(dir + name), checkpoint.resolve(name), "application/octet-stream");
        }
        store.put(
                store.uri(prefix() + LATEST),
                JSON.writeValueAsBytes(Map.of("step", state.step(), "prefix", dir)),
                "application/json");
        for (S3Uri old : store.list(store.uri(prefix()))) {
            if (!old.key().startsWith(dir) && !old.key().endsWith(LATEST)) {
                store.delete(old);
            }
        }
    }
}
