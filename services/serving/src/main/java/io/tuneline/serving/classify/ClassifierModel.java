package io.tuneline.serving.classify;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.export.ClassifierWeights;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.model.ClassifierPredictions;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.serving.load.LoadedModel;
import io.tuneline.serving.load.ModelQueue;
import io.tuneline.serving.load.ServingConfig;
import io.tuneline.serving.load.ServingMetrics;
import io.tuneline.serving.registry.RegisteredVersion;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A tuned classifier in memory, built as evaluation builds it to score a version: the directory's
 * {@code config.json} encoder, its merged {@code model.safetensors} (LoRA and full fine-tuning are
 * merged into it), and for a method that cannot be merged (prompt, P-tuning, prefix, adapters) the
 * method state restored on top ({@link MethodState#restoreIfPresent}). Inference only. Each version
 * is loaded whole: the engine has no block that shares one base between methods yet.
 */
public final class ClassifierModel implements LoadedModel {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final RegisteredVersion version;
    private final Model model;
    private final SequenceClassifier classifier;
    private final HuggingFaceTokenizer tokenizer;
    private final List<String> labels;
    private final int maxLength;
    private final int batchSize;
    private final long parameterBytes;
    private final ModelQueue queue;
    private final ClassifyBatcher batcher;

    private ClassifierModel(
            RegisteredVersion version,
            Model model,
            SequenceClassifier classifier,
            HuggingFaceTokenizer tokenizer,
            List<String> labels,
            int maxLength,
            ServingConfig config,
            ServingMetrics metrics) {
        this.version = version;
        this.model = model;
        this.classifier = classifier;
        this.tokenizer = tokenizer;
        this.labels = labels;
        this.maxLength = maxLength;
        this.batchSize = config.batch().maxSize();
        this.parameterBytes = LoadedModel.parameterBytes(classifier);
        this.queue = new ModelQueue(version.id(), config.limits().maxQueued());
        this.batcher =
                new ClassifyBatcher(
                        version.id(),
                        queue,
                        batchSize,
                        config.batch().maxWait(),
                        this::probabilities,
                        metrics.batchInputs(version.model()));
    }

    /**
     * Loads the classifier directory {@code dir} ({@code config.json} with {@code id2label}, {@code
     * model.safetensors}, {@code tokenizer.json}, and the method state when there is one).
     */
    public static ClassifierModel load(
            EngineRuntime runtime,
            RegisteredVersion version,
            Path dir,
            ServingConfig config,
            ServingMetrics metrics)
            throws IOException {
        PretrainedModel pretrained = ModelCatalog.resolve(dir.toString());
        if (pretrained.architecture() != PretrainedModel.Architecture.BERT) {
            throw new IllegalArgumentException(
                    version.id() + " is not a BERT-family classifier directory");
        }
        List<String> labels = labels(dir.resolve(ModelCatalog.CONFIG));
        Path weights = dir.resolve(ModelCatalog.WEIGHTS);
        SequenceClassifier classifier =
                ClassifierWeights.classifierFor(weights, pretrained.config(), labels.size(), 0f);
        int wanted = version.maxSeqLength().orElse(128);
        Model model = Model.newInstance("serving", runtime.device(), EngineRuntime.ENGINE);
        try {
            int positions = pretrained.config().maxSequenceLength();
            classifier.initialize(
                    model.getNDManager(),
                    DataType.FLOAT32,
                    new Shape(1, Math.min(wanted, positions)),
                    new Shape(1, Math.min(wanted, positions)));
            ClassifierWeights.load(classifier, weights);
            MethodState.restoreIfPresent(classifier, dir, model.getNDManager());
            model.setBlock(classifier);
            int maxLength = Math.min(wanted, classifier.maxSequenceLength());
            // No tokenizer padding: DJL's default pads a batch with [PAD] ids that its encodings
            // mark as real tokens, and ClassifierPredictions attends to every id it is given, so a
            // text's answer would depend on its batch mates. Unpadded, ClassifierPredictions pads
            // with a zero mask, and a text gets the same answer alone or batched.
            HuggingFaceTokenizer tokenizer =
                    HuggingFaceTokenizer.newInstance(
                            dir.resolve(ModelCatalog.TOKENIZER),
                            Map.of(
                                    "truncation",
                                    "true",
                                    "padding",
                                    "false",
                                    "maxLength",
                                    Integer.toString(maxLength)));
            return new ClassifierModel(
                    version, model, classifier, tokenizer, labels, maxLength, config, metrics);
        } catch (IOException | RuntimeException e) {
            model.close();
            throw e;
        }
    }

    /** {@code id2label} in id order; {@code LABEL_i} (transformers' default) when absent. */
    static List<String> labels(Path config) throws IOException {
        JsonNode root = JSON.readTree(config.toFile());
        TreeMap<Integer, String> byId = new TreeMap<>();
        root.path("id2label")
                .fields()
                .forEachRemaining(
                        e -> byId.put(Integer.parseInt(e.getKey()), e.getValue().asText()));
        if (byId.isEmpty()) {
            int n = root.path("num_labels").asInt(2);
            List<String> out = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                out.add("LABEL_" + i);
            }
            return out;
        }
        return List.copyOf(byId.values());
    }

    @Override
    public RegisteredVersion version() {
        return version;
    }

    @Override
    public String task() {
        return "classification";
    }

    public List<String> labels() {
        return labels;
    }

    public int maxLength() {
        return maxLength;
    }

    @Override
    public ModelQueue queue() {
        return queue;
    }

    @Override
    public long parameterBytes() {
        return parameterBytes;
    }

    /**
     * Class probabilities of each text, in {@link #labels()} order, computed in one engine batch
     * with the texts of concurrent requests ({@link ClassifyBatcher}).
     *
     * @throws io.tuneline.serving.api.ServingException 429 when too many requests wait already
     */
    public double[][] classify(List<String> texts) {
        return batcher.classify(texts);
    }

    /** What evaluation computes to score a split ({@link ClassifierPredictions}). */
    private double[][] probabilities(List<String> texts) {
        return ClassifierPredictions.probabilities(
                model, classifier, tokenizer, texts, maxLength, batchSize);
    }

    @Override
    public void close() {
        batcher.close();
        tokenizer.close();
        model.close();
    }
}
