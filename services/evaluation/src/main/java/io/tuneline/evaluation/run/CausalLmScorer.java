package io.tuneline.evaluation.run;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.model.CausalLmCheckpoint;
import io.tuneline.engine.model.CausalLmInference;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.tokenize.ChatTemplate;
import io.tuneline.engine.tokenize.ModelTokens;
import io.tuneline.engine.train.CausalLmLoss;
import io.tuneline.engine.train.LmExample;
import io.tuneline.evaluation.metrics.CausalLmMetrics.AnswerScore;
import io.tuneline.evaluation.metrics.CausalLmMetrics.ExampleScore;
import io.tuneline.evaluation.scenario.RecordedRequests;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Scores a causal LM directory (GPT-2 or the Llama family, by its {@code model_type}) on a prepared
 * causal LM test split: per example, the log-likelihood of its scored tokens and how many are the
 * argmax next token; for instruction examples (lines with {@code "prompt"} and {@code
 * "completion"}), the greedy answer to the prompt tokens (those before the first scored label),
 * decoded with the model's tokenizer and compared with the reference completion.
 */
final class CausalLmScorer {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Answers longer than the reference by this many tokens are cut. */
    static final int EXTRA_ANSWER_TOKENS = 8;

    private CausalLmScorer() {}

    /** One prepared test line: its tokens and, for instruction data, the texts. */
    record TestExample(LmExample example, Optional<String> prompt, Optional<String> completion) {}

    /** What one model did on the split. */
    record Result(List<ExampleScore> scores, List<AnswerScore> answers, List<String> generated) {}

    /** Reads {@code {"input_ids","labels",...}} lines; lines of fewer than 2 tokens are skipped. */
    static List<TestExample> read(InputStream in, String source) throws IOException {
        List<TestExample> out = new ArrayList<>();
        BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
        String line;
        int number = 0;
        while ((line = r.readLine()) != null) {
            number++;
            if (line.isBlank()) {
                continue;
            }
            JsonNode n;
            try {
                n = JSON.readTree(line);
            } catch (IOException e) {
                throw new IllegalArgumentException(
                        source + ", line " + number + ": not JSON (" + e.getMessage() + ")");
            }
            JsonNode ids = n.path("input_ids");
            if (!ids.isArray()) {
                throw new IllegalArgumentException(
                        source
                                + ", line "
                                + number
                                + ": no \"input_ids\"; a causal LM test split is prepared by"
                                + " preprocessing with the base model's tokenizer");
            }
            if (ids.size() < 2) {
                continue;
            }
            LmExample example;
            try {
                example = LmExample.fromJson(n);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(
                        source + ", line " + number + ": " + e.getMessage(), e);
            }
            out.add(
                    new TestExample(
                            example,
                            text(n, "prompt"),
                            n.has("prompt") ? text(n, "completion") : Optional.empty()));
        }
        return out;
    }

    private static Optional<String> text(JsonNode n, String field) {
        JsonNode v = n.get(field);
        return v != null && v.isTextual() ? Optional.of(v.asText()) : Optional.empty();
    }

    /**
     * Scores {@code examples} with the model in {@code directory} ({@code config.json}, {@code
     * model.safetensors}, {@code tokenizer.json}); examples are cut to {@code maxLength} tokens
     * (and the model's positions) as training cuts them. Answers are generated when {@code
     * answers}.
     */
    static Result score(
            EngineRuntime runtime,
            Path directory,
            List<TestExample> examples,
            int maxLength,
            boolean answers)
            throws IOException {
        List<ExampleScore> scores = new ArrayList<>();
        List<AnswerScore> answerScores = new ArrayList<>();
        List<String> generated = new ArrayList<>();
        Path tokenizerFile = directory.resolve("tokenizer.json");
        try (Model model = CausalLmCheckpoint.load(directory, runtime.device());
                HuggingFaceTokenizer tokenizer =
                        HuggingFaceTokenizer.newInstance(
                                tokenizerFile, Map.of("padding", "false", "truncation", "false"))) {
            // Llama-family answers are generated with the key/value cache (LlamaInference).
            // Base + method state when the tuned model's method cannot be merged (MethodState).
            MethodState.restoreIfPresent(
                    (TunableModel) model.getBlock(), directory, model.getNDManager());
            CausalLmInference inference = CausalLmInference.of(model);
            int limit = Math.min(maxLength, inference.maxPositions());
            List<Long> stops = ModelTokens.read(directory).stopIds();
            for (TestExample t : examples) {
                LmExample e = cut(t.example(), limit);
                CausalLmInference.TokenStats s = inference.tokenStats(e);
                scores.add(new ExampleScore(s.logLikelihood(), s.tokens(), s.correct()));
                if (answers) {
                    String answer = answer(inference, tokenizer, t.example(), limit, stops);
                    generated.add(answer);
                    answerScores.add(AnswerScore.of(answer, t.completion().orElse("")));
                }
            }
        }
        return new Result(scores, answerScores, generated);
    }

