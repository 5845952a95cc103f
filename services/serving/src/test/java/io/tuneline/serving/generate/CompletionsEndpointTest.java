package io.tuneline.serving.generate;

import static io.restassured.RestAssured.given;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.http.StreamResponse;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionStreamOptions;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionCreateParams;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.common.http.TestHTTPResource;
import io.quarkus.test.junit.QuarkusTest;
import io.restassured.http.ContentType;
import io.restassured.path.json.JsonPath;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.model.CausalLmCheckpoint;
import io.tuneline.engine.model.CausalLmInference;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.model.gpt2.Gpt2Checkpoint;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.llama.LlamaCheckpoint;
import io.tuneline.engine.model.llama.LlamaConfig;
import io.tuneline.engine.nn.NativeCopy;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.tokenize.ChatMessage;
import io.tuneline.engine.tokenize.ModelTokens;
import io.tuneline.engine.tokenize.SpecialToken;
import io.tuneline.serving.FakeRegistry;
import io.tuneline.serving.load.LoadedModels;
import io.tuneline.serving.load.ModelQueue;
import io.tuneline.testing.S3ProxyResource;
import jakarta.inject.Inject;
import java.io.InputStream;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Random tiny GPT-2 and Llama models (MiniLM's tokenizer.json standing in, as in evaluation's
 * tests; a small chat template in tokenizer_config.json), registered and served through the
 * OpenAI-compatible endpoints: greedy answers equal the engine's offline greedy decoding, and the
 * official OpenAI Java client talks to the endpoints unchanged, streaming included.
 */
@QuarkusTest
@QuarkusTestResource(S3ProxyResource.class)
@QuarkusTestResource(FakeRegistry.class)
class CompletionsEndpointTest {
    static final Gpt2Config TINY_GPT2 = Gpt2Config.of(30522, 64, 32, 2, 4);
    static final String CHAT_TEMPLATE =
            "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                    + "{% if add_generation_prompt %}assistant:{% endif %}";
    static final String PROMPT = "the film was long but the ending";
    static final List<ChatMessage> CHAT =
            List.of(
                    new ChatMessage("system", "you answer briefly"),
                    new ChatMessage("user", "what did you think of the film?"));

    private static Path gpt2;
    private static Path llama;
    private static Offline prefixAnswer;

    @Inject ArtifactStore store;
    @Inject LoadedModels models;

    @TestHTTPResource("/v1")
    URL v1;

    @BeforeEach
    void registerModels() throws Exception {
        if (gpt2 != null) {
            return;
        }
        Path dir = Files.createTempDirectory("serving-lm");
        gpt2 = dir.resolve("gpt2");
        Gpt2Checkpoint.saveRandom(TINY_GPT2, 3, gpt2);
        llama = dir.resolve("llama");
        LlamaCheckpoint.saveRandom(
                LlamaConfig.parse(
                        "{\"model_type\": \"llama\", \"vocab_size\": 30522,"
                                + " \"hidden_size\": 32, \"intermediate_size\": 64,"
                                + " \"num_hidden_layers\": 2, \"num_attention_heads\": 8,"
                                + " \"num_key_value_heads\": 2, \"max_position_embeddings\": 64,"
                                + " \"tie_word_embeddings\": false, \"eos_token_id\": 102}"),
                llama,
                5,
                0.5);
        for (Path model : List.of(gpt2, llama)) {
            try (InputStream in =
                    getClass()
                            .getClassLoader()
                            .getResourceAsStream("all-minilm-l6-v2-tokenizer.json")) {
                Files.copy(in, model.resolve(ModelTokens.TOKENIZER));
            }
            Files.writeString(
                    model.resolve(ModelTokens.TOKENIZER_CONFIG),
                    new com.fasterxml.jackson.databind.ObjectMapper()
                            .createObjectNode()
                            .put("chat_template", CHAT_TEMPLATE)
                            .put("eos_token", "[SEP]")
                            .toString());
        }
        register("gpt-tiny", gpt2);
        register("llama-tiny", llama);

        // The Llama base + prefix tuning (a method that cannot be merged): the base's files and
        // the method state beside them, as the training worker writes them. The expected answer
        // comes from the model in memory, before anything is written.
        Path prefixed = dir.resolve("llama-prefix");
        Files.createDirectories(prefixed);
        try (var list = Files.list(llama)) {
            for (Path f : list.toList()) {
                Files.copy(f, prefixed.resolve(f.getFileName()));
            }
        }
        EngineRuntime runtime = EngineRuntime.start(0);
        try (Model model = CausalLmCheckpoint.load(llama, runtime.device())) {
            TunableModel lm = (TunableModel) model.getBlock();
            ai.djl.engine.Engine.getInstance().setRandomSeed(3);
            FineTuningMethod.Prefix prefix = new FineTuningMethod.Prefix(4, 16);
            prefix.apply(lm, model.getNDManager());
            randomizeDeltas(lm, 13);
            prefixAnswer = offline(llama, CausalLmInference.of(model), encode(llama, PROMPT), 12);
            MethodState.write(lm, prefix, prefixed);
        }
        FakeRegistry.registerDirectory(store, prefixed, "llama-prefix", 1, "PREFIX", 64);
    }

