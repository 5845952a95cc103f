package io.tuneline.evaluation.scenario;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.tokenize.ChatMessage;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The recorded requests a scenario replays ({@code ScenarioSpec.requests}): a JSON Lines file, one
 * request body per line as users send it to the serving service. Read whole before anything is
 * sent, so a bad line fails the stage with its line number before the candidate is loaded.
 */
public final class RecordedRequests {
    private static final ObjectMapper JSON = new ObjectMapper();

    private RecordedRequests() {}

    /** A classify request: its texts. */
    public record Classify(int line, List<String> inputs) {}

    /**
     * A causal LM request: a completion {@code prompt} or a chat's {@code messages} (exactly one of
     * them), its token budget and stop sequences.
     */
    public record Generate(
            int line,
            Optional<String> prompt,
            List<ChatMessage> messages,
            int maxTokens,
            List<String> stops) {
        public boolean chat() {
            return prompt.isEmpty();
        }
    }

    /**
     * Reads a classifier's requests ({@code {"inputs": ["text", ...]}}); at most {@code max}.
     *
     * @throws IllegalArgumentException naming the source and line of the first bad request
     */
    public static List<Classify> classify(InputStream in, String source, int max)
            throws IOException {
        List<Classify> out = new ArrayList<>();
        read(
                in,
                source,
                max,
                (line, body) -> {
                    JsonNode inputs = body.path("inputs");
                    if (!inputs.isArray() || inputs.isEmpty()) {
                        throw bad(source, line, "has no \"inputs\" array of texts");
                    }
                    List<String> texts = new ArrayList<>();
                    for (JsonNode t : inputs) {
                        if (!t.isTextual()) {
                            throw bad(source, line, "has an input that is not a text: " + t);
                        }
                        texts.add(t.asText());
                    }
                    out.add(new Classify(line, texts));
                });
        return out;
    }

    /**
     * Reads a causal LM's requests ({@code {"prompt": ...}} or {@code {"messages": [...]}}, with
     * {@code max_tokens} or {@code max_completion_tokens} and {@code stop}); at most {@code max}.
     *
     * @param defaultMaxTokens the budget of a request that names none
     * @throws IllegalArgumentException naming the source and line of the first bad request
     */
    public static List<Generate> generate(
            InputStream in, String source, int max, int defaultMaxTokens) throws IOException {
        List<Generate> out = new ArrayList<>();
        read(
                in,
                source,
                max,
                (line, body) -> {
                    JsonNode prompt = body.path("prompt");
                    JsonNode messages = body.path("messages");
                    if (prompt.isMissingNode() == messages.isMissingNode()) {
                        throw bad(
                                source,
                                line,
                                "needs either \"prompt\" (a completion) or \"messages\" (a chat)");
                    }
                    if (!prompt.isMissingNode() && !prompt.isTextual()) {
                        throw bad(source, line, "has a \"prompt\" that is not a text");
                    }
                    List<ChatMessage> chat = new ArrayList<>();
                    if (!messages.isMissingNode()) {
                        if (!messages.isArray() || messages.isEmpty()) {
                            throw bad(source, line, "has no messages in \"messages\"");
                        }
                        for (JsonNode m : messages) {
                            if (!m.path("role").isTextual() || !m.path("content").isTextual()) {
                                throw bad(
                                        source,
                                        line,
                                        "has a message without a text \"role\" and \"content\": "
                                                + m);
                            }
                            chat.add(
                                    new ChatMessage(
                                            m.get("role").asText(), m.get("content").asText()));
                        }
                    }
                    int budget = defaultMaxTokens;
                    for (String field : List.of("max_completion_tokens", "max_tokens")) {
                        JsonNode t = body.path(field);
                        if (!t.isMissingNode()) {
                            if (!t.canConvertToInt() || t.asInt() < 1) {
                                throw bad(source, line, "has a \"" + field + "\" below 1: " + t);
                            }
                            budget = t.asInt();
                        }
                    }
                    List<String> stops = new ArrayList<>();
                    JsonNode stop = body.path("stop");
                    if (stop.isTextual()) {
                        stops.add(stop.asText());
                    } else if (stop.isArray()) {
                        stop.forEach(s -> stops.add(s.asText()));
                    }
                    out.add(
                            new Generate(
                                    line,
                                    prompt.isTextual()
                                            ? Optional.of(prompt.asText())
                                            : Optional.empty(),
                                    chat,
                                    budget,
                                    stops));
                });
        return out;
    }

    /** The classify body of {@code request} for {@code candidate}'s endpoint. */
    public static ScenarioRunner.Request request(
            String candidate, Classify request, List<String> offlineLabels) {
        ObjectNode body = JSON.createObjectNode();
        ArrayNode inputs = body.putArray("inputs");
        request.inputs().forEach(inputs::add);
        return new ScenarioRunner.Request(
                "/v1/models/" + candidate + "/classify",
                body,
                Optional.of(String.join("\n", offlineLabels)));
    }

    /**
     * The greedy completions or chat body of {@code request}, as recorded but with {@code
     * temperature} 0, for {@code candidate}; {@code offline} is the offline model's answer, absent
     * when the prompt leaves the model no position to answer in.
     */
    public static ScenarioRunner.Request request(
            String candidate, Generate request, Optional<String> offline) {
        ObjectNode body = JSON.createObjectNode();
        body.put("model", candidate);
        if (request.chat()) {
            ArrayNode messages = body.putArray("messages");
            for (ChatMessage m : request.messages()) {
                messages.addObject().put("role", m.role()).put("content", m.content());
            }
        } else {
            body.put("prompt", request.prompt().orElseThrow());
        }
        body.put("max_tokens", request.maxTokens());
        body.put("temperature", 0);
        if (!request.stops().isEmpty()) {
            ArrayNode stop = body.putArray("stop");
            request.stops().forEach(stop::add);
        }
        return new ScenarioRunner.Request(
                request.chat() ? "/v1/chat/completions" : "/v1/completions", body, offline);
    }

    /** Where the first of {@code stops} starts in {@code text}, or its length: the served cut. */
    public static String cutAtStop(String text, List<String> stops) {
        int end = text.length();
        for (String s : stops) {
            int at = s.isEmpty() ? -1 : text.indexOf(s);
            if (at >= 0 && at < end) {
                end = at;
            }
        }
        return text.substring(0, end);
    }

    private interface LineReader {
        void read(int line, JsonNode body);
    }

    private static void read(InputStream in, String source, int max, LineReader reader)
            throws IOException {
        BufferedReader lines =
                new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
        String text;
        int line = 0;
        int read = 0;
        while (read < max && (text = lines.readLine()) != null) {
            line++;
            if (text.isBlank()) {
                continue;
            }
            JsonNode body;
            try {
                body = JSON.readTree(text);
            } catch (JsonProcessingException e) {
                throw bad(source, line, "is not JSON: " + e.getOriginalMessage());
            }
            if (!body.isObject()) {
                throw bad(source, line, "is not a JSON object");
            }
            reader.read(line, body);
            read++;
        }
        if (read == 0) {
            throw new IllegalArgumentException(source + " holds no request");
        }
    }

    private static IllegalArgumentException bad(String source, int line, String what) {
        return new IllegalArgumentException(source + " line " + line + ": the request " + what);
    }
}