    /**
     * The greedy answer to the example's prompt tokens, decoded without special tokens. It ends at
     * the first of the model's stop ids ({@link ModelTokens#stopIds()}: the EOS token and every
     * {@code eos_token_id} of config.json, e.g. Llama 3's {@code <|eot_id|>} beside {@code
     * <|end_of_text|>}), as the serving service's completions do, so that a served greedy answer
     * equals the one evaluated here.
     */
    static String answer(
            CausalLmInference inference,
            HuggingFaceTokenizer tokenizer,
            LmExample example,
            int limit,
            List<Long> stops) {
        int promptEnd = promptEnd(example.labels());
        if (promptEnd == 0 || promptEnd >= limit) {
            return "";
        }
        long[] prompt = Arrays.copyOf(example.inputIds(), promptEnd);
        long[] tokens =
                inference.generate(
                        prompt,
                        answerBudget(example.labels(), promptEnd, limit),
                        CausalLmInference::argmax,
                        token -> !stops.contains(token));
        if (tokens.length > 0 && stops.contains(tokens[tokens.length - 1])) {
            tokens = Arrays.copyOf(tokens, tokens.length - 1);
        }
        return tokens.length == 0 ? "" : tokenizer.decode(tokens, true).trim();
    }

    /**
     * The scenario's requests for a causal LM: each example's prompt as the model saw it offline
     * (the prompt tokens decoded with their special tokens, the BOS token left to the serving
     * service, which adds it as training did), completed greedily with the token budget the offline
     * answer had, so that the served answer must equal {@code generated}'s. Plain-text examples (no
     * answers) are completed from their first half with {@code maxTokens} tokens.
     */
    static List<io.tuneline.evaluation.scenario.ScenarioRunner.Request> scenarioRequests(
            String candidate,
            Path directory,
            List<TestExample> examples,
            Optional<List<String>> generated,
            int maxLength,
            int maxTokens)
            throws IOException {
        ModelTokens tokens = ModelTokens.read(directory);
        List<String> prompts = new ArrayList<>();
        List<Integer> budgets = new ArrayList<>();
        List<Optional<String>> expected = new ArrayList<>();
        try (HuggingFaceTokenizer tokenizer =
                HuggingFaceTokenizer.newInstance(
                        directory.resolve("tokenizer.json"),
                        Map.of("padding", "false", "truncation", "false"))) {
            for (int i = 0; i < examples.size(); i++) {
                LmExample e = examples.get(i).example();
                long[] labels = e.labels();
                int promptEnd;
                int budget;
                if (generated.isPresent()) {
                    promptEnd = promptEnd(labels);
                    if (promptEnd == 0 || promptEnd >= maxLength) {
                        continue;
                    }
                    budget = answerBudget(labels, promptEnd, maxLength);
                } else {
                    promptEnd = Math.max(1, Math.min(e.inputIds().length, maxLength) / 2);
                    budget = maxTokens;
                }
                long[] prompt = Arrays.copyOf(e.inputIds(), promptEnd);
                int from =
                        tokens.addBos()
                                        && prompt.length > 0
                                        && tokens.bos().isPresent()
                                        && prompt[0] == tokens.bos().get().id()
                                ? 1
                                : 0;
                prompts.add(
                        tokenizer.decode(Arrays.copyOfRange(prompt, from, prompt.length), false));
                budgets.add(budget);
                int at = i;
                expected.add(generated.map(g -> g.get(at)));
            }
        }
        return io.tuneline.evaluation.scenario.ScenarioRunner.complete(
                candidate,
                prompts,
                budgets.stream().mapToInt(Integer::intValue).toArray(),
                expected);
    }

