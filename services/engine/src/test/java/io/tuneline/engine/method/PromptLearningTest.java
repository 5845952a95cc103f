package io.tuneline.engine.method;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.nn.Parameter;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.model.CausalLanguageModel;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.model.gpt2.Gpt2Inference;
import io.tuneline.engine.model.llama.LlamaInference;
import io.tuneline.engine.model.llama.LlamaLmModel;
import io.tuneline.engine.nn.PromptEncoder;
import io.tuneline.engine.nn.SoftPrompt;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmLoss;
import io.tuneline.engine.train.CausalLmTrainer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Prompt tuning and P-tuning on every family through the virtual-token seam: PEFT's parameter
 * counts, forward outputs and one step's gradients against {@code bench/prompt_reference.py} (plain
 * PyTorch, no engine code), {@link MethodState}'s round trip, weight decay, and the position limit.
 */
class PromptLearningTest {
    static final String PYTHON = "/usr/bin/python3";
    private static final ObjectMapper JSON = new ObjectMapper();
    private final EngineRuntime runtime = EngineRuntime.start(2);

    /** Two rows of five tokens, the second padded after three. */
    static final long[][] IDS = {{5, 17, 3, 42, 9}, {8, 1, 33, 0, 0}};

    static final long[][] MASK = {{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}};

    /** What PEFT's {@code print_trainable_parameters} counts a method adding, by the formula. */
    static long methodParameters(FineTuningMethod method, int hidden) {
        if (method instanceof FineTuningMethod.Prompt p) {
            return (long) p.virtualTokens() * hidden; // PromptEmbedding: nn.Embedding(N, H)
        }
        FineTuningMethod.PTuning p = (FineTuningMethod.PTuning) method;
        long n = p.virtualTokens();
        long h = p.encoderHiddenSize() > 0 ? p.encoderHiddenSize() : hidden;
        long embedding = n * hidden;
        if (p.encoder() == FineTuningMethod.PTuning.Encoder.MLP) {
            // Linear(H, h), Linear(h, h), Linear(h, H), each with bias.
            return embedding + (hidden * h + h) + (h * h + h) + (h * hidden + hidden);
        }
        // nn.LSTM(H, h, num_layers=2, bidirectional): per direction 4h x in, 4h x h, two biases
        // of 4h; layer 1 reads 2h. Then Linear(2h, 2h) and Linear(2h, H).
        long layer0 = 2 * (4 * h * hidden + 4 * h * h + 8 * h);
        long layer1 = 2 * (4 * h * 2 * h + 4 * h * h + 8 * h);
        return embedding + layer0 + layer1 + (2 * h * 2 * h + 2 * h) + (2 * h * hidden + hidden);
    }

    static List<FineTuningMethod> methods() {
        return List.of(
                new FineTuningMethod.Prompt(4, FineTuningMethod.Prompt.Init.RANDOM, List.of()),
                new FineTuningMethod.Prompt(3, FineTuningMethod.Prompt.Init.VOCAB, List.of()),
                new FineTuningMethod.Prompt(5, FineTuningMethod.Prompt.Init.TEXT, List.of(7, 11)),
                new FineTuningMethod.PTuning(4, FineTuningMethod.PTuning.Encoder.MLP, 0, 0f),
                new FineTuningMethod.PTuning(3, FineTuningMethod.PTuning.Encoder.MLP, 24, 0f),
                new FineTuningMethod.PTuning(3, FineTuningMethod.PTuning.Encoder.LSTM, 6, 0f));
    }