    private void register(String name, Path model) throws Exception {
        FakeRegistry.registerDirectory(store, model, name, 1, "FULL", 64, "production");
    }

    /** The engine's offline greedy decoding, as evaluation answers a prompt. */
    record Offline(String text, int promptTokens, int completionTokens, String finishReason) {}

    static Offline offline(Path model, long[] prompt, int maxTokens) throws Exception {
        EngineRuntime runtime = EngineRuntime.start(0);
        try (Model m = CausalLmCheckpoint.load(model, runtime.device())) {
            return offline(model, CausalLmInference.of(m), prompt, maxTokens);
        }
    }

    /** As {@link #offline(Path, long[], int)}, with a model already in memory. */
    static Offline offline(Path model, CausalLmInference inference, long[] prompt, int maxTokens)
            throws Exception {
        long eos = ModelTokens.read(model).eos().map(SpecialToken::id).orElse(-1L);
        try (HuggingFaceTokenizer tokenizer =
                HuggingFaceTokenizer.newInstance(model.resolve(ModelTokens.TOKENIZER))) {
            long[] tokens = inference.greedyUntil(prompt, maxTokens, eos);
            boolean stopped = tokens.length > 0 && tokens[tokens.length - 1] == eos;
            long[] answer = stopped ? Arrays.copyOf(tokens, tokens.length - 1) : tokens;
            return new Offline(
                    answer.length == 0 ? "" : tokenizer.decode(answer, true),
                    prompt.length,
                    tokens.length,
                    stopped ? "stop" : "length");
        }
    }

    static long[] encode(Path model, String text) throws Exception {
        try (HuggingFaceTokenizer tokenizer =
                HuggingFaceTokenizer.newInstance(model.resolve(ModelTokens.TOKENIZER))) {
            return tokenizer.encode(text, false, false).getIds();
        }
    }

    static long[] encodeChat(Path model, List<ChatMessage> chat) throws Exception {
        String text =
                ModelTokens.read(model)
                        .chatTemplateFor(java.util.Optional.empty())
                        .orElseThrow()
                        .render(chat, true);
        return encode(model, text);
    }

