package io.tuneline.preprocessing.prepare;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.huggingface.tokenizers.jni.TokenizersLibrary;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.ModelFetcher;
import io.tuneline.engine.catalog.PretrainedModel;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * The base model's own tokenizer ({@code tokenizer.json} through DJL's Hugging Face tokenizers,
 * offline), with what preprocessing needs to know about it: whether it lower-cases, its
 * end-of-sequence token, and an id (model reference and the file's sha256) for the manifest.
 */
public final class ModelTokenizer implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** End-of-text tokens by family: GPT-2, Llama/T5, Gemma-style, BERT (its separator). */
    private static final List<String> EOS_CANDIDATES =
            List.of("<|endoftext|>", "</s>", "<eos>", "[SEP]");

    private final HuggingFaceTokenizer tokenizer;
    private final String ref;
    private final String sha256;
    private final boolean lowercase;
    private final long eosId;
    private final String eosToken;

    private ModelTokenizer(
            HuggingFaceTokenizer tokenizer,
            String ref,
            String sha256,
            boolean lowercase,
            long eosId,
            String eosToken) {
        this.tokenizer = tokenizer;
        this.ref = ref;
        this.sha256 = sha256;
        this.lowercase = lowercase;
        this.eosId = eosId;
        this.eosToken = eosToken;
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
            PretrainedModel.Source source = ModelCatalog.tokenizer(baseModelRef, fetcher, scratch);
            byte[] bytes;
            try (InputStream in = source.open()) {
                bytes = in.readAllBytes();
            }
            return of(baseModelRef, bytes);
        } finally {
            try (var files = Files.walk(scratch)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    static ModelTokenizer of(String ref, byte[] tokenizerJson) throws IOException {
        JsonNode config = JSON.readTree(tokenizerJson);
        Path file = Files.createTempFile("tuneline-tokenizer-", ".json");
        try {
            Files.write(file, tokenizerJson);
            // Lengths are measured before truncation, so the tokenizer itself must not truncate.
            HuggingFaceTokenizer tokenizer =
                    HuggingFaceTokenizer.newInstance(
                            file, Map.of("truncation", "false", "padding", "false"));
            long eosId = -1;
            String eosToken = null;
            for (String candidate : EOS_CANDIDATES) {
                for (JsonNode t : config.path("added_tokens")) {
                    if (candidate.equals(t.path("content").asText())) {
                        eosId = t.path("id").asLong();
                        eosToken = candidate;
                        break;
                    }
                }
                if (eosToken != null) {
                    break;
                }
            }
            return new ModelTokenizer(
                    tokenizer, ref, sha256(tokenizerJson), lowercases(config), eosId, eosToken);
        } finally {
            Files.deleteIfExists(file);
        }
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
     */
    public long[][] encode(List<String> texts, boolean specialTokens) {
        if (texts.isEmpty()) {
            return new long[0][];
        }
        long[] encodings =
                TokenizersLibrary.LIB.batchEncode(
                        tokenizer.getHandle(), texts.toArray(new String[0]), specialTokens);
        long[][] out = new long[encodings.length][];
        try {
            for (int i = 0; i < encodings.length; i++) {
                out[i] = TokenizersLibrary.LIB.getTokenIds(encodings[i]);
            }
        } finally {
            for (long e : encodings) {
                TokenizersLibrary.LIB.deleteEncoding(e);
            }
        }
        return out;
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
        return eosId;
    }

    public String eosToken() {
        return eosToken;
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
