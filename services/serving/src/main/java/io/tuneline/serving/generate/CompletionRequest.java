package io.tuneline.serving.generate;

import com.fasterxml.jackson.databind.JsonNode;
import io.tuneline.engine.tokenize.ChatMessage;
import io.tuneline.serving.api.ServingException;
import io.tuneline.serving.load.ServingConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * The fields of an OpenAI completions or chat completions request that serving honours ({@code
 * model}, {@code prompt} or {@code messages}, {@code max_tokens} / {@code max_completion_tokens},
 * {@code temperature}, {@code top_p}, {@code stop}, {@code n} (1 only), {@code seed}, {@code
 * stream}, {@code stream_options.include_usage}), checked against the limits; other fields are
 * ignored, as OpenAI-compatible servers do.
 */
public record CompletionRequest(
        String model,
        Optional<String> prompt,
        List<ChatMessage> messages,
        OptionalInt maxTokens,
        double temperature,
        double topP,
        List<String> stops,
        long seed,
        boolean stream,
        boolean includeUsage) {

    /** OpenAI's documented bound on stop sequences. */
    static final int MAX_STOPS = 4;

    static CompletionRequest completion(JsonNode body, ServingConfig.Limits limits) {
        JsonNode p = object(body).get("prompt");
        String prompt;
        if (p != null && p.isTextual()) {
            prompt = p.asText();
        } else if (p != null && p.isArray() && p.size() == 1 && p.get(0).isTextual()) {
            prompt = p.get(0).asText();
        } else {
            throw ServingException.badRequest(
                    "\"prompt\" must be a text (or an array of one text); token-id prompts and"
                            + " several prompts per request are not served");
        }
        checkChars("prompt", prompt.length(), limits);
        if (prompt.isEmpty()) {
            throw ServingException.badRequest("\"prompt\" is empty");
        }
        return common(body, Optional.of(prompt), List.of(), limits);
    }

    static CompletionRequest chat(JsonNode body, ServingConfig.Limits limits) {
        JsonNode m = object(body).get("messages");
        if (m == null || !m.isArray() || m.isEmpty()) {
            throw ServingException.badRequest(
                    "\"messages\" must be a non-empty array of {\"role\", \"content\"}");
        }
        List<ChatMessage> messages = new ArrayList<>();
        int chars = 0;
        for (int i = 0; i < m.size(); i++) {
            JsonNode message = m.get(i);
            String role = message.path("role").asText("");
            if (!List.of("system", "developer", "user", "assistant").contains(role)) {
                throw ServingException.badRequest(
                        "messages["
                                + i
                                + "].role must be system, developer, user or assistant, was '"
                                + role
                                + "'");
            }
            String content = content(message.get("content"), i);
            chars += content.length();
            messages.add(new ChatMessage(role.equals("developer") ? "system" : role, content));
        }
        checkChars("messages", chars, limits);
        return common(body, Optional.empty(), messages, limits);
    }

    /** A message's content: a text, or an array of {"type": "text", "text": ...} parts. */
    private static String content(JsonNode c, int i) {
        if (c != null && c.isTextual()) {
            return c.asText();
        }
        if (c != null && c.isArray()) {
            StringBuilder text = new StringBuilder();
            for (JsonNode part : c) {
                if (!part.path("type").asText().equals("text") || !part.path("text").isTextual()) {
                    throw ServingException.badRequest(
                            "messages[" + i + "].content: only text parts are served");
                }
                text.append(part.get("text").asText());
            }
            return text.toString();
        }
        throw ServingException.badRequest("messages[" + i + "].content must be a text");
    }

    private static CompletionRequest common(
            JsonNode body,
            Optional<String> prompt,
            List<ChatMessage> messages,
            ServingConfig.Limits limits) {
        JsonNode model = body.get("model");
        if (model == null || !model.isTextual() || model.asText().isBlank()) {
            throw ServingException.badRequest(
                    "\"model\" must name a model: name, name:version or name:alias");
        }
        JsonNode n = body.get("n");
        if (n != null && !n.isNull() && n.asInt(0) != 1) {
            throw ServingException.badRequest("\"n\" must be 1: one choice per request is served");
        }
        OptionalInt maxTokens = OptionalInt.empty();
        for (String field : List.of("max_completion_tokens", "max_tokens")) {
            JsonNode t = body.get(field);
            if (t != null && !t.isNull()) {
                if (!t.canConvertToInt() || !t.isIntegralNumber() || t.asInt() < 1) {
                    throw ServingException.badRequest(
                            "\"" + field + "\" must be a whole number of at least 1");
                }
                if (t.asInt() > limits.maxTokens()) {
                    throw ServingException.badRequest(
                            "\""
                                    + field
                                    + "\" is "
                                    + t.asInt()
                                    + "; at most "
                                    + limits.maxTokens()
                                    + " tokens per request (tuneline.serving.limits.max-tokens)");
                }
                maxTokens = OptionalInt.of(t.asInt());
                break;
            }
        }
        double temperature = number(body, "temperature", 1, 0, 2, true);
        double topP = number(body, "top_p", 1, 0, 1, false);
        List<String> stops = new ArrayList<>();
        JsonNode stop = body.get("stop");
        if (stop != null && stop.isTextual()) {
            stops.add(stop.asText());
        } else if (stop != null && stop.isArray()) {
            for (JsonNode s : stop) {
                if (!s.isTextual()) {
                    throw ServingException.badRequest("\"stop\" must be a text or texts");
                }
                stops.add(s.asText());
            }
        } else if (stop != null && !stop.isNull()) {
            throw ServingException.badRequest("\"stop\" must be a text or an array of texts");
        }
        if (stops.size() > MAX_STOPS || stops.stream().anyMatch(String::isEmpty)) {
            throw ServingException.badRequest(
                    "\"stop\" takes at most " + MAX_STOPS + " non-empty sequences");
        }
        JsonNode seed = body.get("seed");
        long seedValue =
                seed != null && seed.canConvertToLong()
                        ? seed.asLong()
                        : java.util.concurrent.ThreadLocalRandom.current().nextLong();
        return new CompletionRequest(
                model.asText().trim(),
                prompt,
                messages,
                maxTokens,
                temperature,
                topP,
                List.copyOf(stops),
                seedValue,
                body.path("stream").asBoolean(false),
                body.path("stream_options").path("include_usage").asBoolean(false));
    }

    private static double number(
            JsonNode body,
            String field,
            double fallback,
            double min,
            double max,
            boolean minIncluded) {
        JsonNode v = body.get(field);
        if (v == null || v.isNull()) {
            return fallback;
        }
        double d = v.asDouble(Double.NaN);
        if (!v.isNumber() || !(minIncluded ? d >= min : d > min) || !(d <= max)) {
            throw ServingException.badRequest(
                    "\""
                            + field
                            + "\" must be a number in "
                            + (minIncluded ? "[" : "(")
                            + min
                            + ", "
                            + max
                            + "]");
        }
        return d;
    }

    private static JsonNode object(JsonNode body) {
        if (body == null || !body.isObject()) {
            throw ServingException.badRequest("the body must be a JSON object");
        }
        return body;
    }

    private static void checkChars(String field, int chars, ServingConfig.Limits limits) {
        if (chars > limits.maxInputChars()) {
            throw ServingException.tooLarge(
                    "\""
                            + field
                            + "\" has "
                            + chars
                            + " characters; at most "
                            + limits.maxInputChars()
                            + " (tuneline.serving.limits.max-input-chars)");
        }
    }
}