    @Test
    void greedyCompletionsEqualTheEnginesOfflineGreedyDecoding() throws Exception {
        for (var m : Map.of("gpt-tiny:1", gpt2, "llama-tiny:production", llama).entrySet()) {
            Offline expected = offline(m.getValue(), encode(m.getValue(), PROMPT), 12);
            assertThat(expected.text()).isNotBlank();
            JsonPath served =
                    post(
                            "/v1/completions",
                            Map.of(
                                    "model",
                                    m.getKey(),
                                    "prompt",
                                    PROMPT,
                                    "max_tokens",
                                    12,
                                    "temperature",
                                    0));
            assertThat(served.getString("object")).isEqualTo("text_completion");
            assertThat(served.getString("choices[0].text"))
                    .as(m.getKey())
                    .isEqualTo(expected.text());
            assertThat(served.getString("choices[0].finish_reason"))
                    .isEqualTo(expected.finishReason());
            assertThat(served.getInt("usage.prompt_tokens")).isEqualTo(expected.promptTokens());
            assertThat(served.getInt("usage.completion_tokens"))
                    .isEqualTo(expected.completionTokens());
            assertThat(served.getInt("usage.total_tokens"))
                    .isEqualTo(expected.promptTokens() + expected.completionTokens());

            // A nucleus so small that only the most likely token is in it is greedy decoding.
            JsonPath nucleus =
                    post(
                            "/v1/completions",
                            Map.of(
                                    "model",
                                    m.getKey(),
                                    "prompt",
                                    PROMPT,
                                    "max_tokens",
                                    12,
                                    "temperature",
                                    0.8,
                                    "top_p",
                                    1e-9));
            assertThat(nucleus.getString("choices[0].text")).isEqualTo(expected.text());
        }
    }

    @Inject io.tuneline.serving.load.SharedBases bases;

    @Test
    void aLoraAndAPrefixVersionOfOneLlamaShareItAndAnswerAsOffline() throws Exception {
        String ref = store.uri("bases/llama-tiny/").toString();
        try (var files = Files.list(llama)) {
            for (Path f : files.toList()) {
                store.put(
                        store.uri("bases/llama-tiny/" + f.getFileName()),
                        f,
                        "application/octet-stream");
            }
        }
        Path dir = Files.createTempDirectory("shared-llama");
        Offline lora =
                tuneOnBase(
                        ref,
                        dir.resolve("lora"),
                        new FineTuningMethod.Lora(4, 8f, 0f, List.of("q_proj", "v_proj")),
                        "llama-lora-shared",
                        "LORA",
                        21);
        Offline prefix =
                tuneOnBase(
                        ref,
                        dir.resolve("prefix"),
                        new FineTuningMethod.Prefix(4, 16),
                        "llama-prefix-shared",
                        "PREFIX",
                        22);
        assertThat(lora.text()).isNotEqualTo(prefix.text());

        for (var expected :
                Map.of("llama-lora-shared:live", lora, "llama-prefix-shared:live", prefix)
                        .entrySet()) {
            JsonPath served =
                    post(
                            "/v1/completions",
                            Map.of(
                                    "model",
                                    expected.getKey(),
                                    "prompt",
                                    PROMPT,
                                    "max_tokens",
                                    12,
                                    "temperature",
                                    0));
            assertThat(served.getString("choices[0].text"))
                    .as(expected.getKey())
                    .isEqualTo(expected.getValue().text());
            assertThat(served.getInt("usage.completion_tokens"))
                    .isEqualTo(expected.getValue().completionTokens());
        }
        // One copy of the base: both versions compute with its native arrays.
        String embed = "model.embed_tokens.weight";
        assertThat(
                        models.get("llama-lora-shared:live")
                                .tunable()
                                .namedParameters()
                                .get(embed)
                                .getArray())
                .isSameAs(
                        models.get("llama-prefix-shared:live")
                                .tunable()
                                .namedParameters()
                                .get(embed)
                                .getArray());
        assertThat(bases.users()).containsEntry(ref, 2);
        // Unloaded, they release the base (tests hold at most max-loaded-models versions).
        FakeRegistry.removeAlias("llama-lora-shared", "live");
        FakeRegistry.removeAlias("llama-prefix-shared", "live");
        org.awaitility.Awaitility.await()
                .atMost(java.time.Duration.ofSeconds(60))
                .until(() -> !bases.users().containsKey(ref));
    }

