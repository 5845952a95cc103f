package io.tuneline.engine.tokenize;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A model's special tokens and chat templates, read from its own files as Hugging Face's {@code
 * PreTrainedTokenizerBase} reads them: {@code tokenizer_config.json} ({@code bos_token}, {@code
 * eos_token}, {@code pad_token}, each a string or an AddedToken object {@code {"content": ...}};
 * {@code add_bos_token}; {@code chat_template}, a string or a list of {@code {name, template}}),
 * else {@code special_tokens_map.json} (same token fields); ids resolved through {@code
 * tokenizer.json}'s added tokens and vocabulary. {@code config.json}'s {@code eos_token_id} (a
 * number or a list) gives the ids generation stops at; its {@code bos_token_id} / {@code
 * pad_token_id} fill a token the tokenizer files leave unset.
 *
 * <p><b>Fallback</b> for a directory with neither tokenizer file (MiniLM inside its Maven artifact,
 * the test GPT-2s that borrow MiniLM's {@code tokenizer.json}): the end-of-sequence token is the
 * first of {@link #FALLBACK_EOS} that {@code tokenizer.json} lists as an added token, as the
 * tokenizer classes' defaults in transformers name them (GPT2Tokenizer {@code <|endoftext|>},
 * LlamaTokenizer/T5Tokenizer {@code </s>}, GemmaTokenizer {@code <eos>}, BertTokenizer's {@code
 * sep_token} {@code [SEP]}); {@link #source()} says which way the tokens were found.
 */
public record ModelTokens(
        Optional<SpecialToken> bos,
        Optional<SpecialToken> eos,
        Optional<SpecialToken> pad,
        boolean addBos,
        List<Long> stopIds,
        Map<String, String> chatTemplates,
        List<String> specialTokens,
        Source source) {

    /** Where the special tokens came from. */
    public enum Source {
        TOKENIZER_CONFIG,
        SPECIAL_TOKENS_MAP,
        FALLBACK
    }

    public static final String TOKENIZER_CONFIG = "tokenizer_config.json";
    public static final String SPECIAL_TOKENS_MAP = "special_tokens_map.json";
    public static final String MODEL_CONFIG = "config.json";
    public static final String TOKENIZER = "tokenizer.json";

    /**
     * The name HF gives a chat template that is a plain string, or the list entry used by default.
     */
    public static final String DEFAULT_TEMPLATE = "default";

    /**
     * Only for directories without tokenizer_config.json or special_tokens_map.json (see above).
     */
    public static final List<String> FALLBACK_EOS =
            List.of("<|endoftext|>", "</s>", "<eos>", "[SEP]");

    private static final ObjectMapper JSON = new ObjectMapper();

    public ModelTokens {
        stopIds = List.copyOf(stopIds);
        chatTemplates = Map.copyOf(chatTemplates);
        specialTokens = List.copyOf(specialTokens);
    }

    /** Reads a model directory; only {@code tokenizer.json} is required. */
    public static ModelTokens read(Path dir) throws IOException {
        return of(
                JSON.readTree(dir.resolve(TOKENIZER).toFile()),
                optional(dir.resolve(TOKENIZER_CONFIG)),
                optional(dir.resolve(SPECIAL_TOKENS_MAP)),
                optional(dir.resolve(MODEL_CONFIG)));
    }

    /** From the parsed files; absent ones as empty. */
    public static ModelTokens of(
            JsonNode tokenizer,
            Optional<JsonNode> tokenizerConfig,
            Optional<JsonNode> specialTokensMap,
            Optional<JsonNode> modelConfig) {
        Map<String, Long> ids = ids(tokenizer);
        Optional<JsonNode> declared = tokenizerConfig.or(() -> specialTokensMap);
        Source source =
                tokenizerConfig.isPresent()
                        ? Source.TOKENIZER_CONFIG
                        : specialTokensMap.isPresent()
                                ? Source.SPECIAL_TOKENS_MAP
                                : Source.FALLBACK;
        JsonNode config = modelConfig.orElse(JSON.createObjectNode());
        Optional<SpecialToken> bos;
        Optional<SpecialToken> eos;
        Optional<SpecialToken> pad;
        if (declared.isPresent()) {
            bos = token(declared.get(), "bos_token", ids);
            eos = token(declared.get(), "eos_token", ids);
            pad = token(declared.get(), "pad_token", ids);
        } else {
            bos = Optional.empty();
            pad = Optional.empty();
            eos =
                    FALLBACK_EOS.stream()
                            .filter(t -> addedTokens(tokenizer).containsKey(t))
                            .findFirst()
                            .map(t -> new SpecialToken(t, ids.get(t)));
        }
        // config.json names ids only; they fill what the tokenizer files leave unset.
        Map<Long, String> byId = new LinkedHashMap<>();
        ids.forEach((t, id) -> byId.putIfAbsent(id, t));
        if (bos.isEmpty()) {
            bos = firstId(config.path("bos_token_id")).flatMap(id -> named(id, byId));
        }
        if (pad.isEmpty()) {
            pad = firstId(config.path("pad_token_id")).flatMap(id -> named(id, byId));
        }
        List<Long> stops = new ArrayList<>();
        eos.ifPresent(t -> stops.add(t.id()));
        JsonNode configEos = config.path("eos_token_id");
        for (JsonNode n : configEos.isArray() ? configEos : List.of(configEos)) {
            if (n.canConvertToLong() && !stops.contains(n.asLong())) {
                stops.add(n.asLong());
            }
        }
        // LlamaTokenizer's add_bos_token defaults to true, but a fast tokenizer adds what its
        // post_processor says; here the flag is read as written, false when absent.
        boolean addBos =
                tokenizerConfig.map(c -> c.path("add_bos_token").asBoolean(false)).orElse(false)
                        && bos.isPresent();
        List<String> special = new ArrayList<>();
        for (JsonNode t : tokenizer.path("added_tokens")) {
            if (t.path("special").asBoolean(false)) {
                special.add(t.path("content").asText());
            }
        }
        return new ModelTokens(
                bos, eos, pad, addBos, stops, templates(tokenizerConfig), special, source);
    }

    /**
     * {@code ids} (a text encoded without special tokens, as preprocessing encodes training text)
     * with the BOS token in front when {@code add_bos_token} says so: the prompt a model is given
     * for a text, the same for serving a completion and for evaluating one offline.
     */
    public long[] withBos(long[] ids) {
        if (!addBos) {
            return ids;
        }
        long[] out = new long[ids.length + 1];
        out[0] = bos.orElseThrow().id();
        System.arraycopy(ids, 0, out, 1, ids.length);
        return out;
    }

    /** The chat template of that name, or the default one; empty when the model has none. */
    public Optional<String> chatTemplate(Optional<String> name) {
        if (name.isPresent()) {
            return Optional.ofNullable(chatTemplates.get(name.get()));
        }
        return Optional.ofNullable(chatTemplates.get(DEFAULT_TEMPLATE));
    }

    /**
     * The template a job renders chats with: its own {@code override} when given, else the model's
     * default one; empty when neither exists.
     */
    public Optional<ChatTemplate> chatTemplateFor(Optional<String> override) {
        return override.filter(t -> !t.isBlank())
                .or(this::chatTemplate)
                .map(t -> new ChatTemplate(t, this, specialTokens));
    }

    /** The chat template, as {@link #chatTemplate(Optional)} with no name. */
    public Optional<String> chatTemplate() {
        return chatTemplate(Optional.empty());
    }

    private static Map<String, String> templates(Optional<JsonNode> tokenizerConfig) {
        Map<String, String> out = new LinkedHashMap<>();
        JsonNode t = tokenizerConfig.map(c -> c.path("chat_template")).orElse(null);
        if (t == null) {
            return out;
        }
        if (t.isTextual()) {
            out.put(DEFAULT_TEMPLATE, t.asText());
        } else if (t.isArray()) {
            // transformers saves several templates as [{"name": ..., "template": ...}].
            for (JsonNode e : t) {
                if (e.path("name").isTextual() && e.path("template").isTextual()) {
                    out.put(e.get("name").asText(), e.get("template").asText());
                }
            }
        }
        return out;
    }

    private static Optional<SpecialToken> token(
            JsonNode declared, String field, Map<String, Long> ids) {
        JsonNode n = declared.path(field);
        String content =
                n.isTextual()
                        ? n.asText()
                        : n.path("content").isTextual() ? n.get("content").asText() : null;
        if (content == null) {
            return Optional.empty();
        }
        Long id = ids.get(content);
        if (id == null) {
            throw new IllegalArgumentException(
                    field
                            + " '"
                            + content
                            + "' is not in tokenizer.json (neither an added token nor in the"
                            + " vocabulary); tokenizer_config.json and tokenizer.json are not from"
                            + " the same model");
        }
        return Optional.of(new SpecialToken(content, id));
    }

    private static Optional<Long> firstId(JsonNode n) {
        if (n.isArray()) {
            return n.isEmpty() ? Optional.empty() : firstId(n.get(0));
        }
        return n.canConvertToLong() ? Optional.of(n.asLong()) : Optional.empty();
    }

    private static Optional<SpecialToken> named(long id, Map<Long, String> byId) {
        return Optional.ofNullable(byId.get(id)).map(t -> new SpecialToken(t, id));
    }

    private static Map<String, Long> addedTokens(JsonNode tokenizer) {
        Map<String, Long> out = new LinkedHashMap<>();
        for (JsonNode t : tokenizer.path("added_tokens")) {
            out.put(t.path("content").asText(), t.path("id").asLong());
        }
        return out;
    }

    /** Added tokens first (they win, as in the tokenizers library), then the model's vocabulary. */
    private static Map<String, Long> ids(JsonNode tokenizer) {
        Map<String, Long> out = addedTokens(tokenizer);
        JsonNode vocab = tokenizer.path("model").path("vocab");
        if (vocab.isObject()) {
            vocab.fields()
                    .forEachRemaining(e -> out.putIfAbsent(e.getKey(), e.getValue().asLong()));
        } else if (vocab.isArray()) {
            // Unigram models list [piece, score] pairs; the id is the position.
            long i = 0;
            for (JsonNode e : vocab) {
                out.putIfAbsent(e.path(0).asText(), i++);
            }
        }
        return out;
    }

    private static Optional<JsonNode> optional(Path file) throws IOException {
        return Files.isRegularFile(file)
                ? Optional.of(JSON.readTree(file.toFile()))
                : Optional.empty();
    }
}