    @Test
    void trainableAndTotalParametersAreWhatPeftCounts(@TempDir Path dir) throws Exception {
        for (PromptFamilies family : PromptFamilies.values()) {
            Path base = family.write(dir.resolve(family.name()), runtime, 3);
            for (FineTuningMethod method : methods()) {
                try (Model m = family.load(base, runtime)) {
                    TunableModel model = PromptFamilies.tunable(m);
                    long total = ParameterCounts.of(model).total();
                    // The head PEFT trains as modules_to_save (the classifier; none for an LM).
                    long head =
                            model.namedParameters().entrySet().stream()
                                    .filter(e -> e.getKey().startsWith("classifier."))
                                    .mapToLong(e -> e.getValue().getArray().size())
                                    .sum();
                    ParameterCounts counts = method.apply(model, m.getNDManager());
                    long added = methodParameters(method, model.hiddenSize());
                    System.out.printf(
                            "%s %s: trainable %d of %d%n",
                            family, method.describe(), counts.trainable(), counts.total());
                    assertThat(counts.trainable())
                            .as("%s %s", family, method)
                            .isEqualTo(added + head);
                    assertThat(counts.total()).isEqualTo(total + added);
                    assertThat(ParameterCounts.of(model)).isEqualTo(counts);
                    assertThat(model.methodParameters()).isEqualTo(model.deltaParameters());
                    assertThat(model.namedParameters())
                            .containsAllEntriesOf(model.methodParameters());
                    assertThat(method.mergeable()).isFalse();
                    assertThat(FineTuningMethod.fromDescription(method.describe()))
                            .isEqualTo(method);
                }
            }
        }
    }

    @Test
    void softPromptsAndEncoderEmbeddingsAreNotDecayedEncoderWeightsAre(@TempDir Path dir)
            throws Exception {
        Path base = PromptFamilies.GPT2.write(dir, runtime, 4);
        try (Model m = PromptFamilies.GPT2.load(base, runtime)) {
            TunableModel model = PromptFamilies.tunable(m);
            new FineTuningMethod.PTuning(3, FineTuningMethod.PTuning.Encoder.LSTM, 6, 0.1f)
                    .apply(model, m.getNDManager());
            assertThat(model.decays(PromptEncoder.EMBEDDING)).isFalse();
            assertThat(model.decays("prompt_encoder.mlp_head.0.weight")).isTrue();
            assertThat(model.decays("prompt_encoder.mlp_head.0.bias")).isFalse();
            assertThat(model.decays("prompt_encoder.lstm_head.weight_ih_l0")).isTrue();
            assertThat(model.decays("prompt_encoder.lstm_head.bias_hh_l1_reverse")).isFalse();
        }
        try (Model m = PromptFamilies.GPT2.load(base, runtime)) {
            TunableModel model = PromptFamilies.tunable(m);
            FineTuningMethod.Prompt.defaults().apply(model, m.getNDManager());
            assertThat(model.decays(SoftPrompt.EMBEDDING)).isFalse();
        }
    }

    @Test
    void textInitRepeatsOrCutsTheIdsAndCopiesTheirEmbeddings(@TempDir Path dir) throws Exception {
        assertThat(FineTuningMethod.Prompt.textIds(List.of(7, 11), 5))
                .containsExactly(7, 11, 7, 11, 7);
        assertThat(FineTuningMethod.Prompt.textIds(List.of(1, 2, 3, 4), 3))
                .containsExactly(1, 2, 3);
        Path base = PromptFamilies.LLAMA_GQA.write(dir, runtime, 5);
        try (Model m = PromptFamilies.LLAMA_GQA.load(base, runtime)) {
            TunableModel model = PromptFamilies.tunable(m);
            new FineTuningMethod.Prompt(3, FineTuningMethod.Prompt.Init.TEXT, List.of(9, 4))
                    .apply(model, m.getNDManager());
            NDArray table = model.tokenEmbedding().getArray();
            NDArray prompt = model.methodParameters().get(SoftPrompt.EMBEDDING).getArray();
            assertThat(prompt.get(0).toFloatArray()).isEqualTo(table.get(9).toFloatArray());
            assertThat(prompt.get(1).toFloatArray()).isEqualTo(table.get(4).toFloatArray());
            assertThat(prompt.get(2).toFloatArray()).isEqualTo(table.get(9).toFloatArray());
        }
        assertThatThrownBy(
                        () ->
                                new FineTuningMethod.Prompt(
                                        3, FineTuningMethod.Prompt.Init.TEXT, List.of()))
                .hasMessageContaining("TEXT init needs");
    }