    /** Draws the method's parameters from N(0, 0.5^2): a trained method, not an untrained one. */
    private static void randomizeDeltas(TunableModel lm, long seed) {
        java.util.Random random = new java.util.Random(seed);
        for (ai.djl.nn.Parameter p : lm.deltaParameters().values()) {
            float[] values = new float[(int) p.getArray().size()];
            for (int i = 0; i < values.length; i++) {
                values[i] = (float) (random.nextGaussian() * 0.5);
            }
            NativeCopy.copyInto(p.getArray(), values);
        }
    }

    /**
     * A version of the tiny Llama tuned with {@code method} (its parameters random) written as the
     * worker writes it (merged weights, the tokenizer files, the method state or the PEFT adapter)
     * and registered with {@code ref} as its base under the alias {@code live}; returns the
     * engine's offline greedy answer of the model in memory.
     */
    private Offline tuneOnBase(
            String ref, Path out, FineTuningMethod method, String name, String methodName, int seed)
            throws Exception {
        EngineRuntime runtime = EngineRuntime.start(0);
        Offline answer;
        try (Model model = CausalLmCheckpoint.load(llama, runtime.device())) {
            io.tuneline.engine.model.CausalLanguageModel lm =
                    (io.tuneline.engine.model.CausalLanguageModel) model.getBlock();
            ai.djl.engine.Engine.getInstance().setRandomSeed(seed);
            method.apply(lm, model.getNDManager());
            randomizeDeltas(lm, seed);
            answer = offline(llama, CausalLmInference.of(model), encode(llama, PROMPT), 12);
            CausalLmCheckpoint.save(lm, out, CausalLmCheckpoint.savedDtype(llama));
            for (String f : List.of(ModelTokens.TOKENIZER, ModelTokens.TOKENIZER_CONFIG)) {
                Files.copy(llama.resolve(f), out.resolve(f));
            }
            if (method instanceof FineTuningMethod.Lora l) {
                io.tuneline.engine.export.PeftAdapter.write(lm, l, ref, out.resolve("adapter"));
            } else {
                MethodState.write(lm, method, out);
            }
        }
        FakeRegistry.registerDirectoryOnBase(store, out, ref, name, 1, methodName, 64, "live");
        return answer;
    }

    @Test
    void aPrefixTunedLlamaIsServedAsBasePlusItsMethodState() throws Exception {
        JsonPath served =
                post(
                        "/v1/completions",
                        Map.of(
                                "model",
                                "llama-prefix",
                                "prompt",
                                PROMPT,
                                "max_tokens",
                                12,
                                "temperature",
                                0));
        assertThat(served.getString("choices[0].text")).isEqualTo(prefixAnswer.text());
        assertThat(served.getInt("usage.completion_tokens"))
                .isEqualTo(prefixAnswer.completionTokens());
        // The method state matters: the base alone answers otherwise.
        assertThat(offline(llama, encode(llama, PROMPT), 12).text())
                .isNotEqualTo(prefixAnswer.text());
    }

    @Test
    void greedyChatAppliesTheChatTemplateAndEqualsOfflineDecoding() throws Exception {
        Offline expected = offline(llama, encodeChat(llama, CHAT), 10);
        JsonPath served =
                post(
                        "/v1/chat/completions",
                        Map.of(
                                "model",
                                "llama-tiny:1",
                                "messages",
                                CHAT.stream()
                                        .map(c -> Map.of("role", c.role(), "content", c.content()))
                                        .toList(),
                                "max_completion_tokens",
                                10,
                                "temperature",
                                0));
        assertThat(served.getString("object")).isEqualTo("chat.completion");
        assertThat(served.getString("choices[0].message.role")).isEqualTo("assistant");
        assertThat(served.getString("choices[0].message.content")).isEqualTo(expected.text());
        assertThat(served.getInt("usage.prompt_tokens")).isEqualTo(expected.promptTokens());
    }

