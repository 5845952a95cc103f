package io.tuneline.engine.method;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.nn.Parameter;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.model.CausalLanguageModel;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.Checkpointing;
import io.tuneline.engine.train.ClassifierTrainer;
import io.tuneline.engine.train.LabelledText;
import io.tuneline.engine.train.LmExample;
import io.tuneline.engine.train.TrainingListener;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.engine.train.Validation;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Training with prompt tuning and P-tuning on every family through the engine's own trainers: the
 * loss falls, the base stays bit-identical, and a run resumed from a checkpoint takes the
 * uninterrupted run's steps (the checkpoint holds the prompt encoder, which PEFT's export drops).
 */
class PromptTrainingTest {
    private static final int MAX_LEN = 12;
    private static EngineRuntime runtime;
    private static HuggingFaceTokenizer tokenizer;

    @BeforeAll
    static void start() throws Exception {
        runtime = EngineRuntime.start(2);
        try (InputStream in = ModelCatalog.resolve(ModelCatalog.MINILM_L6).tokenizer().open()) {
            tokenizer =
                    HuggingFaceTokenizer.newInstance(
                            in, Map.of("truncation", "true", "maxLength", "" + MAX_LEN));
        }
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    /** 12 sequences of 8 tokens following one rule, so a prompt can learn something. */
    static List<LmExample> sequences(int vocab) {
        List<LmExample> out = new ArrayList<>();
        for (int k = 0; k < 12; k++) {
            long[] ids = new long[8];
            for (int j = 0; j < ids.length; j++) {
                ids[j] = (3 + k + 2L * j) % vocab;
            }
            out.add(LmExample.of(ids));
        }
        return out;
    }

    static List<LabelledText> sentiment() throws Exception {
        ObjectMapper json = new ObjectMapper();
        List<LabelledText> out = new ArrayList<>();
        try (BufferedReader r =
                new BufferedReader(
                        new InputStreamReader(
                                PromptTrainingTest.class.getResourceAsStream(
                                        "/datasets/sentiment-train.jsonl"),
                                StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null && out.size() < 16; ) {
                JsonNode n = json.readTree(line);
                out.add(
                        new LabelledText(
                                n.get("text").asText(),
                                n.get("label").asText().equals("pos") ? 1 : 0));
            }
        }
        return out;
    }

    record Run(List<Double> losses, Map<String, float[]> base, Map<String, float[]> method) {}

    /** Trains {@code method} on {@code family} for 4 epochs of 3 steps; returns the step losses. */
    private Run train(
            PromptFamilies family,
            FineTuningMethod method,
            Path base,
            Checkpointing checkpointing,
            Map<String, float[]> baseBefore)
            throws Exception {
        TrainingSettings settings = new TrainingSettings(4, 4, 3e-2f, 0.01f, 0.1f, 1f, MAX_LEN, 42);
        List<Double> losses = new ArrayList<>();
        TrainingListener listener = r -> losses.add(r.loss());
        try (Model m = family.load(base, runtime)) {
            TunableModel model = PromptFamilies.tunable(m);
            Engine.getInstance().setRandomSeed(7);
            method.apply(model, m.getNDManager());
            model.baseParameters()
                    .forEach(
                            (name, p) -> {
                                if (!name.startsWith("classifier.")) {
                                    baseBefore.putIfAbsent(name, p.getArray().toFloatArray());
                                }
                            });
            if (model instanceof SequenceClassifier c) {
                new ClassifierTrainer(tokenizer)
                        .train(
                                m,
                                c,
                                sentiment().subList(0, 12),
                                settings,
                                Validation.none(),
                                listener,
                                checkpointing);
            } else {
                new CausalLmTrainer()
                        .train(
                                m,
                                (CausalLanguageModel) model,
                                sequences(family.vocab()),
                                settings,
                                Validation.none(),
                                listener,
                                checkpointing);
            }
            Map<String, float[]> after = new LinkedHashMap<>();
            model.baseParameters().forEach((n, p) -> after.put(n, p.getArray().toFloatArray()));
            Map<String, float[]> trained = new LinkedHashMap<>();
            for (Map.Entry<String, Parameter> e : model.methodParameters().entrySet()) {
                trained.put(e.getKey(), e.getValue().getArray().toFloatArray());
            }
            return new Run(losses, after, trained);
        }
    }

    @Test
    void everyFamilyLearnsKeepsItsBaseAndResumesExactly(@TempDir Path dir) throws Exception {
        Map<PromptFamilies, FineTuningMethod> cases = new LinkedHashMap<>();
        cases.put(
                PromptFamilies.BERT,
                new FineTuningMethod.Prompt(4, FineTuningMethod.Prompt.Init.VOCAB, List.of()));
        // The Hugging Face heads learn through the first virtual token; BERT's pooler is base
        // (frozen, as PEFT's SEQ_CLS leaves it) and must stay bit-identical.
        cases.put(
                PromptFamilies.BERT_POOLER,
                new FineTuningMethod.PTuning(4, FineTuningMethod.PTuning.Encoder.MLP, 16, 0f));
        cases.put(
                PromptFamilies.ROBERTA,
                new FineTuningMethod.Prompt(4, FineTuningMethod.Prompt.Init.RANDOM, List.of()));
        cases.put(
                PromptFamilies.GPT2,
                new FineTuningMethod.PTuning(4, FineTuningMethod.PTuning.Encoder.MLP, 0, 0f));
        cases.put(
                PromptFamilies.LLAMA_GQA,
                new FineTuningMethod.Prompt(3, FineTuningMethod.Prompt.Init.RANDOM, List.of()));
        // LSTM dropout on: a resumed run must replay its masks.
        cases.put(
                PromptFamilies.QWEN3,
                new FineTuningMethod.PTuning(3, FineTuningMethod.PTuning.Encoder.LSTM, 8, 0.2f));
        for (Map.Entry<PromptFamilies, FineTuningMethod> c : cases.entrySet()) {
            PromptFamilies family = c.getKey();
            FineTuningMethod method = c.getValue();
            Path base = family.write(dir.resolve(family.name()), runtime, 21);
            Map<String, float[]> before = new LinkedHashMap<>();
            Run full =
                    train(
                            family,
                            method,
                            base,
                            new Checkpointing(
                                    dir.resolve(family + "-ckpt"),
                                    2,
                                    Optional.empty(),
                                    (d, s) -> {}),
                            before);
            double first =
                    full.losses().subList(0, 3).stream()
                            .mapToDouble(d -> d)
                            .average()
                            .orElseThrow();
            double last =
                    full.losses().subList(9, 12).stream()
                            .mapToDouble(d -> d)
                            .average()
                            .orElseThrow();
            System.out.printf(
                    "%s %s: mean step loss epoch 1 %.4f -> epoch 4 %.4f%n",
                    family, method.describe(), first, last);
            assertThat(full.losses()).hasSize(12);
            assertThat(last).as("%s learns", family).isLessThan(first);
            before.forEach(
                    (name, values) ->
                            assertThat(full.base().get(name))
                                    .as("%s: frozen %s", family, name)
                                    .isEqualTo(values));
            Run resumed =
                    train(
                            family,
                            method,
                            base,
                            new Checkpointing(
                                    dir.resolve(family + "-ckpt2"),
                                    0,
                                    Optional.of(
                                            dir.resolve(family + "-ckpt").resolve("step-00000004")),
                                    (d, s) -> {}),
                            new LinkedHashMap<>());
            assertThat(resumed.losses()).hasSize(8);
            for (int i = 0; i < 8; i++) {
                assertThat(resumed.losses().get(i))
                        .as("%s: loss of step %d", family, i + 5)
                        .isCloseTo(full.losses().get(i + 4), within(1e-5));
            }
            full.method()
                    .forEach(
                            (name, values) -> {
                                float[] again = resumed.method().get(name);
                                assertThat(PromptLearningTest.maxDiff(again, values))
                                        .as("%s: %s after the resumed run", family, name)
                                        .isLessThan(1e-5);
                            });
        }
    }

    @Test
    void theClassifierTrainerCutsTextsToThePositionsTheVirtualTokensLeave(@TempDir Path dir)
            throws Exception {
        Path base = PromptFamilies.BERT.write(dir, runtime, 23);
        try (Model m = PromptFamilies.BERT.load(base, runtime)) {
            SequenceClassifier c = (SequenceClassifier) m.getBlock();
            new FineTuningMethod.Prompt(34, FineTuningMethod.Prompt.Init.RANDOM, List.of())
                    .apply(c, m.getNDManager());
            // 40 positions less 34 virtual tokens: 6 real tokens fit, the texts are longer.
            assertThat(c.maxSequenceLength()).isEqualTo(6);
            float[][] p =
                    new ClassifierTrainer(tokenizer)
                            .predict(
                                    m,
                                    c,
                                    List.of("a rather long sentence that runs past six tokens"),
                                    MAX_LEN);
            assertThat(p[0]).hasSize(PromptFamilies.LABELS);
        }
    }
}