    @Test
    void sequencesThatDoNotFitBesideTheVirtualTokensFailSayingSo(@TempDir Path dir)
            throws Exception {
        for (PromptFamilies family : PromptFamilies.values()) {
            Path base = family.write(dir.resolve(family.name()), runtime, 6);
            try (Model m = family.load(base, runtime)) {
                TunableModel model = PromptFamilies.tunable(m);
                new FineTuningMethod.Prompt(20, FineTuningMethod.Prompt.Init.RANDOM, List.of())
                        .apply(model, m.getNDManager());
                long[][] ids = new long[1][family.classifier() ? 21 : 5];
                long[][] mask = new long[1][ids[0].length];
                java.util.Arrays.fill(mask[0], 1);
                try (NDManager s = m.getNDManager().newSubManager()) {
                    assertThatThrownBy(() -> PromptFamilies.forward(m, s, ids, mask, false))
                            .isInstanceOf(IllegalArgumentException.class)
                            .hasMessageContaining("after 20 virtual tokens");
                }
            }
        }
    }

    @Test
    void generationHonoursTheVirtualTokensWithAndWithoutTheKeyValueCache(@TempDir Path dir)
            throws Exception {
        Path base = PromptFamilies.LLAMA_GQA.write(dir.resolve("llama"), runtime, 7);
        try (Model m = PromptFamilies.LLAMA_GQA.load(base, runtime)) {
            LlamaLmModel lm = (LlamaLmModel) m.getBlock();
            long[] plain = LlamaInference.greedy(lm, m.getNDManager(), new long[] {3, 5}, 6, true);
            new FineTuningMethod.PTuning(4, FineTuningMethod.PTuning.Encoder.MLP, 0, 0f)
                    .apply(lm, m.getNDManager());
            long[] cached = LlamaInference.greedy(lm, m.getNDManager(), new long[] {3, 5}, 6, true);
            long[] uncached =
                    LlamaInference.greedy(lm, m.getNDManager(), new long[] {3, 5}, 6, false);
            assertThat(cached).isEqualTo(uncached).isNotEqualTo(plain);
            assertThat(new LlamaInference(m).maxPositions()).isEqualTo(24 - 4);
            // Generation stops where the virtual tokens leave no positions.
            assertThat(new LlamaInference(m).greedyUntil(new long[] {3}, 100, -1)).hasSize(19);
        }
        Path gpt2 = PromptFamilies.GPT2.write(dir.resolve("gpt2"), runtime, 7);
        try (Model m = PromptFamilies.GPT2.load(gpt2, runtime)) {
            TunableModel model = PromptFamilies.tunable(m);
            new FineTuningMethod.Prompt(5, FineTuningMethod.Prompt.Init.VOCAB, List.of())
                    .apply(model, m.getNDManager());
            Gpt2Inference inference = new Gpt2Inference(m);
            assertThat(inference.maxPositions()).isEqualTo(24 - 5);
            assertThat(inference.greedyUntil(new long[] {3}, 100, -1)).hasSize(18);
        }
    }