    @Test
    void aStopSequenceEndsTheAnswerBeforeIt() throws Exception {
        Offline expected = offline(gpt2, encode(gpt2, PROMPT), 12);
        String[] words = expected.text().split(" ");
        assertThat(words.length).isGreaterThan(3);
        String stop = words[2];
        JsonPath served =
                post(
                        "/v1/completions",
                        Map.of(
                                "model",
                                "gpt-tiny:1",
                                "prompt",
                                PROMPT,
                                "max_tokens",
                                12,
                                "temperature",
                                0,
                                "stop",
                                List.of(stop)));
        assertThat(served.getString("choices[0].text"))
                .isEqualTo(expected.text().substring(0, expected.text().indexOf(stop)));
        assertThat(served.getString("choices[0].finish_reason")).isEqualTo("stop");
    }

    @Test
    void theSameSeedSamplesTheSameAnswer() {
        Map<String, Object> request =
                Map.of(
                        "model",
                        "gpt-tiny:1",
                        "prompt",
                        PROMPT,
                        "max_tokens",
                        10,
                        "temperature",
                        1.0,
                        "seed",
                        42);
        String first = post("/v1/completions", request).getString("choices[0].text");
        assertThat(post("/v1/completions", request).getString("choices[0].text")).isEqualTo(first);
    }

    @Test
    void theOpenAiJavaClientWorksUnchangedStreamingIncluded() throws Exception {
        Offline completion = offline(gpt2, encode(gpt2, PROMPT), 12);
        Offline chat = offline(gpt2, encodeChat(gpt2, CHAT), 10);
        OpenAIClient client =
                OpenAIOkHttpClient.builder()
                        .baseUrl(v1.toString())
                        .apiKey("not-checked")
                        .maxRetries(0)
                        .build();
        try {
            CompletionCreateParams completionParams =
                    CompletionCreateParams.builder()
                            .model("gpt-tiny:1")
                            .prompt(PROMPT)
                            .maxTokens(12)
                            .temperature(0.0)
                            .build();
            Completion c = client.completions().create(completionParams);
            c.validate();
            assertThat(c.choices().get(0).text()).isEqualTo(completion.text());
            assertThat(c.usage().orElseThrow().completionTokens())
                    .isEqualTo(completion.completionTokens());
            try (StreamResponse<Completion> stream =
                    client.completions().createStreaming(completionParams)) {
                String streamed =
                        // Not validate(): openai-java's Completion types a choice's finish_reason
                        // as required, while a stream's chunks (OpenAI's too) carry null until the
                        // last one; the client reads them as it reads OpenAI's.
                        stream.stream()
                                .flatMap(x -> x.choices().stream())
                                .map(x -> x.text())
                                .collect(Collectors.joining());
                assertThat(streamed).isEqualTo(completion.text());
            }

            ChatCompletionCreateParams.Builder chatParams =
                    ChatCompletionCreateParams.builder()
                            .model("gpt-tiny:1")
                            .addSystemMessage(CHAT.get(0).content())
                            .addUserMessage(CHAT.get(1).content())
                            .maxCompletionTokens(10)
                            .temperature(0.0);
            ChatCompletion answer = client.chat().completions().create(chatParams.build());
            answer.validate();
            assertThat(answer.choices().get(0).message().content()).contains(chat.text());
            assertThat(answer.usage().orElseThrow().promptTokens()).isEqualTo(chat.promptTokens());
            StringBuilder streamed = new StringBuilder();
            long[] usage = {-1};
            try (StreamResponse<ChatCompletionChunk> stream =
                    client.chat()
                            .completions()
                            .createStreaming(
                                    chatParams
                                            .streamOptions(
                                                    ChatCompletionStreamOptions.builder()
                                                            .includeUsage(true)
                                                            .build())
                                            .build())) {
                stream.stream()
                        .forEach(
                                chunk -> {
                                    chunk.validate();
                                    chunk.choices()
                                            .forEach(
                                                    x ->
                                                            x.delta()
                                                                    .content()
                                                                    .ifPresent(streamed::append));
                                    chunk.usage().ifPresent(u -> usage[0] = u.completionTokens());
                                });
            }
            assertThat(streamed.toString()).isEqualTo(chat.text());
            assertThat(usage[0]).isEqualTo(chat.completionTokens());
        } finally {
            client.close();
        }
    }

