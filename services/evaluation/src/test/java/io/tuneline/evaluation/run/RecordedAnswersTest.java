package io.tuneline.evaluation.run;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import io.tuneline.engine.model.CausalLmInference;
import io.tuneline.engine.model.gpt2.Gpt2Checkpoint;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.evaluation.scenario.RecordedRequests;
import io.tuneline.evaluation.scenario.ScenarioRunner;
import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The offline answers a scenario compares recorded requests with: the prompt encoded as the serving
 * service encodes it (BOS first when {@code add_bos_token}, a chat through the model's template
 * with the generation prompt), greedy to the budget, cut at a stop string.
 */
class RecordedAnswersTest {
    private static final long BOS = 101; // [CLS], named the BOS token below

    private static List<RecordedRequests.Generate> read(String... lines) throws Exception {
        return RecordedRequests.generate(
                new ByteArrayInputStream(String.join("\n", lines).getBytes(StandardCharsets.UTF_8)),
                "r.jsonl",
                100,
                3);
    }

    @Test
    void eachRequestGetsTheGreedyAnswerToThePromptTheServiceWouldSee(@TempDir Path dir)
            throws Exception {
        Gpt2Checkpoint.saveRandom(CausalLmEvaluationFlowTest.TINY, 5, dir);
        try (InputStream in =
                getClass()
                        .getClassLoader()
                        .getResourceAsStream("all-minilm-l6-v2-tokenizer.json")) {
            Files.copy(in, dir.resolve("tokenizer.json"));
        }
        Files.writeString(
                dir.resolve("tokenizer_config.json"),
                "{\"bos_token\": \"[CLS]\", \"eos_token\": \"[SEP]\", \"add_bos_token\": true,"
                        + " \"chat_template\": \"{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
                        + "{% if add_generation_prompt %}<assistant>{% endif %}\"}");
        EngineRuntime runtime = EngineRuntime.start(2);
        List<RecordedRequests.Generate> recorded =
                read(
                        "{\"prompt\": \"capital of france?\", \"max_tokens\": 6}",
                        "{\"messages\": [{\"role\": \"user\", \"content\": \"hello\"}]}",
                        "{\"prompt\": \"" + "word ".repeat(70) + "\"}");
        List<ScenarioRunner.Request> requests =
                CausalLmScorer.recordedRequests(runtime, dir, "m:candidate", recorded, "r.jsonl");

        // The same answers computed here step by step: the prompt's ids, BOS first; then greedy.
        try (Model model = Gpt2Checkpoint.load(dir, runtime.device());
                HuggingFaceTokenizer tokenizer =
                        HuggingFaceTokenizer.newInstance(
                                dir.resolve("tokenizer.json"),
                                Map.of("padding", "false", "truncation", "false"))) {
            CausalLmInference inference = CausalLmInference.of(model);
            assertThat(
                            io.tuneline.engine.tokenize.ModelTokens.read(dir)
                                    .chatTemplateFor(Optional.empty())
                                    .orElseThrow()
                                    .render(
                                            List.of(
                                                    new io.tuneline.engine.tokenize.ChatMessage(
                                                            "user", "hello")),
                                            true))
                    .isEqualTo("<user>hello<assistant>");
            String completion = greedy(inference, tokenizer, "capital of france?", true, 6);
            // A chat's BOS is the template's business: the rendered text is encoded as it is.
            String chat = greedy(inference, tokenizer, "<user>hello<assistant>", false, 3);
            assertThat(requests.get(0).expected()).contains(completion);
            assertThat(requests.get(1).expected()).contains(chat);
            assertThat(requests.get(1).path()).isEqualTo("/v1/chat/completions");
        }
        // 70 words and BOS fill the tiny model's 64 positions: the service refuses the prompt,
        // so there is no offline answer to agree with.
        assertThat(requests.get(2).expected()).isEmpty();

        // A stop string the answer contains cuts it there, as the service's text is cut.
        String first = requests.get(0).expected().orElseThrow();
        assertThat(first).as("the random model's answer").hasSizeGreaterThan(1);
        String stop = first.substring(1);
        List<ScenarioRunner.Request> cut =
                CausalLmScorer.recordedRequests(
                        runtime,
                        dir,
                        "m:candidate",
                        read(
                                "{\"prompt\": \"capital of france?\", \"max_tokens\": 6,"
                                        + " \"stop\": "
                                        + new com.fasterxml.jackson.databind.ObjectMapper()
                                                .writeValueAsString(stop)
                                        + "}"),
                        "r.jsonl");
        assertThat(cut.get(0).expected()).contains(first.substring(0, first.indexOf(stop)).trim());
        assertThat(cut.get(0).expected().orElseThrow()).hasSizeLessThan(first.length());

        // Without a chat template a chat request cannot be answered offline, nor served.
        Files.writeString(
                dir.resolve("tokenizer_config.json"),
                "{\"bos_token\": \"[CLS]\", \"eos_token\": \"[SEP]\", \"add_bos_token\": true}");
        assertThatThrownBy(
                        () ->
                                CausalLmScorer.recordedRequests(
                                        runtime, dir, "m:candidate", recorded, "r.jsonl"))
                .hasMessageStartingWith(
                        "r.jsonl line 2: a chat request, but the model has no chat template");
    }

    private static String greedy(
            CausalLmInference inference,
            HuggingFaceTokenizer tokenizer,
            String text,
            boolean bos,
            int budget) {
        long[] ids = tokenizer.encode(text, false, false).getIds();
        long[] prompt = ids;
        if (bos) {
            prompt = new long[ids.length + 1];
            prompt[0] = BOS;
            System.arraycopy(ids, 0, prompt, 1, ids.length);
        }
        long[] out = inference.generate(prompt, budget, CausalLmInference::argmax, t -> t != 102);
        if (out.length > 0 && out[out.length - 1] == 102) {
            out = Arrays.copyOf(out, out.length - 1);
        }
        return out.length == 0 ? "" : tokenizer.decode(out, true).trim();
    }
}
