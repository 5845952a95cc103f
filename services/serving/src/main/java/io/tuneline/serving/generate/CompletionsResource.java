package io.tuneline.serving.generate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.serving.api.ServingException;
import io.tuneline.serving.load.LoadedModel;
import io.tuneline.serving.load.LoadedModels;
import io.tuneline.serving.load.ModelQueue;
import io.tuneline.serving.load.ServingConfig;
import io.tuneline.serving.load.ServingMetrics;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import jakarta.ws.rs.core.StreamingOutput;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.UUID;
import java.util.function.Consumer;
import org.jboss.logging.Logger;

/**
 * OpenAI's {@code POST /v1/completions} and {@code POST /v1/chat/completions} for causal LM
 * versions, so that OpenAI clients work unchanged: the same request and response fields, {@code
 * usage} counts, and with {@code stream: true} Server-Sent Events of OpenAI's chunk objects ended
 * by {@code data: [DONE]}. Greedy at temperature 0.
 */
@Path("/v1")
public class CompletionsResource {
    private static final Logger LOG = Logger.getLogger(CompletionsResource.class);
    static final MediaType EVENT_STREAM = MediaType.SERVER_SENT_EVENTS_TYPE;

    private final LoadedModels models;
    private final ServingConfig config;
    private final ServingMetrics metrics;
    private final ObjectMapper json;

    public CompletionsResource(
            LoadedModels models, ServingConfig config, ServingMetrics metrics, ObjectMapper json) {
        this.models = models;
        this.config = config;
        this.metrics = metrics;
        this.json = json;
    }

    @POST
    @Path("/completions")
    @Consumes(MediaType.APPLICATION_JSON)
    public Response completions(JsonNode body) {
        return answer(body, false);
    }

    @POST
    @Path("/chat/completions")
    @Consumes(MediaType.APPLICATION_JSON)
    public Response chat(JsonNode body) {
        return answer(body, true);
    }

    private Response answer(JsonNode body, boolean chat) {
        String endpoint = chat ? "chat.completions" : "completions";
        long start = System.nanoTime();
        String tag = ServingMetrics.UNKNOWN_MODEL;
        int status = 500;
        boolean streaming = false;
        ModelQueue.Ticket admitted = null;
        try {
            CompletionRequest request =
                    chat
                            ? CompletionRequest.chat(body, config.limits())
                            : CompletionRequest.completion(body, config.limits());
            LanguageModel lm = null;
            ModelQueue.Ticket ticket = null;
            for (int attempt = 0; ticket == null; attempt++) {
                LoadedModel loaded = models.get(request.model());
                tag = loaded.version().model();
                if (!(loaded instanceof LanguageModel l)) {
                    throw ServingException.badRequest(
                            loaded.version().id()
                                    + " is a "
                                    + loaded.task()
                                    + " model, not a causal LM; use /v1/models/"
                                    + loaded.version().id()
                                    + "/classify");
                }
                lm = l;
                try {
                    // Admitted before a stream starts, so a full queue is a 429, not a broken
                    // stream.
                    ticket = lm.queue().enter();
                } catch (ModelQueue.Retired e) {
                    // The alias moved between resolving it and queueing: resolve it again.
                    if (attempt > 0) {
                        throw e;
                    }
                }
            }
            admitted = ticket;
            long[] prompt =
                    chat
                            ? lm.encodeChat(request.messages())
                            : lm.encodePrompt(request.prompt().get());
            int room = lm.maxPositions() - prompt.length;
            if (room < 1) {
                throw ServingException.badRequest(
                        "the prompt has "
                                + prompt.length
                                + " tokens; the model takes "
                                + lm.maxPositions()
                                + " positions in all, so at most "
                                + (lm.maxPositions() - 1)
                                + " prompt tokens");
            }
            // OpenAI's defaults: 16 tokens for a completion; a chat answer runs to its end (here:
            // the limit or the model's positions).
            int maxTokens = request.maxTokens().orElse(chat ? config.limits().maxTokens() : 16);
            Sampler sampler = new Sampler(request.temperature(), request.topP(), request.seed());
            Answer answer =
                    new Answer(
                            (chat ? "chatcmpl-" : "cmpl-") + UUID.randomUUID(),
                            System.currentTimeMillis() / 1000,
                            lm.version().id(),
                            chat);
            if (!request.stream()) {
                LanguageModel.Generation g =
                        lm.generate(
                                ticket, prompt, maxTokens, sampler, request.stops(), piece -> {});
                metrics.tokens(tag, g.promptTokens(), g.completionTokens());
                status = 200;
                return Response.ok(answer.complete(g), MediaType.APPLICATION_JSON_TYPE).build();
            }
            streaming = true;
            String model = tag;
            LanguageModel streamed = lm;
            ModelQueue.Ticket streamTicket = ticket;
            StreamingOutput events =
                    out -> {
                        int code = 500;
                        try (streamTicket) {
                            stream(
                                    out,
                                    streamed,
                                    streamTicket,
                                    prompt,
                                    maxTokens,
                                    sampler,
                                    request,
                                    answer);
                            code = 200;
                        } finally {
                            metrics.record(model, endpoint, code, start);
                        }
                    };
            return Response.ok(events, EVENT_STREAM)
                    .header("Cache-Control", "no-cache")
                    .header("X-Accel-Buffering", "no")
                    .build();
        } catch (ServingException e) {
            status = e.status();
            throw e;
        } finally {
            if (!streaming) {
                if (admitted != null) {
                    admitted.close();
                }
                metrics.record(tag, endpoint, status, start);
            }
        }
    }

