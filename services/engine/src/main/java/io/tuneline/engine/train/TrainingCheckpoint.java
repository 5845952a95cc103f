package io.tuneline.engine.train;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Parameter;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import io.tuneline.engine.nn.NativeCopy;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A checkpoint on disk: {@code trainable.safetensors} (the trained parameters under their Hugging
 * Face names; frozen ones come from the base model again), {@code optimizer.safetensors} (AdamW's
 * moments) and {@code state.json} (a {@link TrainingState}), written last so a directory with a
 * {@code state.json} is complete.
 */
public final class TrainingCheckpoint {
    public static final String TRAINABLE = "trainable.safetensors";
    public static final String OPTIMIZER = "optimizer.safetensors";
    public static final String STATE = "state.json";

    /** 2: AdamW's moments are PyTorch's exp_avg and exp_avg_sq (1: as DJL's kernel kept them). */
    static final int FORMAT = 2;

    private static final ObjectMapper JSON = new ObjectMapper();

    private TrainingCheckpoint() {}

    public static void save(
            Path dir, Map<String, Parameter> trained, AdamW optimizer, TrainingState state)
            throws IOException {
        Files.createDirectories(dir);
        SafetensorsWriter weights = new SafetensorsWriter().metadata("format", "pt");
        trained.forEach((name, p) -> add(weights, name, p.getArray()));
        weights.write(dir.resolve(TRAINABLE));
        SafetensorsWriter moments =
                new SafetensorsWriter().metadata("step", Long.toString(optimizer.step()));
        optimizer.state().forEach((name, a) -> add(moments, name, a));
        moments.write(dir.resolve(OPTIMIZER));
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("format", FORMAT);
        json.put("state", state);
        JSON.writerWithDefaultPrettyPrinter().writeValue(dir.resolve(STATE).toFile(), json);
    }

    /** Whether {@code dir} holds a complete checkpoint. */
    public static boolean exists(Path dir) {
        return Files.isRegularFile(dir.resolve(STATE));
    }

    /** Where the run stood at this checkpoint, without loading its tensors. */
    public static TrainingState state(Path dir) {
        try {
            var root = JSON.readTree(dir.resolve(STATE).toFile());
            int format = root.path("format").asInt();
            if (format != FORMAT && format != 1) {
                throw new IllegalArgumentException(
                        dir
                                + " is a checkpoint of format "
                                + root.path("format")
                                + "; this engine reads formats 1 and "
                                + FORMAT);
            }
            return JSON.treeToValue(root.path("state"), TrainingState.class);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + dir.resolve(STATE), e);
        }
    }

    /** Restores the trained parameters and the optimizer; returns where the run stood. */
    public static TrainingState load(Path dir, Map<String, Parameter> trained, AdamW optimizer) {
        TrainingState state = state(dir);
        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(TRAINABLE))) {
            for (Map.Entry<String, Parameter> e : trained.entrySet()) {
                if (!f.names().contains(e.getKey())) {
                    throw new IllegalArgumentException(
                            dir
                                    + " has no "
                                    + e.getKey()
                                    + ": it was written for another model or method");
                }
                NDArray target = e.getValue().getArray();
                long[] want = target.getShape().getShape();
                if (!Arrays.equals(want, f.info(e.getKey()).shape())) {
                    throw new IllegalArgumentException(
                            dir + ": " + e.getKey() + " has another shape than the model's");
                }
                NativeCopy.copyInto(target, f.floats(e.getKey()));
            }
        }
        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(OPTIMIZER))) {
            Map<String, float[]> values = new LinkedHashMap<>();
            Map<String, long[]> shapes = new LinkedHashMap<>();
            for (String name : f.names()) {
                values.put(name, f.floats(name));
                shapes.put(name, f.info(name).shape());
            }
            optimizer.restore(state.step(), values, shapes, format(dir));
        }
        return state;
    }

    private static int format(Path dir) {
        try {
            return JSON.readTree(dir.resolve(STATE).toFile()).path("format").asInt();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + dir.resolve(STATE), e);
        }
    }

    private static void add(SafetensorsWriter writer, String name, NDArray a) {
        writer.addF32(name, a.getShape().getShape(), a.toFloatArray());
    }
}
