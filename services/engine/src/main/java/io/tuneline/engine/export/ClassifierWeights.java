package io.tuneline.engine.export;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Parameter;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import io.tuneline.engine.model.SequenceClassifier;
import java.io.IOException;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

/**
 * A classifier's weights in safetensors files under Hugging Face names: {@code model.safetensors}
 * holds the model itself (a LoRA adapter merged in, W + (alpha/r) B A, so any BERT loader can use
 * it); {@link PeftAdapter} writes a LoRA adapter alone.
 */
public final class ClassifierWeights {
    private ClassifierWeights() {}

    /** Writes the model with any LoRA update merged into its base weights. */
    public static void writeMerged(SequenceClassifier classifier, Path file) throws IOException {
        SafetensorsWriter writer = new SafetensorsWriter().metadata("format", "pt");
        Map<String, NDArray> merged = classifier.mergedWeights();
        merged.forEach(
                (name, array) ->
                        writer.addF32(name, array.getShape().getShape(), array.toFloatArray()));
        writer.write(file);
        merged.values().forEach(NDArray::close);
    }

    /** Loads merged weights written by {@link #writeMerged} into a classifier of the same shape. */
    public static int load(SequenceClassifier classifier, Path file) {
        int loaded = 0;
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            for (Map.Entry<String, Parameter> e : classifier.namedParameters().entrySet()) {
                String name = e.getKey();
                if (name.contains(".lora_")) {
                    continue;
                }
                if (!f.names().contains(name)) {
                    throw new IllegalArgumentException(
                            file
                                    + " has no tensor "
                                    + name
                                    + "; was it written for another model?");
                }
                NDArray target = e.getValue().getArray();
                long[] want = target.getShape().getShape();
                long[] have = f.info(name).shape();
                if (!Arrays.equals(want, have)) {
                    throw new IllegalArgumentException(
                            file
                                    + ": "
                                    + name
                                    + " has shape "
                                    + Arrays.toString(have)
                                    + ", the model needs "
                                    + Arrays.toString(want));
                }
                target.set(FloatBuffer.wrap(f.floats(name)));
                loaded++;
            }
        }
        return loaded;
    }
}