    private void stream(
            OutputStream out,
            LanguageModel lm,
            ModelQueue.Ticket ticket,
            long[] prompt,
            int maxTokens,
            Sampler sampler,
            CompletionRequest request,
            Answer answer)
            throws IOException {
        if (answer.chat) {
            send(out, answer.chunk(role()));
        }
        Consumer<String> onText =
                piece -> {
                    if (piece.isEmpty()) {
                        return;
                    }
                    try {
                        send(out, answer.chunk(answer.chat ? content(piece) : piece));
                    } catch (IOException e) {
                        throw new java.io.UncheckedIOException(e);
                    }
                };
        LanguageModel.Generation g;
        try {
            g = lm.generate(ticket, prompt, maxTokens, sampler, request.stops(), onText);
        } catch (java.io.UncheckedIOException e) {
            LOG.debugf("stream closed by the client: %s", e.getMessage());
            return;
        } catch (RuntimeException e) {
            LOG.errorf(e, "generation failed mid-stream for %s", lm.version().id());
            ObjectNode error = json.createObjectNode();
            error.putObject("error")
                    .put("message", "generation failed; the serving log has the cause")
                    .put("type", "server_error");
            send(out, error);
            throw e;
        }
        metrics.tokens(lm.version().model(), g.promptTokens(), g.completionTokens());
        send(out, answer.last(g.finishReason()));
        if (request.includeUsage()) {
            send(out, answer.usageChunk(g));
        }
        out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    private void send(OutputStream out, JsonNode event) throws IOException {
        out.write(
                ("data: " + json.writeValueAsString(event) + "\n\n")
                        .getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    private ObjectNode role() {
        return json.createObjectNode().put("role", "assistant").put("content", "");
    }

    private ObjectNode content(String piece) {
        return json.createObjectNode().put("content", piece);
    }

    /** One answer's identity and the OpenAI objects that carry it. */
    private final class Answer {
        final String id;
        final long created;
        final String model;
        final boolean chat;

        Answer(String id, long created, String model, boolean chat) {
            this.id = id;
            this.created = created;
            this.model = model;
            this.chat = chat;
        }

        private ObjectNode envelope(String object) {
            ObjectNode o = json.createObjectNode();
            o.put("id", id);
            o.put("object", object);
            o.put("created", created);
            o.put("model", model);
            return o;
        }

        ObjectNode complete(LanguageModel.Generation g) {
            ObjectNode o = envelope(chat ? "chat.completion" : "text_completion");
            ObjectNode choice = o.putArray("choices").addObject();
            choice.put("index", 0);
            if (chat) {
                choice.putObject("message")
                        .put("role", "assistant")
                        .put("content", g.text())
                        .putNull("refusal");
            } else {
                choice.put("text", g.text());
            }
            choice.putNull("logprobs");
            choice.put("finish_reason", g.finishReason());
            o.set("usage", usage(g));
            return o;
        }

        /** A chunk with new text (completions) or a delta (chat). */
        ObjectNode chunk(Object piece) {
            ObjectNode o = envelope(chat ? "chat.completion.chunk" : "text_completion");
            ObjectNode choice = o.putArray("choices").addObject();
            choice.put("index", 0);
            if (chat) {
                choice.set("delta", (JsonNode) piece);
            } else {
                choice.put("text", (String) piece);
            }
            choice.putNull("logprobs");
            choice.putNull("finish_reason");
            return o;
        }

        ObjectNode last(String finishReason) {
            ObjectNode o = chunk(chat ? json.createObjectNode() : "");
            ((ObjectNode) o.get("choices").get(0)).put("finish_reason", finishReason);
            return o;
        }

        /** {@code stream_options.include_usage}: a last chunk with no choices and the usage. */
        ObjectNode usageChunk(LanguageModel.Generation g) {
            ObjectNode o = envelope(chat ? "chat.completion.chunk" : "text_completion");
            o.set("choices", json.createArrayNode());
            o.set("usage", usage(g));
            return o;
        }

        private ObjectNode usage(LanguageModel.Generation g) {
            return json.createObjectNode()
                    .put("prompt_tokens", g.promptTokens())
                    .put("completion_tokens", g.completionTokens())
                    .put("total_tokens", g.promptTokens() + g.completionTokens());
        }
    }
}
