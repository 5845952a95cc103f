package io.tuneline.engine.model;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.runtime.EngineRuntime;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ClassifierPredictionsTest {
    @TempDir Path dir;

    @Test
    void aTextsProbabilitiesDoNotDependOnTheTextsBatchedWithIt() throws Exception {
        EngineRuntime runtime = EngineRuntime.start(2);
        Path tokenizerFile = dir.resolve("tokenizer.json");
        try (InputStream in =
                getClass()
                        .getClassLoader()
                        .getResourceAsStream("all-minilm-l6-v2-tokenizer.json")) {
            Files.copy(in, tokenizerFile);
        }
        // A random encoder with the mean head, whose pooling is where pads would count.
        BertConfig config =
                new BertConfig(30522, 16, 1, 2, 32, 64, 2, 1e-12f, BertConfig.BERT, 0)
                        .withoutDropout();
        SequenceClassifier classifier = new SequenceClassifier(new BertEncoder(config), 3, 0f);
        // A tokenizer that pads every batch to its longest text, as DJL's does by default.
        try (Model model =
                        Model.newInstance("predictions", runtime.device(), EngineRuntime.ENGINE);
                HuggingFaceTokenizer tokenizer =
                        HuggingFaceTokenizer.newInstance(
                                tokenizerFile,
                                Map.of(
                                        "padding",
                                        "true",
                                        "truncation",
                                        "true",
                                        "maxLength",
                                        "32"))) {
            ai.djl.engine.Engine.getInstance().setRandomSeed(3);
            classifier.initialize(
                    model.getNDManager(), DataType.FLOAT32, new Shape(1, 8), new Shape(1, 8));
            model.setBlock(classifier);
            String shortText = "fine";
            String longText = "a much longer text that makes every other text of its batch padded";

            double[][] alone =
                    ClassifierPredictions.probabilities(
                            model, classifier, tokenizer, List.of(shortText), 32, 8);
            double[][] batched =
                    ClassifierPredictions.probabilities(
                            model, classifier, tokenizer, List.of(shortText, longText), 32, 8);

            assertThat(tokenizer.batchEncode(List.of(shortText, longText))[0].getIds().length)
                    .as("the tokenizer padded the short text")
                    .isGreaterThan(tokenizer.encode(shortText).getIds().length);
            for (int k = 0; k < 3; k++) {
                assertThat(batched[0][k])
                        .isCloseTo(alone[0][k], org.assertj.core.data.Offset.offset(1e-6));
            }
        }
    }
}