    @Test
    void forwardAndOneStepsGradientsMatchThePyTorchReference(@TempDir Path dir) throws Exception {
        Map<String, Object[]> cases = new LinkedHashMap<>();
        cases.put("bert-prompt-vocab", new Object[] {PromptFamilies.BERT, methods().get(1)});
        cases.put("bert-ptuning-lstm", new Object[] {PromptFamilies.BERT, methods().get(5)});
        // BertForSequenceClassification / RobertaForSequenceClassification under PEFT read
        // position 0 of prompt + words: the first virtual token, through the frozen pooler.
        cases.put(
                "bert-pooler-prompt-random",
                new Object[] {PromptFamilies.BERT_POOLER, methods().get(0)});
        cases.put(
                "bert-pooler-ptuning-mlp",
                new Object[] {PromptFamilies.BERT_POOLER, methods().get(3)});
        cases.put("roberta-prompt-text", new Object[] {PromptFamilies.ROBERTA, methods().get(2)});
        cases.put("roberta-ptuning-lstm", new Object[] {PromptFamilies.ROBERTA, methods().get(5)});
        cases.put("gpt2-prompt-text", new Object[] {PromptFamilies.GPT2, methods().get(2)});
        cases.put("gpt2-ptuning-mlp", new Object[] {PromptFamilies.GPT2, methods().get(3)});
        cases.put("llama-gqa-prompt", new Object[] {PromptFamilies.LLAMA_GQA, methods().get(0)});
        cases.put(
                "llama-gqa-ptuning-mlp", new Object[] {PromptFamilies.LLAMA_GQA, methods().get(4)});
        cases.put("qwen3-ptuning-lstm", new Object[] {PromptFamilies.QWEN3, methods().get(5)});

        ObjectNode request = JSON.createObjectNode();
        ArrayNode list = request.putArray("cases");
        Map<String, float[]> logits = new LinkedHashMap<>();
        Map<String, Map<String, float[]>> grads = new LinkedHashMap<>();
        Map<String, Float> losses = new LinkedHashMap<>();
        for (Map.Entry<String, Object[]> c : cases.entrySet()) {
            PromptFamilies family = (PromptFamilies) c.getValue()[0];
            FineTuningMethod method = (FineTuningMethod) c.getValue()[1];
            Path base = family.write(dir.resolve(c.getKey()), runtime, 11);
            Path state = dir.resolve(c.getKey() + "-state");
            try (Model m = family.load(base, runtime)) {
                TunableModel model = PromptFamilies.tunable(m);
                Engine.getInstance().setRandomSeed(5);
                method.apply(model, m.getNDManager());
                MethodState.write(model, method, state);
                Map<String, Parameter> trained = MethodState.stateParameters(model);
                trained.values().forEach(p -> p.getArray().setRequiresGradient(true));
                try (NDManager s = m.getNDManager().newSubManager();
                        GradientCollector collector = Engine.getInstance().newGradientCollector()) {
                    NDArray out = PromptFamilies.forward(m, s, IDS, MASK, true);
                    NDArray r =
                            s.arange(0f, (float) out.size(), 1f)
                                    .toType(DataType.FLOAT64, false)
                                    .mul(0.37)
                                    .add(0.1)
                                    .sin()
                                    .toType(DataType.FLOAT32, false);
                    NDArray loss = out.reshape(-1).mul(r).sum().div(out.size());
                    collector.backward(loss);
                    logits.put(c.getKey(), out.toFloatArray());
                    losses.put(c.getKey(), loss.getFloat());
                    Map<String, float[]> g = new LinkedHashMap<>();
                    trained.forEach(
                            (name, p) -> g.put(name, p.getArray().getGradient().toFloatArray()));
                    grads.put(c.getKey(), g);
                }
            }
            referenceCase(list, family, base, dir.resolve(c.getKey() + ".json"))
                    .<ObjectNode>set("method", method.describe())
                    .put("state", state.resolve(MethodState.WEIGHTS).toString());
        }
        runReference("bench/prompt_reference.py", request, dir);
        for (String name : cases.keySet()) {
            JsonNode ref = JSON.readTree(dir.resolve(name + ".json").toFile());
            float[] want = flatten(ref.get("logits"));
            float[] got = logits.get(name);
            assertThat(got).hasSameSizeAs(want);
            double logitDiff = maxDiff(got, want);
            double gradDiff = 0;
            double gradScale = 0;
            for (Map.Entry<String, float[]> g : grads.get(name).entrySet()) {
                JsonNode r = ref.get("grads").get(g.getKey());
                assertThat(r)
                        .as("%s: the reference's gradient of %s", name, g.getKey())
                        .isNotNull();
                float[] refGrad = flatten(r);
                gradDiff = Math.max(gradDiff, maxDiff(g.getValue(), refGrad));
                for (float v : refGrad) {
                    gradScale = Math.max(gradScale, Math.abs(v));
                }
            }
            System.out.printf(
                    "%s: max |logit diff| %.2e, loss %.6f vs %.6f, max |grad diff| %.2e (max |grad| %.2e) over %d tensors%n",
                    name,
                    logitDiff,
                    losses.get(name),
                    ref.get("loss").asDouble(),
                    gradDiff,
                    gradScale,
                    grads.get(name).size());
            assertThat(logitDiff).as(name).isLessThan(1e-4);
            assertThat(gradDiff).as(name).isLessThan(1e-4);
            assertThat(gradScale).as(name + ": gradients reach the prompt").isGreaterThan(1e-6);
            assertThat((double) losses.get(name))
                    .isCloseTo(ref.get("loss").asDouble(), within(1e-5));
        }
    }

