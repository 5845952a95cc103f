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
import io.tuneline.engine.export.PeftAdapter;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.model.ClassifierHead;
import io.tuneline.engine.model.ClassifierPredictions;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.SharedBase;
import io.tuneline.engine.model.bert.BertEncoder;
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
import java.util.Optional;
import java.util.TreeMap;

/**
 * A tuned classifier in memory, built as evaluation builds it to score a version: the directory's
 * {@code config.json} encoder, its merged {@code model.safetensors} (LoRA and full fine-tuning are
 * merged into it), and for a method that cannot be merged (prompt, P-tuning, prefix, adapters) the
 * method state restored on top ({@link MethodState#restoreIfPresent}); or, when its base is held
 * once for several versions ({@link io.tuneline.serving.load.SharedBases}), on that base's encoder
 * with the method on top ({@link #loadOnBase}). Inference only.
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
            long parameterBytes,
            ServingConfig config,
            ServingMetrics metrics) {
        this.version = version;
        this.model = model;
        this.classifier = classifier;
        this.tokenizer = tokenizer;
        this.labels = labels;
        this.maxLength = maxLength;
        this.batchSize = config.batch().maxSize();
        this.parameterBytes = parameterBytes;
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
        return build(runtime, version, dir, config, metrics, Optional.empty());
    }

    /**
     * Builds the classifier of {@code dir} on {@code base}'s encoder, in place ({@link
     * SharedBase}): the directory's weights are not read; the method goes on top, from the method
     * state ({@link MethodState}) or the PEFT LoRA adapter under {@code adapter/} (with the head,
     * PEFT's {@code modules_to_save}).
     *
     * @throws IllegalArgumentException when the version cannot compute on the base: another
     *     configuration, the Hugging Face head (its pooler is trained or initialised per run), or
     *     neither a method state nor a LoRA adapter
     */
    public static ClassifierModel loadOnBase(
            EngineRuntime runtime,
            RegisteredVersion version,
            Path dir,
            ServingConfig config,
            ServingMetrics metrics,
            BertEncoder base)
            throws IOException {
        return build(runtime, version, dir, config, metrics, Optional.of(base));
    }

    private static ClassifierModel build(
            EngineRuntime runtime,
            RegisteredVersion version,
            Path dir,
            ServingConfig config,
            ServingMetrics metrics,
            Optional<BertEncoder> base)
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
        Path adapter = dir.resolve(LoadedModel.ADAPTER_DIR);
        if (base.isPresent()) {
            if (classifier.headType() != ClassifierHead.MEAN) {
                throw new IllegalArgumentException(
                        version.id()
                                + " has the Hugging Face head, whose pooler is no part of the"
                                + " shared base");
            }
            if (!pretrained
                    .config()
                    .withoutDropout()
                    .equals(base.get().config().withoutDropout())) {
                throw new IllegalArgumentException(
                        version.id() + "'s config.json is not its base's configuration");
            }
            if (!MethodState.present(dir) && !PeftAdapter.isLora(adapter)) {
                throw new IllegalArgumentException(
                        version.id() + " has neither a method state nor a LoRA adapter");
            }
        }
        int wanted = version.maxSeqLength().orElse(128);
        Model model = Model.newInstance("serving", runtime.device(), EngineRuntime.ENGINE);
        try {
            int positions = pretrained.config().maxSequenceLength();
            if (base.isPresent()) {
                SharedBase.share(base.get(), classifier.encoder());
            }
            classifier.initialize(
                    model.getNDManager(),
                    DataType.FLOAT32,
                    new Shape(1, Math.min(wanted, positions)),
                    new Shape(1, Math.min(wanted, positions)));
            if (base.isEmpty()) {
                ClassifierWeights.load(classifier, weights);
                MethodState.restoreIfPresent(classifier, dir, model.getNDManager());
            } else if (MethodState.present(dir)) {
                MethodState.restore(classifier, dir, model.getNDManager());
            } else {
                PeftAdapter.restore(classifier, adapter, model.getNDManager());
            }
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
            long bytes =
                    LoadedModel.parameterBytes(
                            classifier,
                            base.isPresent()
                                    ? SharedBase.sharedArrays(base.get(), classifier)
                                    : java.util.Set.of());
            return new ClassifierModel(
                    version,
                    model,
                    classifier,
                    tokenizer,
                    labels,
                    maxLength,
                    bytes,
                    config,
                    metrics);
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

    @Override
    public io.tuneline.engine.model.TunableModel tunable() {
        return classifier;
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
