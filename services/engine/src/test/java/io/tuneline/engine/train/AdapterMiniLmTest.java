package io.tuneline.engine.train;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.io.onnx.OnnxGraph;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.model.bert.BertOnnxImport;
import io.tuneline.engine.runtime.EngineRuntime;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Bottleneck adapters on the real MiniLM-L6 (ONNX weights, real tokenizer, the shipped sentiment
 * split): both placements beat the untuned model clearly on the held-out sentences, with only the
 * adapters and the head trained.
 */
class AdapterMiniLmTest {
    private static final List<String> LABELS = List.of("neg", "pos");
    private static final int MAX_LEN = 32;

    private static byte[] onnx;
    private static HuggingFaceTokenizer tokenizer;
    private static EngineRuntime runtime;

    @BeforeAll
    static void load() throws Exception {
        runtime = EngineRuntime.start(2);
        PretrainedModel model = ModelCatalog.resolve(ModelCatalog.MINILM_L6);
        try (InputStream in = model.weights().open()) {
            onnx = in.readAllBytes();
        }
        try (InputStream in = model.tokenizer().open()) {
            tokenizer =
                    HuggingFaceTokenizer.newInstance(
                            in, Map.of("truncation", "true", "maxLength", "" + MAX_LEN));
        }
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    private static Model newModel(SequenceClassifier classifier) throws Exception {
        Model model =
                Model.newInstance("minilm-classifier", runtime.device(), EngineRuntime.ENGINE);
        classifier.initialize(
                model.getNDManager(),
                DataType.FLOAT32,
                new Shape(1, MAX_LEN),
                new Shape(1, MAX_LEN));
        BertOnnxImport.load(OnnxGraph.parse(onnx), classifier.encoder());
        model.setBlock(classifier);
        return model;
    }

    @Test
    void bothPlacementsClearlyBeatTheUntunedModelOnHeldOutData() throws Exception {
        List<LabelledText> train = read("/datasets/sentiment-train.jsonl");
        List<LabelledText> test = read("/datasets/sentiment-test.jsonl");
        for (FineTuningMethod.Adapter adapter :
                List.of(FineTuningMethod.Adapter.pfeiffer(), FineTuningMethod.Adapter.houlsby())) {
            ai.djl.engine.Engine.getInstance().setRandomSeed(5);
            SequenceClassifier classifier =
                    new SequenceClassifier(new BertEncoder(BertConfig.miniLmL6()), 2, 0.1f);
            try (Model model = newModel(classifier)) {
                ClassifierTrainer trainer = new ClassifierTrainer(tokenizer);
                ParameterCounts counts = adapter.apply(classifier, model.getNDManager());
                double before = accuracy(trainer, model, classifier, test);
                List<TrainingListener.StepReport> steps = new CopyOnWriteArrayList<>();
                double lastLoss =
                        trainer.train(
                                model,
                                classifier,
                                train,
                                new TrainingSettings(6, 8, 2e-3f, 0.01f, 0.1f, 1f, MAX_LEN, 42),
                                steps::add);
                double after = accuracy(trainer, model, classifier, test);
                System.out.printf(
                        "Adapter %s on MiniLM: trainable %d of %d (%.2f%%); held-out accuracy"
                                + " %.3f untuned -> %.3f tuned; final loss %.4f; %.0f tokens/s%n",
                        adapter.placement(),
                        counts.trainable(),
                        counts.total(),
                        100 * counts.trainableFraction(),
                        before,
                        after,
                        lastLoss,
                        steps.get(steps.size() - 1).tokensPerSecond());
                assertThat(steps).hasSize(36);
                assertThat(after).as(adapter.placement().name()).isGreaterThanOrEqualTo(0.85);
                assertThat(after - before)
                        .as(adapter.placement().name())
                        .isGreaterThanOrEqualTo(0.25);
            }
        }
    }

    private static double accuracy(
            ClassifierTrainer trainer,
            Model model,
            SequenceClassifier classifier,
            List<LabelledText> data) {
        float[][] probs =
                trainer.predict(
                        model, classifier, data.stream().map(LabelledText::text).toList(), MAX_LEN);
        int correct = 0;
        for (int i = 0; i < data.size(); i++) {
            int predicted = probs[i][1] > probs[i][0] ? 1 : 0;
            if (predicted == data.get(i).label()) {
                correct++;
            }
        }
        return (double) correct / data.size();
    }

    private static List<LabelledText> read(String resource) throws Exception {
        ObjectMapper json = new ObjectMapper();
        List<LabelledText> out = new ArrayList<>();
        try (BufferedReader r =
                new BufferedReader(
                        new InputStreamReader(
                                AdapterMiniLmTest.class.getResourceAsStream(resource),
                                StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                JsonNode n = json.readTree(line);
                out.add(
                        new LabelledText(
                                n.get("text").asText(), LABELS.indexOf(n.get("label").asText())));
            }
        }
        return out;
    }
}