    @Test
    void theCausalLmTrainingLossScoresTheFirstRealTokenFromTheLastVirtualOneAsPeft(
            @TempDir Path dir) throws Exception {
        // Labels as the trainer builds them: the ids, -100 on padding.
        long[][] labels = new long[IDS.length][];
        for (int i = 0; i < IDS.length; i++) {
            labels[i] = IDS[i].clone();
            for (int j = 0; j < labels[i].length; j++) {
                if (MASK[i][j] == 0) {
                    labels[i][j] = CausalLmLoss.IGNORE;
                }
            }
        }
        Map<String, Object[]> cases = new LinkedHashMap<>();
        cases.put("gpt2-prompt-random", new Object[] {PromptFamilies.GPT2, methods().get(0)});
        cases.put(
                "llama-gqa-ptuning-mlp", new Object[] {PromptFamilies.LLAMA_GQA, methods().get(4)});
        ObjectNode request = JSON.createObjectNode();
        ArrayNode list = request.putArray("cases");
        Map<String, double[]> losses = new LinkedHashMap<>();
        for (Map.Entry<String, Object[]> c : cases.entrySet()) {
            PromptFamilies family = (PromptFamilies) c.getValue()[0];
            FineTuningMethod method = (FineTuningMethod) c.getValue()[1];
            Path base = family.write(dir.resolve(c.getKey()), runtime, 13);
            Path state = dir.resolve(c.getKey() + "-state");
            try (Model m = family.load(base, runtime)) {
                CausalLanguageModel lm = (CausalLanguageModel) PromptFamilies.tunable(m);
                Engine.getInstance().setRandomSeed(9);
                method.apply(lm, m.getNDManager());
                MethodState.write(lm, method, state);
                try (NDManager s = m.getNDManager().newSubManager()) {
                    NDArray ids = s.create(IDS);
                    NDArray mask = s.create(MASK);
                    NDArray y = s.create(labels);
                    double withLead =
                            CausalLmTrainer.trainingLoss(lm, s, ids, mask, y, false).getFloat();
                    NDArray realOnly =
                            lm.forward(new ParameterStore(s, false), new NDList(ids, mask), false)
                                    .singletonOrThrow();
                    double withoutLead = CausalLmLoss.mean(realOnly, y).getFloat();
                    losses.put(c.getKey(), new double[] {withLead, withoutLead});
                }
            }
            referenceCase(list, family, base, dir.resolve(c.getKey() + ".json"))
                    .<ObjectNode>set("method", method.describe())
                    .<ObjectNode>set("labels", JSON.valueToTree(labels))
                    .put("state", state.resolve(MethodState.WEIGHTS).toString());
        }
        runReference("bench/prompt_reference.py", request, dir);
        for (String name : cases.keySet()) {
            double peft =
                    JSON.readTree(dir.resolve(name + ".json").toFile()).get("lm_loss").asDouble();
            double[] got = losses.get(name);
            System.out.printf(
                    "%s: training loss %.7f, PEFT's %.7f, real tokens only %.7f%n",
                    name, got[0], peft, got[1]);
            assertThat(got[0]).as(name).isCloseTo(peft, within(1e-5));
            // The term the real tokens' logits alone miss is not negligible on these models.
            assertThat(Math.abs(got[1] - peft)).as(name).isGreaterThan(1e-3);
        }
    }