    @Test
    void theStreamIsOpenAisEventFormatEndedByDone() throws Exception {
        Offline expected = offline(gpt2, encode(gpt2, PROMPT), 8);
        String body =
                given().contentType(ContentType.JSON)
                        .body(
                                Map.of(
                                        "model",
                                        "gpt-tiny:1",
                                        "prompt",
                                        PROMPT,
                                        "max_tokens",
                                        8,
                                        "temperature",
                                        0,
                                        "stream",
                                        true))
                        .post("/v1/completions")
                        .then()
                        .statusCode(200)
                        .contentType(containsString("text/event-stream"))
                        .extract()
                        .asString();
        List<String> events = Arrays.stream(body.split("\n\n")).map(String::strip).toList();
        assertThat(events).allMatch(e -> e.startsWith("data: "));
        assertThat(events.get(events.size() - 1)).isEqualTo("data: [DONE]");
        List<JsonPath> chunks =
                events.subList(0, events.size() - 1).stream()
                        .map(e -> JsonPath.from(e.substring("data: ".length())))
                        .toList();
        // The text arrives as it is generated, in several chunks, and adds up to the answer.
        assertThat(chunks.stream().filter(c -> !c.getString("choices[0].text").isEmpty()))
                .hasSizeGreaterThan(1);
        assertThat(
                        chunks.stream()
                                .map(c -> c.getString("choices[0].text"))
                                .collect(Collectors.joining()))
                .isEqualTo(expected.text());
        assertThat(chunks).allMatch(c -> c.getString("object").equals("text_completion"));
        assertThat(chunks.get(chunks.size() - 1).getString("choices[0].finish_reason"))
                .isEqualTo(expected.finishReason());
    }

    @Test
    void concurrentCompletionsOfDifferentLengthsDecodeAsOneBatchEachAsAlone() throws Exception {
        List<String> prompts =
                List.of(
                        "the film",
                        PROMPT,
                        "a long and winding review of a film that ends where it started, twice",
                        "no");
        List<Integer> budgets = List.of(4, 9, 6, 12);
        for (String name : List.of("gpt-tiny", "llama-tiny")) {
            Path dir = name.equals("gpt-tiny") ? gpt2 : llama;
            List<Offline> expected = new java.util.ArrayList<>();
            for (int i = 0; i < prompts.size(); i++) {
                expected.add(offline(dir, encode(dir, prompts.get(i)), budgets.get(i)));
            }
            ModelQueue queue = models.get(name + ":1").queue();
            double batchesBefore = metric("tuneline_serving_batch_inputs_count", name);
            double sequencesBefore = metric("tuneline_serving_batch_inputs_sum", name);
            java.util.concurrent.ExecutorService clients =
                    java.util.concurrent.Executors.newFixedThreadPool(prompts.size());
            List<java.util.concurrent.Future<JsonPath>> answers = new java.util.ArrayList<>();
            // While the test holds the engine every request waits; released, they decode together.
            try (ModelQueue.Turn held = queue.awaitTurn()) {
                for (int i = 0; i < prompts.size(); i++) {
                    Map<String, Object> body =
                            Map.of(
                                    "model",
                                    name + ":1",
                                    "prompt",
                                    prompts.get(i),
                                    "max_tokens",
                                    budgets.get(i),
                                    "temperature",
                                    0);
                    answers.add(clients.submit(() -> post("/v1/completions", body)));
                }
                await().atMost(Duration.ofSeconds(30))
                        .until(() -> queue.waiting() == prompts.size());
            } finally {
                clients.shutdown();
            }
            for (int i = 0; i < prompts.size(); i++) {
                JsonPath a = answers.get(i).get(60, java.util.concurrent.TimeUnit.SECONDS);
                assertThat(a.getString("choices[0].text"))
                        .as("%s, prompt %d", name, i)
                        .isEqualTo(expected.get(i).text());
                assertThat(a.getInt("usage.completion_tokens"))
                        .isEqualTo(expected.get(i).completionTokens());
                assertThat(a.getString("choices[0].finish_reason"))
                        .isEqualTo(expected.get(i).finishReason());
            }
            assertThat(metric("tuneline_serving_batch_inputs_count", name))
                    .as(name)
                    .isEqualTo(batchesBefore + 1);
            assertThat(metric("tuneline_serving_batch_inputs_sum", name))
                    .isEqualTo(sequencesBefore + prompts.size());
        }
    }

