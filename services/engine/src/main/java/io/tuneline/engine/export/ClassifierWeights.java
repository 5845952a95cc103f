package io.tuneline.engine.export;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Parameter;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.nn.NativeCopy;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;

/**
 * A classifier's weights in safetensors files under Hugging Face names: {@code model.safetensors}
 * holds the model itself (a LoRA adapter merged in, W + (alpha/r) B A, so any BERT loader can use
 * it); {@link PeftAdapter} writes a LoRA adapter alone.
 */
public final class ClassifierWeights {
    public static final String WEIGHTS = "model.safetensors";
    public static final String CONFIG = "config.json";
    public static final String TOKENIZER = "tokenizer.json";

    private static final ObjectMapper JSON = new ObjectMapper();

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

    /**
     * The classifier as a Hugging Face model directory: {@code model.safetensors} (merged, as
     * {@link #writeMerged}), {@code config.json} (the encoder's {@code BertConfig} or {@code
     * RobertaConfig} with {@code id2label} and {@code label2id}; {@code tuneline} holds how the
     * head is attached and where the model came from) and a copy of {@code tokenizer}. {@code
     * AutoModel.from_pretrained} reads the encoder from it, and the catalogue takes it as a base
     * model for the next fine-tuning.
     *
     * @param provenance fields stored under {@code tuneline} in config.json (base model, method)
     */
    public static void writeDirectory(
            SequenceClassifier classifier,
            List<String> labels,
            Path tokenizer,
            ObjectNode provenance,
            Path dir)
            throws IOException {
        Files.createDirectories(dir);
        writeMerged(classifier, dir.resolve(WEIGHTS));
        ObjectNode config = classifier.encoder().config().toJson();
        ObjectNode id2label = config.putObject("id2label");
        ObjectNode label2id = config.putObject("label2id");
        for (int i = 0; i < labels.size(); i++) {
            id2label.put(Integer.toString(i), labels.get(i));
            label2id.put(labels.get(i), i);
        }
        ObjectNode tuneline = config.putObject("tuneline");
        tuneline.put(
                "head",
                "classifier.weight/bias: a linear layer on the attention-masked mean of the last"
                        + " hidden states (no pooler)");
        tuneline.setAll(provenance);
        Files.write(
                dir.resolve(CONFIG),
                JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(config));
        Files.copy(tokenizer, dir.resolve(TOKENIZER), StandardCopyOption.REPLACE_EXISTING);
    }

    /** Loads merged weights written by {@link #writeMerged} into a classifier of the same shape. */
    public static int load(SequenceClassifier classifier, Path file) {
        int loaded = 0;
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            for (Map.Entry<String, Parameter> e : classifier.baseParameters().entrySet()) {
                String name = e.getKey();
                if (!f.names().contains(name)) {
                    throw new IllegalArgumentException(
                            file
                                    + " has no tensor "
                                    + name
                                    + "; was it written for another model?");
                }
                NDArray target = e.getValue().getArray();
                NativeCopy.copyInto(target, f.floats(name, target.getShape().getShape()));
                loaded++;
            }
        }
        return loaded;
    }
}