    @Test
    void methodStateRebuildsTheTunedModelOnAFreshBase(@TempDir Path dir) throws Exception {
        for (PromptFamilies family : PromptFamilies.values()) {
            for (FineTuningMethod method : List.of(methods().get(1), methods().get(5))) {
                Path base = family.write(dir.resolve(family.name()), runtime, 13);
                Path state =
                        dir.resolve(family.name() + "-" + method.describe().get("method").asText());
                float[] tuned;
                try (Model m = family.load(base, runtime)) {
                    TunableModel model = PromptFamilies.tunable(m);
                    method.apply(model, m.getNDManager());
                    // Stand-in for training: move every trained value.
                    for (Parameter p : MethodState.stateParameters(model).values()) {
                        NDArray a = p.getArray();
                        float[] v = a.toFloatArray();
                        for (int i = 0; i < v.length; i++) {
                            v[i] += 0.05f * (float) Math.sin(i + 1);
                        }
                        io.tuneline.engine.nn.NativeCopy.copyInto(a, v);
                    }
                    MethodState.write(model, method, state);
                    try (NDManager s = m.getNDManager().newSubManager()) {
                        tuned = PromptFamilies.forward(m, s, IDS, MASK, false).toFloatArray();
                    }
                }
                assertThat(MethodState.present(state)).isTrue();
                try (Model m = family.load(base, runtime)) {
                    TunableModel model = PromptFamilies.tunable(m);
                    float[] untuned;
                    try (NDManager s = m.getNDManager().newSubManager()) {
                        untuned = PromptFamilies.forward(m, s, IDS, MASK, false).toFloatArray();
                    }
                    FineTuningMethod restored = MethodState.restore(model, state, m.getNDManager());
                    assertThat(restored).isEqualTo(method);
                    try (NDManager s = m.getNDManager().newSubManager()) {
                        float[] again =
                                PromptFamilies.forward(m, s, IDS, MASK, false).toFloatArray();
                        assertThat(again).as("%s %s", family, method).isEqualTo(tuned);
                        assertThat(maxDiff(untuned, tuned)).isGreaterThan(1e-4);
                    }
                }
            }
        }
    }

    @Test
    void peftExportsReadBackWithAnIndependentReaderAndReproduceTheTunedModel(@TempDir Path dir)
            throws Exception {
        Map<String, Object[]> cases = new LinkedHashMap<>();
        cases.put("bert-ptuning-lstm", new Object[] {PromptFamilies.BERT, methods().get(5)});
        cases.put(
                "bert-pooler-prompt-vocab",
                new Object[] {PromptFamilies.BERT_POOLER, methods().get(1)});
        cases.put(
                "bert-pooler-ptuning-lstm",
                new Object[] {PromptFamilies.BERT_POOLER, methods().get(5)});
        cases.put("roberta-ptuning-mlp", new Object[] {PromptFamilies.ROBERTA, methods().get(4)});
        cases.put("gpt2-prompt-text", new Object[] {PromptFamilies.GPT2, methods().get(2)});
        cases.put(
                "llama-gqa-ptuning-mlp", new Object[] {PromptFamilies.LLAMA_GQA, methods().get(3)});
        cases.put("qwen3-prompt-vocab", new Object[] {PromptFamilies.QWEN3, methods().get(1)});
        ObjectNode request = JSON.createObjectNode();
        ArrayNode list = request.putArray("cases");
        Map<String, float[]> tuned = new LinkedHashMap<>();
        for (Map.Entry<String, Object[]> c : cases.entrySet()) {
            PromptFamilies family = (PromptFamilies) c.getValue()[0];
            FineTuningMethod method = (FineTuningMethod) c.getValue()[1];
            Path base = family.write(dir.resolve(c.getKey()), runtime, 17);
            Path peft = dir.resolve(c.getKey() + "-peft");
            try (Model m = family.load(base, runtime)) {
                TunableModel model = PromptFamilies.tunable(m);
                method.apply(model, m.getNDManager());
                for (Parameter p : MethodState.stateParameters(model).values()) {
                    NDArray a = p.getArray();
                    float[] v = a.toFloatArray();
                    for (int i = 0; i < v.length; i++) {
                        v[i] += 0.05f * (float) Math.cos(i + 2);
                    }
                    io.tuneline.engine.nn.NativeCopy.copyInto(a, v);
                }
                io.tuneline.engine.export.PeftPromptLearning.write(
                        model,
                        method,
                        "tiny/" + c.getKey(),
                        java.util.Optional.of("great movie"),
                        peft);
                try (NDManager s = m.getNDManager().newSubManager()) {
                    tuned.put(
                            c.getKey(),
                            PromptFamilies.forward(m, s, IDS, MASK, false).toFloatArray());
                }
            }
            JsonNode config = JSON.readTree(peft.resolve("adapter_config.json").toFile());
            assertThat(config.get("peft_type").asText())
                    .isEqualTo(
                            method instanceof FineTuningMethod.Prompt
                                    ? "PROMPT_TUNING"
                                    : "P_TUNING");
            referenceCase(list, family, base, dir.resolve(c.getKey() + ".json"))
                    .put("peft_dir", peft.toString());
        }
        runReference("bench/prompt_reference.py", request, dir);
        for (String name : cases.keySet()) {
            JsonNode ref = JSON.readTree(dir.resolve(name + ".json").toFile());
            double diff = maxDiff(tuned.get(name), flatten(ref.get("logits")));
            System.out.printf(
                    "PEFT export %s: max |logit diff| vs the tuned model %.2e%n", name, diff);
            assertThat(diff).as(name).isLessThan(1e-4);
        }
        JsonNode text =
                JSON.readTree(dir.resolve("gpt2-prompt-text-peft/adapter_config.json").toFile());
        assertThat(text.get("prompt_tuning_init").asText()).isEqualTo("TEXT");
        assertThat(text.get("prompt_tuning_init_text").asText()).isEqualTo("great movie");
        assertThat(text.get("task_type").asText()).isEqualTo("CAUSAL_LM");
        JsonNode lstm =
                JSON.readTree(dir.resolve("bert-ptuning-lstm-peft/adapter_config.json").toFile());
        assertThat(lstm.get("encoder_reparameterization_type").asText()).isEqualTo("LSTM");
        assertThat(lstm.get("encoder_hidden_size").asInt()).isEqualTo(6);
        assertThat(lstm.get("task_type").asText()).isEqualTo("SEQ_CLS");
    }