    /**
     * The scenario's recorded requests, each with the answer the model in {@code directory} gives
     * offline: the prompt encoded as the serving service encodes it (a completion's text without
     * special tokens, BOS first when {@code add_bos_token}; a chat rendered with the model's chat
     * template and its generation prompt), decoded greedily with the request's budget to the first
     * stop id, cut before the first stop string. A prompt that leaves no position to answer in has
     * no offline answer (the service refuses it, which counts as an error).
     *
     * @throws IllegalArgumentException for a chat request to a model without a chat template
     */
    static List<io.tuneline.evaluation.scenario.ScenarioRunner.Request> recordedRequests(
            EngineRuntime runtime,
            Path directory,
            String candidate,
            List<RecordedRequests.Generate> recorded,
            String source)
            throws IOException {
        List<io.tuneline.evaluation.scenario.ScenarioRunner.Request> out = new ArrayList<>();
        ModelTokens tokens = ModelTokens.read(directory);
        Optional<ChatTemplate> template = tokens.chatTemplateFor(Optional.empty());
        try (Model model = CausalLmCheckpoint.load(directory, runtime.device());
                HuggingFaceTokenizer tokenizer =
                        HuggingFaceTokenizer.newInstance(
                                directory.resolve("tokenizer.json"),
                                Map.of("padding", "false", "truncation", "false"))) {
            MethodState.restoreIfPresent(
                    (TunableModel) model.getBlock(), directory, model.getNDManager());
            CausalLmInference inference = CausalLmInference.of(model);
            List<Long> stops = tokens.stopIds();
            for (RecordedRequests.Generate r : recorded) {
                long[] prompt;
                if (r.chat()) {
                    ChatTemplate chat =
                            template.orElseThrow(
                                    () ->
                                            new IllegalArgumentException(
                                                    source
                                                            + " line "
                                                            + r.line()
                                                            + ": a chat request, but the model"
                                                            + " has no chat template"
                                                            + " (tokenizer_config.json's"
                                                            + " chat_template)"));
                    prompt =
                            tokenizer
                                    .encode(chat.render(r.messages(), true), false, false)
                                    .getIds();
                } else {
                    prompt =
                            tokens.withBos(
                                    tokenizer
                                            .encode(r.prompt().orElseThrow(), false, false)
                                            .getIds());
                }
                Optional<String> offline = Optional.empty();
                if (prompt.length > 0 && prompt.length < inference.maxPositions()) {
                    long[] answer =
                            inference.generate(
                                    prompt,
                                    r.maxTokens(),
                                    CausalLmInference::argmax,
                                    token -> !stops.contains(token));
                    if (answer.length > 0 && stops.contains(answer[answer.length - 1])) {
                        answer = Arrays.copyOf(answer, answer.length - 1);
                    }
                    String text = answer.length == 0 ? "" : tokenizer.decode(answer, true);
                    offline = Optional.of(RecordedRequests.cutAtStop(text, r.stops()).trim());
                }
                out.add(RecordedRequests.request(candidate, r, offline));
            }
        }
        return out;
    }

    /** Where an instruction example's answer starts: its first scored label. */
    static int promptEnd(long[] labels) {
        int end = 0;
        while (end < labels.length && labels[end] == CausalLmLoss.IGNORE) {
            end++;
        }
        return end;
    }

    /** Tokens an answer may take: the reference's plus a few, within {@code limit} positions. */
    static int answerBudget(long[] labels, int promptEnd, int limit) {
        return Math.min(labels.length - promptEnd + EXTRA_ANSWER_TOKENS, limit - promptEnd);
    }

    static LmExample cut(LmExample e, int limit) {
        if (e.inputIds().length <= limit) {
            return e;
        }
        return new LmExample(Arrays.copyOf(e.inputIds(), limit), Arrays.copyOf(e.labels(), limit));
    }
}