    @Test
    void generationsWaitTheirTurnAndPastMaxQueuedTheNextIsA429() throws Exception {
        Offline expected = offline(gpt2, encode(gpt2, PROMPT), 6);
        Map<String, Object> body =
                Map.of("model", "gpt-tiny:1", "prompt", PROMPT, "max_tokens", 6, "temperature", 0);
        ModelQueue queue = models.get("gpt-tiny:1").queue();
        java.util.concurrent.ExecutorService clients =
                java.util.concurrent.Executors.newFixedThreadPool(8);
        List<java.util.concurrent.Future<JsonPath>> answers = new java.util.ArrayList<>();
        try (ModelQueue.Turn held = queue.awaitTurn()) {
            for (int i = 0; i < 8; i++) {
                answers.add(clients.submit(() -> post("/v1/completions", body)));
            }
            await().atMost(Duration.ofSeconds(30)).until(() -> queue.waiting() == 8);
            assertThat(metric("tuneline_serving_queued_requests", "gpt-tiny")).isEqualTo(8);
            // A stream too is refused before it starts: a problem, not a broken event stream.
            Map<String, Object> streamed = new java.util.HashMap<>(body);
            streamed.put("stream", true);
            for (Map<String, Object> b : List.of(body, streamed)) {
                given().contentType(ContentType.JSON)
                        .body(b)
                        .post("/v1/completions")
                        .then()
                        .statusCode(429)
                        .contentType("application/problem+json")
                        .header("Retry-After", "1")
                        .body("detail", containsString("tuneline.serving.limits.max-queued = 8"));
            }
        } finally {
            clients.shutdown();
        }
        for (var answer : answers) {
            JsonPath a = answer.get(60, java.util.concurrent.TimeUnit.SECONDS);
            assertThat(a.getString("choices[0].text")).isEqualTo(expected.text());
        }
        assertThat(queue.waiting()).isZero();
        assertThat(metric("tuneline_serving_queued_requests", "gpt-tiny")).isZero();
    }

    @Test
    void tokenCountersMoveByEachAnswersUsageAndTheModelsParametersAreCounted() throws Exception {
        double promptBefore = metric("tuneline_serving_prompt_tokens_total", "llama-tiny");
        double generatedBefore = metric("tuneline_serving_generated_tokens_total", "llama-tiny");
        JsonPath plain =
                post(
                        "/v1/completions",
                        Map.of(
                                "model",
                                "llama-tiny:1",
                                "prompt",
                                PROMPT,
                                "max_tokens",
                                7,
                                "temperature",
                                0));
        JsonPath chat =
                post(
                        "/v1/chat/completions",
                        Map.of(
                                "model",
                                "llama-tiny:1",
                                "messages",
                                List.of(Map.of("role", "user", "content", "hello")),
                                "max_tokens",
                                5,
                                "temperature",
                                0));
        int prompt = plain.getInt("usage.prompt_tokens") + chat.getInt("usage.prompt_tokens");
        int generated =
                plain.getInt("usage.completion_tokens") + chat.getInt("usage.completion_tokens");
        assertThat(generated).isPositive();
        assertThat(metric("tuneline_serving_prompt_tokens_total", "llama-tiny"))
                .isEqualTo(promptBefore + prompt);
        assertThat(metric("tuneline_serving_generated_tokens_total", "llama-tiny"))
                .isEqualTo(generatedBefore + generated);

        // GPT-2 by hand from TINY_GPT2 (vocabulary 30522, 64 positions, width 32, 2 layers):
        // token and position embeddings; per layer two LayerNorms 4*32, c_attn 32*96+96, c_proj
        // 32*32+32, MLP 32*128+128 and 128*32+32; the final LayerNorm 2*32; the LM head is the
        // token embedding (tied), counted once. float32.
        long layer = 4 * 32 + (32 * 96 + 96) + (32 * 32 + 32) + (32 * 128 + 128) + (128 * 32 + 32);
        long parameters = 30522 * 32 + 64 * 32 + 2 * layer + 2 * 32;
        post("/v1/completions", Map.of("model", "gpt-tiny:1", "prompt", "hi", "max_tokens", 1));
        assertThat(metric("tuneline_serving_model_parameters_bytes", "gpt-tiny"))
                .isEqualTo(4.0 * parameters);
    }

