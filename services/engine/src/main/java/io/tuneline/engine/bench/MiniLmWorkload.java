package io.tuneline.engine.bench;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.export.ClassifierWeights;
import io.tuneline.engine.io.onnx.OnnxGraph;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.model.bert.BertOnnxImport;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.ClassifierTrainer;
import io.tuneline.engine.train.LabelledText;
import io.tuneline.engine.train.TrainingListener;
import io.tuneline.engine.train.TrainingSettings;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * The real all-MiniLM-L6-v2 as a two-class sequence classifier, batches of 8 sentences of exactly
 * 32 tokens, timed through {@link ClassifierTrainer} with tokenization included. freeze trains the
 * top two layers and the head; lora is r=8 on query/value. Writes {@code minilm.safetensors} (the
 * untrained classifier, freshly imported from ONNX) for {@code bench/torch_minilm_train.py}.
 */
final class MiniLmWorkload implements TrainingThroughput.Workload {
    static final int BATCH = 8;
    static final int SEQ = 32;
    static final String EXPORT = "minilm.safetensors";

    private final Model model;
    private final SequenceClassifier classifier;
    private final HuggingFaceTokenizer tokenizer;
    private final long trainable;

    private MiniLmWorkload(
            Model model,
            SequenceClassifier classifier,
            HuggingFaceTokenizer tokenizer,
            long trainable) {
        this.model = model;
        this.classifier = classifier;
        this.tokenizer = tokenizer;
        this.trainable = trainable;
    }

    static MiniLmWorkload open(EngineRuntime runtime, String method, Path dir) throws IOException {
        PretrainedModel base = ModelCatalog.resolve(ModelCatalog.MINILM_L6);
        OnnxGraph onnx;
        try (InputStream in = base.weights().open()) {
            onnx = OnnxGraph.parse(in);
        }
        HuggingFaceTokenizer tokenizer;
        try (InputStream in = base.tokenizer().open()) {
            tokenizer =
                    HuggingFaceTokenizer.newInstance(
                            in, Map.of("truncation", "true", "maxLength", Integer.toString(SEQ)));
        }
        SequenceClassifier classifier =
                new SequenceClassifier(new BertEncoder(BertConfig.miniLmL6()), 2, 0.1f);
        Model model = Model.newInstance("bench", runtime.device(), EngineRuntime.ENGINE);
        try {
            classifier.initialize(
                    model.getNDManager(), DataType.FLOAT32, new Shape(1, SEQ), new Shape(1, SEQ));
            BertOnnxImport.load(onnx, classifier.encoder());
            model.setBlock(classifier);
            Path export = dir.resolve(EXPORT);
            if (!Files.exists(export)) {
                ClassifierWeights.writeMerged(classifier, export);
            }
            long trainable =
                    TrainingThroughput.method(method, FineTuningMethod.Lora.defaults())
                            .apply(classifier, model.getNDManager())
                            .trainable();
            return new MiniLmWorkload(model, classifier, tokenizer, trainable);
        } catch (RuntimeException | IOException e) {
            model.close();
            tokenizer.close();
            throw e;
        }
    }

    @Override
    public long trainable() {
        return trainable;
    }

    @Override
    public int tokensPerStep() {
        return BATCH * SEQ;
    }

    @Override
    public void train(int steps, long seed, TrainingListener listener) {
        new ClassifierTrainer(tokenizer)
                .train(
                        model,
                        classifier,
                        texts(steps * BATCH, seed),
                        new TrainingSettings(1, BATCH, 2e-4f, 0.01f, 0f, 1f, SEQ, 42),
                        listener);
    }

    /** Sentences long enough to fill all 32 tokens, so both sides process the same token count. */
    static List<LabelledText> texts(int n, long seed) {
        String[] words = {
            "the", "film", "was", "quiet", "bright", "service", "slow", "kind", "staff", "music",
            "long", "story", "ending", "warm", "cold", "room", "price", "fair", "great", "poor"
        };
        Random random = new Random(seed);
        List<LabelledText> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            StringBuilder s = new StringBuilder();
            for (int w = 0; w < 40; w++) {
                s.append(words[random.nextInt(words.length)]).append(' ');
            }
            out.add(new LabelledText(s.toString().trim(), i % 2));
        }
        return out;
    }

    @Override
    public void close() {
        model.close();
        tokenizer.close();
    }
}
