package io.tuneline.training.tools;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.S3Uri;
import io.tuneline.common.store.StoreSettings;
import io.tuneline.engine.model.llama.LlamaCheckpoint;
import io.tuneline.engine.model.llama.LlamaConfig;
import io.tuneline.engine.tokenize.ModelTokens;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * {@code ./platform base-model}: writes a small Llama-layout base model with random weights around
 * a real tokenizer ({@code tokenizer.json} and {@code tokenizer_config.json} with its chat
 * template) and uploads it to the store, so that causal-LM jobs can run on the one-machine stack
 * where no pretrained causal-LM weights can be downloaded. The model is what {@code
 * LlamaForCausalLM(config)} initialises (transformers loads it as it is); only its size is small.
 *
 * <p>Usage: {@code BaseModelWriter MODEL_TYPE TOKENIZER_DIR s3://BUCKET/PREFIX/ [SEED]}; the store
 * is the local one unless {@code S3_ENDPOINT}, {@code S3_ACCESS_KEY} and {@code S3_SECRET_KEY} say
 * otherwise.
 */
public final class BaseModelWriter {
    private static final ObjectMapper JSON = new ObjectMapper();

    private BaseModelWriter() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 3 || args.length > 4) {
            System.err.println(
                    "usage: BaseModelWriter MODEL_TYPE TOKENIZER_DIR s3://BUCKET/PREFIX/ [SEED]");
            System.exit(2);
        }
        S3Uri target = S3Uri.parse(args[2].endsWith("/") ? args[2] : args[2] + "/");
        Path dir = Files.createTempDirectory("base-model");
        write(args[0], Path.of(args[1]), dir, args.length == 4 ? Long.parseLong(args[3]) : 42);
        String endpoint = System.getenv().getOrDefault("S3_ENDPOINT", "http://127.0.0.1:9000");
        try (ArtifactStore store =
                        new ArtifactStore(
                                new StoreSettings(
                                        endpoint,
                                        System.getenv().getOrDefault("S3_ACCESS_KEY", "minioadmin"),
                                        System.getenv()
                                                .getOrDefault(
                                                        "S3_SECRET_KEY", "tuneline-local-secret"),
                                        target.bucket(),
                                        System.getenv().getOrDefault("S3_REGION", "us-east-1"),
                                        StoreSettings.DEFAULT_PART_SIZE,
                                        Duration.ofSeconds(30)));
                var files = Files.list(dir)) {
            for (Path f : files.sorted().toList()) {
                store.put(
                        S3Uri.parse(args[2].replaceAll("/?$", "/") + f.getFileName()),
                        f,
                        "application/octet-stream");
                System.out.printf("  %-24s %,12d bytes%n", f.getFileName(), Files.size(f));
            }
        }
        System.out.println("written to " + target);
    }

    /**
     * Writes the directory: {@code config.json} (hidden 64, 2 layers, 4 heads on 2 key/value heads,
     * the tokenizer's vocabulary, its BOS/EOS ids), {@code model.safetensors} and the tokenizer's
     * two files.
     */
    static void write(String modelType, Path tokenizerDir, Path out, long seed) throws IOException {
        if (!LlamaConfig.MODEL_TYPES.contains(modelType)) {
            throw new IllegalArgumentException(
                    "model type '" + modelType + "' is not one of " + LlamaConfig.MODEL_TYPES);
        }
        for (String f : List.of(ModelTokens.TOKENIZER, ModelTokens.TOKENIZER_CONFIG)) {
            if (!Files.isRegularFile(tokenizerDir.resolve(f))) {
                throw new IllegalArgumentException(tokenizerDir.resolve(f) + " does not exist");
            }
            Files.copy(tokenizerDir.resolve(f), out.resolve(f));
        }
        ModelTokens tokens = ModelTokens.read(out);
        var config =
                JSON.createObjectNode()
                        .put("model_type", modelType)
                        .put("hidden_size", 64)
                        .put("intermediate_size", 172)
                        .put("num_hidden_layers", 2)
                        .put("num_attention_heads", 4)
                        .put("num_key_value_heads", 2)
                        .put("head_dim", 16)
                        .put("vocab_size", vocabSize(out.resolve(ModelTokens.TOKENIZER)))
                        .put("max_position_embeddings", 2048)
                        .put("rms_norm_eps", 1e-6)
                        .put("rope_theta", 10000.0)
                        .put("tie_word_embeddings", true);
        tokens.bos().ifPresent(t -> config.put("bos_token_id", t.id()));
        tokens.eos().ifPresent(t -> config.put("eos_token_id", t.id()));
        LlamaCheckpoint.saveRandom(LlamaConfig.parse(config.toString()), out, seed);
    }

    /** One more than the largest id in the vocabulary and the added tokens. */
    static int vocabSize(Path tokenizerJson) throws IOException {
        JsonNode root = JSON.readTree(tokenizerJson.toFile());
        long max = -1;
        for (JsonNode id : (Iterable<JsonNode>) () -> root.path("model").path("vocab").elements()) {
            max = Math.max(max, id.asLong());
        }
        for (JsonNode t : root.path("added_tokens")) {
            max = Math.max(max, t.path("id").asLong());
        }
        if (max < 0) {
            throw new IllegalArgumentException(tokenizerJson + " has no vocabulary");
        }
        return Math.toIntExact(max + 1);
    }
}