    /** A series' value for {@code model} in the Prometheus text, 0 when absent. */
    static double metric(String series, String model) {
        String text = given().get("/q/metrics").then().statusCode(200).extract().asString();
        return text.lines()
                .filter(l -> l.startsWith(series + "{") && l.contains("model=\"" + model + "\""))
                .mapToDouble(l -> Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1)))
                .findFirst()
                .orElse(0);
    }

    @Test
    void badRequestsAreProblemDetailsThatNameTheProblem() {
        problem("/v1/completions", Map.of("model", "nope:1", "prompt", "hi"), 404, "nope:1");
        problem("/v1/completions", Map.of("prompt", "hi"), 400, "\"model\"");
        problem("/v1/completions", Map.of("model", "gpt-tiny:1"), 400, "\"prompt\"");
        problem(
                "/v1/completions",
                Map.of("model", "gpt-tiny:1", "prompt", "hi", "max_tokens", 513),
                400,
                "max-tokens");
        problem(
                "/v1/completions",
                Map.of("model", "gpt-tiny:1", "prompt", "hi", "temperature", 3),
                400,
                "\"temperature\"");
        problem(
                "/v1/completions",
                Map.of("model", "gpt-tiny:1", "prompt", "hi", "n", 2),
                400,
                "\"n\"");
        problem(
                "/v1/completions",
                Map.of("model", "gpt-tiny:1", "prompt", "word ".repeat(80)),
                400,
                "positions");
        problem(
                "/v1/completions",
                Map.of("model", "gpt-tiny:1", "prompt", "x".repeat(8193)),
                413,
                "max-input-chars");
        problem(
                "/v1/chat/completions",
                Map.of("model", "gpt-tiny:1", "messages", List.of()),
                400,
                "\"messages\"");
        problem(
                "/v1/chat/completions",
                Map.of(
                        "model",
                        "gpt-tiny:1",
                        "messages",
                        List.of(Map.of("role", "tool", "content", "x"))),
                400,
                "messages[0].role");
        String metrics = given().get("/q/metrics").then().statusCode(200).extract().asString();
        assertThat(metrics)
                .contains(
                        "tuneline_serving_requests_total{endpoint=\"completions\",model=\"gpt-tiny\",outcome=\"rejected\"");
    }

    private static void problem(String path, Map<String, Object> body, int status, String detail) {
        given().contentType(ContentType.JSON)
                .body(body)
                .post(path)
                .then()
                .statusCode(status)
                .contentType("application/problem+json")
                .body("status", equalTo(status))
                .body("detail", containsString(detail));
    }

    private static JsonPath post(String path, Map<String, Object> body) {
        return given().contentType(ContentType.JSON)
                .body(body)
                .post(path)
                .then()
                .statusCode(200)
                .extract()
                .jsonPath();
    }
}
