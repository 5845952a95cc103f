package io.tuneline.engine.export;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Parameter;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import io.tuneline.engine.model.ClassifierHead;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
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
 *
 * <p>Two layouts, one per {@link ClassifierHead}: the mean head's is the encoder's {@code
 * BertModel} names ({@code embeddings.*}, {@code encoder.layer.*}) plus {@code classifier.*}; the
 * Hugging Face head's is exactly what {@code BertForSequenceClassification.save_pretrained} writes
 * ({@code bert.embeddings.*}, {@code bert.encoder.layer.*}, {@code bert.pooler.dense.*}, {@code
 * classifier.*}) or {@code RobertaForSequenceClassification}'s ({@code roberta.embeddings.*},
 * {@code roberta.encoder.layer.*}, {@code classifier.dense.*}, {@code classifier.out_proj.*}; no
 * pooler). {@link #load} reads both and {@link #headOf} tells them apart.
 */
public final class ClassifierWeights {
    public static final String WEIGHTS = "model.safetensors";
    public static final String CONFIG = "config.json";
    public static final String TOKENIZER = "tokenizer.json";

    private static final ObjectMapper JSON = new ObjectMapper();

    private ClassifierWeights() {}

    /**
     * Writes the model with any LoRA update merged into its base weights, in its head's layout
     * ({@link #storedName}).
     */
    public static void writeMerged(SequenceClassifier classifier, Path file) throws IOException {
        SafetensorsWriter writer = new SafetensorsWriter().metadata("format", "pt");
        Map<String, NDArray> merged = classifier.mergedWeights();
        merged.forEach(
                (name, array) ->
                        writer.addF32(
                                storedName(classifier, name),
                                array.getShape().getShape(),
                                array.toFloatArray()));
        writer.write(file);
        merged.values().forEach(NDArray::close);
    }

    /**
     * A parameter's name in the export: as the classifier names it for the mean head; for the
     * Hugging Face head, the base model's ({@code namedParameters} without prefix: encoder and
     * pooler) under transformers' {@code base_model_prefix} ({@code bert.}, {@code roberta.}), the
     * head ({@code classifier.*}) as it is.
     */
    public static String storedName(SequenceClassifier classifier, String name) {
        if (classifier.headType() != ClassifierHead.CLS_POOLER
                || name.startsWith(SequenceClassifier.HEAD + ".")) {
            return name;
        }
        return classifier.encoder().config().modelType() + "." + name;
    }

    /**
     * Which head a {@link #writeMerged} file (or any Hugging Face sequence classification
     * checkpoint) holds: RoBERTa's {@code classifier.out_proj}, or BERT's pooler beside a {@code
     * classifier}, is the Hugging Face head; the rest is the mean head's layout.
     */
    public static ClassifierHead headOf(Path file) {
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            List<String> names = f.names();
            boolean hf =
                    names.contains("classifier.out_proj.weight")
                            || (names.contains("classifier.weight")
                                    && names.contains("bert.pooler.dense.weight"));
            return hf ? ClassifierHead.CLS_POOLER : ClassifierHead.MEAN;
        }
    }

    /**
     * A classifier (not yet initialised) whose head fits {@code file} ({@link #headOf}), for {@link
     * #load} to fill: what evaluation builds to score a tuned model of either layout.
     */
    public static SequenceClassifier classifierFor(
            Path file, BertConfig config, int labels, float dropout) {
        return new SequenceClassifier(new BertEncoder(config), labels, dropout, headOf(file));
    }

    /**
     * The classifier as a Hugging Face model directory: {@code model.safetensors} (merged, as
     * {@link #writeMerged}), {@code config.json} (the encoder's {@code BertConfig} or {@code
     * RobertaConfig} with {@code id2label} and {@code label2id}; {@code tuneline} holds how the
     * head is attached and where the model came from) and a copy of {@code tokenizer}. {@code
     * AutoModel.from_pretrained} reads the encoder from it, and the catalogue takes it as a base
     * model for the next fine-tuning. With the Hugging Face head ({@link
     * ClassifierHead#CLS_POOLER}) it is a standard {@code BertForSequenceClassification} / {@code
     * RobertaForSequenceClassification} directory ({@code architectures}, {@code num_labels},
     * {@code problem_type} {@code single_label_classification}, {@code classifier_dropout}), which
     * {@code AutoModelForSequenceClassification} and {@code pipeline("text-classification")} load
     * as it is.
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
        boolean hf = classifier.headType() == ClassifierHead.CLS_POOLER;
        if (hf) {
            boolean roberta = classifier.encoder().config().modelType().equals(BertConfig.ROBERTA);
            config.putArray("architectures")
                    .add(
                            roberta
                                    ? "RobertaForSequenceClassification"
                                    : "BertForSequenceClassification");
            config.put("num_labels", labels.size());
            config.put("problem_type", "single_label_classification");
            config.put("classifier_dropout", classifier.dropout());
            config.put("initializer_range", 0.02);
            config.put("torch_dtype", "float32");
            if (roberta) {
                // RobertaConfig's defaults, which save_pretrained writes out.
                config.put("bos_token_id", 0);
                config.put("eos_token_id", 2);
            }
        }
        ObjectNode tuneline = config.putObject("tuneline");
        tuneline.put(
                "head",
                hf
                        ? "the Hugging Face head on the first token (pooler or"
                                + " RobertaClassificationHead, dropout, classifier)"
                        : "classifier.weight/bias: a linear layer on the attention-masked mean of"
                                + " the last hidden states (no pooler)");
        tuneline.put("classifier_head", classifier.headType().jobName());
        tuneline.setAll(provenance);
        Files.write(
                dir.resolve(CONFIG),
                JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(config));
        Files.copy(tokenizer, dir.resolve(TOKENIZER), StandardCopyOption.REPLACE_EXISTING);
    }

    /**
     * Loads merged weights written by {@link #writeMerged} into a classifier of the same shape and
     * head ({@link #classifierFor} builds one).
     *
     * @throws IllegalArgumentException when the file holds the other head, or lacks a tensor
     */
    public static int load(SequenceClassifier classifier, Path file) {
        ClassifierHead stored = headOf(file);
        if (stored != classifier.headType()) {
            throw new IllegalArgumentException(
                    file
                            + " holds a classifier with the "
                            + stored.jobName()
                            + " head, this classifier has the "
                            + classifier.headType().jobName()
                            + " head; build it with ClassifierWeights.classifierFor");
        }
        int loaded = 0;
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            for (Map.Entry<String, Parameter> e : classifier.baseParameters().entrySet()) {
                String name = storedName(classifier, e.getKey());
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
