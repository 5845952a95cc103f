package io.tuneline.preprocessing.prepare;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.huggingface.tokenizers.jni.TokenizersLibrary;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.ModelFetcher;
import io.tuneline.engine.tokenize.ModelTokens;
import io.tuneline.engine.tokenize.SpecialToken;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The base model's own tokenizer ({@code tokenizer.json} through DJL's Hugging Face tokenizers,
 * offline), with what preprocessing needs to know about it: whether it lower-cases, its special
 * tokens and chat template ({@link ModelTokens}, from the model's {@code tokenizer_config.json}),
 * and an id (model reference and the file's sha256) for the manifest.
 */
public final class ModelTokenizer implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final HuggingFaceTokenizer tokenizer;
    private final String ref;
    private final String sha256;
    private final boolean lowercase;
    private final ModelTokens tokens;

    private ModelTokenizer(
            HuggingFaceTokenizer tokenizer,
            String ref,
            String sha256,
            boolean lowercase,
            ModelTokens tokens) {
        this.tokenizer = tokenizer;
        this.ref = ref;
        this.sha256 = sha256;
        this.lowercase = lowercase;
        this.tokens = tokens;
    }

    /** The tokenizer of a built-in base model or a local model directory. */
    public static ModelTokenizer of(String baseModelRef) throws IOException {
        return of(baseModelRef, ModelFetcher.NONE);
    }

    /**
     * The tokenizer of any base model the catalogue resolves: built-in ({@code minilm-l6}), a local
     * Hugging Face directory, or an s3:// one whose {@code config.json} and {@code tokenizer.json}
     * {@code fetcher} copies (its weights are not fetched).
     */
    public static ModelTokenizer of(String baseModelRef, ModelFetcher fetcher) throws IOException {
        Path scratch = Files.createTempDirectory("tuneline-base-tokenizer-");
        try {
            ModelCatalog.TokenizerFiles files =
                    ModelCatalog.tokenizerFiles(baseModelRef, fetcher, scratch);
            byte[] bytes;
            try (InputStream in = files.tokenizer().open()) {
                bytes = in.readAllBytes();
            }
            return of(baseModelRef, bytes, files.directory());
        } finally {
            try (var files = Files.walk(scratch)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    static ModelTokenizer of(String ref, byte[] tokenizerJson) throws IOException {
        return of(ref, tokenizerJson, Optional.empty());
    }

    /**
     * @param directory where {@code tokenizer_config.json}, {@code special_tokens_map.json} and
     *     {@code config.json} may lie beside the tokenizer; without them the end-of-sequence token
     *     is {@link ModelTokens}' documented fallback
     */
    static ModelTokenizer of(String ref, byte[] tokenizerJson, Optional<Path> directory)
            throws IOException {
        JsonNode config = JSON.readTree(tokenizerJson);
        ModelTokens tokens =
                ModelTokens.of(
                        config,
                        side(directory, ModelCatalog.TOKENIZER_CONFIG),
                        side(directory, ModelCatalog.SPECIAL_TOKENS_MAP),
                        side(directory, ModelCatalog.CONFIG));
        Path file = Files.createTempFile("tuneline-tokenizer-", ".json");
        try {
            Files.write(file, tokenizerJson);
            // Lengths are measured before truncation, so the tokenizer itself must not truncate.
            HuggingFaceTokenizer tokenizer =
                    HuggingFaceTokenizer.newInstance(
                            file, Map.of("truncation", "false", "padding", "false"));
            return new ModelTokenizer(
                    tokenizer, ref, sha256(tokenizerJson), lowercases(config), tokens);
        } finally {
            Files.deleteIfExists(file);
        }
    }

    private static Optional<JsonNode> side(Optional<Path> directory, String name)
            throws IOException {
        if (directory.isEmpty() || !Files.isRegularFile(directory.get().resolve(name))) {
            return Optional.empty();
        }
        return Optional.of(JSON.readTree(directory.get().resolve(name).toFile()));
    }

    /** BERT's normaliser says so in {@code lowercase}; other pipelines name a Lowercase step. */
    private static boolean lowercases(JsonNode config) {
        JsonNode n = config.path("normalizer");
        if (n.path("lowercase").asBoolean(false)) {
            return true;
        }
        if ("Lowercase".equals(n.path("type").asText())) {
            return true;
        }
        for (JsonNode step : n.path("normalizers")) {
            if ("Lowercase".equals(step.path("type").asText())
                    || step.path("lowercase").asBoolean(false)) {
                return true;
            }
        }
        return false;
    }

    /**
     * Token ids of texts, with the model's special tokens (e.g. {@code [CLS] ... [SEP]}) when
     * asked. Calls the tokenizer library directly for the ids alone: {@link Encoding} also copies
     * out every token's string and character span, which halves the throughput and fills the heap
     * with garbage.
     *
     * <p>One text at a time on the calling thread, not the library's batch encode: preprocessing
     * already runs one worker per core, and the batch encode's rayon threads, on top of them, spin
     * and yield between batches (64 MiB benchmark, 2 cores, alternating runs: preprocessing 4.23 /
     * 4.07 -> 4.49 / 4.19 MB/s; docs/benchmarks.md).
     */
    public long[][] encode(List<String> texts, boolean specialTokens) {
        long[][] out = new long[texts.size()][];
        for (int i = 0; i < out.length; i++) {
            long encoding =
                    TokenizersLibrary.LIB.encode(
                            tokenizer.getHandle(), texts.get(i), specialTokens);
            try {
                out[i] = TokenizersLibrary.LIB.getTokenIds(encoding);
            } finally {
                TokenizersLibrary.LIB.deleteEncoding(encoding);
            }
        }
        return out;
    }

    /**
     * Tokens of texts with their character offsets (Unicode code points), no special tokens added:
     * for rendered chats, whose template writes its own. One text at a time, as {@link #encode}.
     */
    public Encoding[] encodeWithOffsets(List<String> texts) {
        Encoding[] out = new Encoding[texts.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = tokenizer.encode(texts.get(i), false, false);
        }
        return out;
    }

    /** The model's special tokens and chat templates. */
    public ModelTokens tokens() {
        return tokens;
    }

    public String ref() {
        return ref;
    }

    public String sha256() {
        return sha256;
    }

    public boolean lowercase() {
        return lowercase;
    }

    /** The end-of-sequence id appended to causal examples; -1 when the tokenizer has none. */
    public long eosId() {
        return tokens.eos().map(SpecialToken::id).orElse(-1L);
    }

    /** The end-of-sequence token's text, or null when the tokenizer has none. */
    public String eosToken() {
        return tokens.eos().map(SpecialToken::content).orElse(null);
    }

    @Override
    public void close() {
        tokenizer.close();
    }

    private static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