    static double maxDiff(float[] a, float[] b) {
        double d = 0;
        for (int i = 0; i < a.length; i++) {
            d = Math.max(d, Math.abs(a[i] - b[i]));
        }
        return d;
    }

    static float[] flatten(JsonNode node) {
        List<Float> out = new java.util.ArrayList<>();
        collect(node, out);
        float[] f = new float[out.size()];
        for (int i = 0; i < f.length; i++) {
            f[i] = out.get(i);
        }
        return f;
    }

    private static void collect(JsonNode node, List<Float> out) {
        if (node.isArray()) {
            node.forEach(n -> collect(n, out));
        } else {
            out.add((float) node.asDouble());
        }
    }

    /**
     * A case of {@code bench/prompt_reference.py}'s request over {@link #IDS} and {@link #MASK}.
     */
    private static ObjectNode referenceCase(
            ArrayNode list, PromptFamilies family, Path base, Path output) {
        ObjectNode entry = list.addObject();
        entry.put("family", family.reference());
        entry.put("model_dir", base.toString());
        entry.set("input_ids", JSON.valueToTree(IDS));
        entry.set("attention_mask", JSON.valueToTree(MASK));
        entry.put("output", output.toString());
        return entry;
    }

    /** Runs a bench script (found above the working directory) on {@code request}. */
    static void runReference(String script, ObjectNode request, Path dir) throws Exception {
        if (!Files.isExecutable(Path.of(PYTHON))) {
            throw new AssertionError(
                    "the reference needs " + PYTHON + " with torch: apt-get install python3-torch");
        }
        Path requestFile = dir.resolve("request-" + System.nanoTime() + ".json");
        JSON.writeValue(requestFile.toFile(), request);
        Process p =
                new ProcessBuilder(PYTHON, locate(script).toString(), requestFile.toString())
                        .redirectErrorStream(true)
                        .start();
        String output = new String(p.getInputStream().readAllBytes());
        assertThat(p.waitFor(300, TimeUnit.SECONDS)).as("reference finished").isTrue();
        assertThat(p.exitValue()).as("reference failed:%n%s", output).isZero();
    }

    static Path locate(String relative) {
        for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
            Path s = d.resolve(relative);
            if (Files.isRegularFile(s)) {
                return s;
            }
        }
        throw new AssertionError(relative + " not found above the working directory");
    }
}
