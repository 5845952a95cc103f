package io.tuneline.engine.method;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.nn.NativeCopy;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

/**
 * A tuned model whose method cannot be merged into the base ({@link FineTuningMethod#mergeable()}
 * false: prompt and P-tuning, prefix tuning, bottleneck adapters) is the base's Hugging Face
 * directory plus two files this class writes beside it: {@value #CONFIG} (the method and its
 * settings, as the method describes itself) and {@value #WEIGHTS} (every parameter the method
 * added, under the model's names: {@link TunableModel#deltaParameters()}, the prompt encoder's and
 * prefix projection's weights included, which PEFT's export drops; and the task head, which trains
 * with every method: {@link #stateParameters}). The engine rebuilds "base + method" from them:
 * evaluation scores the tuned model, and a next job can start from it. The PEFT or {@code
 * adapters}-library export for Python users is written separately.
 */
public final class MethodState {
    /** The method and its settings. */
    public static final String CONFIG = "tuneline_method.json";

    /** The method's parameters, float32. */
    public static final String WEIGHTS = "tuneline_method.safetensors";

    private static final ObjectMapper JSON = new ObjectMapper();

    private MethodState() {}

    /** Whether {@code dir} holds a method's state beside its base weights. */
    public static boolean present(Path dir) {
        return Files.isRegularFile(dir.resolve(CONFIG));
    }

    /**
     * Writes {@code method}'s description and {@code model}'s method parameters into {@code dir}.
     */
    public static void write(TunableModel model, FineTuningMethod method, Path dir)
            throws IOException {
        ObjectNode description = method.describe();
        Files.createDirectories(dir);
        SafetensorsWriter writer = new SafetensorsWriter().metadata("format", "pt");
        for (Map.Entry<String, Parameter> e : stateParameters(model).entrySet()) {
            NDArray a = e.getValue().getArray();
            writer.addF32(e.getKey(), a.getShape().getShape(), a.toFloatArray());
        }
        writer.write(dir.resolve(WEIGHTS));
        Path tmp = dir.resolve(CONFIG + ".tmp");
        JSON.writerWithDefaultPrettyPrinter().writeValue(tmp.toFile(), description);
        Files.move(tmp, dir.resolve(CONFIG), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }

    /**
     * What the state holds: every parameter a method added ({@link TunableModel#deltaParameters()})
     * and the task head ({@link TunableModel#headModules()}, PEFT's {@code modules_to_save}), which
     * trains with every method and is no part of the base directory.
     */
    public static Map<String, Parameter> stateParameters(TunableModel model) {
        Map<String, Parameter> p = new java.util.LinkedHashMap<>(model.deltaParameters());
        model.namedParameters()
                .forEach(
                        (name, param) -> {
                            for (String head : model.headModules()) {
                                if (name.startsWith(head + ".")) {
                                    p.put(name, param);
                                }
                            }
                        });
        return p;
    }

    /** The description {@link #write} stored. */
    public static ObjectNode description(Path dir) throws IOException {
        JsonNode node = JSON.readTree(dir.resolve(CONFIG).toFile());
        if (!(node instanceof ObjectNode o)) {
            throw new IOException(dir.resolve(CONFIG) + " is not a JSON object");
        }
        return o;
    }

    /**
     * {@link #restore} when {@code dir} holds a method's state; nothing otherwise (a mergeable
     * method's tuned model is its weights alone).
     */
    public static java.util.Optional<FineTuningMethod> restoreIfPresent(
            TunableModel model, Path dir, NDManager manager) throws IOException {
        return present(dir)
                ? java.util.Optional.of(restore(model, dir, manager))
                : java.util.Optional.empty();
    }

    /**
     * Rebuilds the method stored in {@code dir} on {@code model} (whose base weights are loaded
     * already) and copies its trained parameters in; the model is then the tuned model.
     *
     * @throws IllegalArgumentException when a parameter is missing or has another shape, naming it
     */
    public static FineTuningMethod restore(TunableModel model, Path dir, NDManager manager)
            throws IOException {
        FineTuningMethod method = FineTuningMethod.fromDescription(description(dir));
        method.apply(model, manager);
        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(WEIGHTS))) {
            for (Map.Entry<String, Parameter> e : stateParameters(model).entrySet()) {
                String name = e.getKey();
                if (!f.names().contains(name)) {
                    throw new IllegalArgumentException(
                            dir.resolve(WEIGHTS)
                                    + " has no tensor "
                                    + name
                                    + ": it was written for another model or method");
                }
                NDArray target = e.getValue().getArray();
                long[] want = target.getShape().getShape();
                if (!Arrays.equals(want, f.info(name).shape())) {
                    throw new IllegalArgumentException(
                            dir.resolve(WEIGHTS)
                                    + ": "
                                    + name
                                    + " has shape "
                                    + Arrays.toString(f.info(name).shape())
                                    + ", the model's is "
                                    + Arrays.toString(want));
                }
                NativeCopy.copyInto(target, f.floats(name));
            }
        }
        return method;
    }
}
