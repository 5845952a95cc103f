package io.tuneline.engine.model.llama;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.io.safetensors.SafetensorsStreamWriter;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.nn.NativeCopy;
import io.tuneline.engine.quant.Nf4;
import io.tuneline.engine.quant.Nf4Loading;
import io.tuneline.engine.runtime.EngineRuntime;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import java.util.function.UnaryOperator;

/**
 * Loads Llama-family checkpoints from a Hugging Face model directory: {@code config.json} and
 * either {@code model.safetensors} or a sharded checkpoint, {@code model.safetensors.index.json}
 * whose {@code weight_map} names each tensor's shard.
 *
 * <p>Tensors are read one at a time ({@link SafetensorsFile} reads a tensor's byte range from the
 * file channel, never the whole file), widened to float32 (F32, F16, BF16 as stored) and copied
 * into the model's parameter, so the heap holds at most one tensor at a time: for Llama 3.2 1B the
 * largest is {@code embed_tokens} (128256 x 2048, 0.5 GB in BF16 plus 1 GB as floats), while the
 * model itself (4.9 GB in float32) lives in native memory.
 *
 * <p>Names are read with the {@code model.} prefix ({@code *ForCausalLM} checkpoints) or without it
 * (bare {@code LlamaModel} checkpoints). {@code lm_head.weight} is required when the head is
 * untied; when tied it may be absent (as HF saves it) or equal to {@code embed_tokens}. Rotary
 * {@code inv_freq} buffers older checkpoints carry are skipped. A missing tensor, a wrongly shaped
 * one or one the model does not have fails the load naming it.
 */
public final class LlamaCheckpoint {
    public static final String CONFIG = "config.json";
    public static final String WEIGHTS = "model.safetensors";

    /**
     * Tuned models are written in shards of at most this many bytes: {@code save_pretrained}'s
     * default {@code max_shard_size="5GB"} (huggingface_hub counts a GB as 10^9 bytes), so a 1B
     * model in BF16 stays one file and an 8B one comes in four.
     */
    public static final long MAX_SHARD_BYTES = 5_000_000_000L;

    public static final String INDEX = "model.safetensors.index.json";

    private static final String PREFIX = "model.";
    private static final String HEAD = "lm_head.weight";
    private static final ObjectMapper JSON = new ObjectMapper();

    private LlamaCheckpoint() {}

    /** Whether {@code directory} holds weights in a form this loader reads. */
    public static boolean hasWeights(Path directory) {
        return Files.isRegularFile(directory.resolve(WEIGHTS))
                || Files.isRegularFile(directory.resolve(INDEX));
    }

    /**
     * Reads the directory's config, builds the model on {@code device}, loads its weights and
     * returns a DJL model whose block is the {@link LlamaLmModel}; the caller closes it.
     */
    public static Model load(Path directory, Device device) throws IOException {
        return load(directory, device, UnaryOperator.identity());
    }

    /**
     * As {@link #load(Path, Device)} with the config changed by {@code adjust} first ({@code
     * LlamaConfig::withoutDropout} for runs that must be a function of the data).
     */
    public static Model load(Path directory, Device device, UnaryOperator<LlamaConfig> adjust)
            throws IOException {
        return load(directory, device, adjust, Optional.empty());
    }

    /**
     * As {@link #load(Path, Device, UnaryOperator)}; with {@code nf4}, the linear weights it
     * selects go from the file's tensor to NF4 one at a time before the model is initialized, so no
     * full-precision copy of them is ever allocated (QLoRA's streaming load): the peak is the NF4
     * base, the unquantized parameters and one tensor in flight.
     */
    public static Model load(
            Path directory,
            Device device,
            UnaryOperator<LlamaConfig> adjust,
            Optional<Nf4Loading> nf4)
            throws IOException {
        LlamaConfig config = adjust.apply(LlamaConfig.read(directory));
        LlamaLmModel lm = new LlamaLmModel(config);
        Model model = Model.newInstance(config.modelType(), device, EngineRuntime.ENGINE);
        try {
            if (nf4.isPresent()) {
                quantizeFromFile(directory, lm, nf4.get());
            }
            lm.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(1, 1));
            loadWeights(directory, lm);
            model.setBlock(lm);
            return model;
        } catch (RuntimeException | IOException e) {
            model.close();
            throw e;
        }
    }

    /**
     * Loads the weights of {@code directory} (single file or shards) into an initialized model;
     * returns the number of tensors loaded.
     */
    public static int loadWeights(Path directory, LlamaLmModel model) throws IOException {
        try (Shards shards = Shards.open(directory)) {
            Set<String> unused = new LinkedHashSet<>(shards.names());
            int loaded = 0;
            for (Map.Entry<String, Parameter> e : model.baseParameters().entrySet()) {
                String name = e.getKey();
                String stored = find(unused, name);
                if (stored == null) {
                    throw new IllegalArgumentException(
                            shards.describe()
                                    + ": tensor '"
                                    + name
                                    + "'"
                                    + (name.startsWith(PREFIX)
                                            ? " (or '" + name.substring(PREFIX.length()) + "')"
                                            : "")
                                    + " is missing");
                }
                unused.remove(stored);
                NDArray target = e.getValue().getArray();
                copyInto(target, shards.file(stored).floats(stored, target.getShape().getShape()));
                loaded++;
            }
            if (model.config().tieWordEmbeddings() && unused.contains(HEAD)) {
                // Tied: HF ties lm_head to embed_tokens after loading; a stored copy must agree.
                unused.remove(HEAD);
                float[] head = shards.file(HEAD).floats(HEAD);
                float[] embed = model.decoder().embedTokens().getArray().toFloatArray();
                if (!Arrays.equals(head, embed)) {
                    throw new IllegalArgumentException(
                            shards.describe()
                                    + ": lm_head.weight differs from model.embed_tokens.weight"
                                    + " but tie_word_embeddings is true");
                }
            }
            // Weights held in NF4 were read by quantizeFromFile.
            model.linears()
                    .forEach(
                            (module, dense) -> {
                                if (dense.base() instanceof Dense.WeightStore.Nf4) {
                                    String stored = find(unused, module + ".weight");
                                    if (stored != null) {
                                        unused.remove(stored);
                                    }
                                }
                            });
            unused.removeIf(n -> n.endsWith("rotary_emb.inv_freq"));
            if (!unused.isEmpty()) {
                throw new IllegalArgumentException(
                        shards.describe()
                                + ": tensors the "
                                + model.config().modelType()
                                + " model does not have: "
                                + unused.stream().limit(10).toList()
                                + (unused.size() > 10 ? " (" + unused.size() + " in all)" : ""));
            }
            return loaded;
        }
    }

    /**
     * Reads each linear weight {@code nf4} selects from the directory's tensors and holds it in NF4
     * ({@link Dense#holdInNf4}); the float32 values of one tensor at a time pass through the heap.
     * Recorded as float32 originals, as {@link Dense#quantizeWeight} records them, so the bytes and
     * the state dict are those of quantizing the loaded model.
     */
    static void quantizeFromFile(Path directory, LlamaLmModel model, Nf4Loading nf4)
            throws IOException {
        Map<String, Dense> linears = model.linears();
        try (Shards shards = Shards.open(directory)) {
            Set<String> names = new LinkedHashSet<>(shards.names());
            for (String module : nf4.modules().apply(linears.keySet())) {
                String name = module + ".weight";
                String stored = find(names, name);
                if (stored == null) {
                    throw new IllegalArgumentException(
                            shards.describe() + ": tensor '" + name + "' is missing");
                }
                Dense dense = linears.get(module);
                long[] shape = {dense.out(), dense.in()};
                dense.holdInNf4(
                        Nf4.quantize(
                                shards.file(stored).floats(stored, shape),
                                shape,
                                Dtype.F32,
                                nf4.blocksize(),
                                nf4.doubleQuant()));
            }
        }
    }

    static void copyInto(NDArray target, float[] values) {
        NativeCopy.copyInto(target, values);
    }

    private static String find(Set<String> names, String name) {
        if (names.contains(name)) {
            return name;
        }
        if (name.startsWith(PREFIX)) {
            String bare = name.substring(PREFIX.length());
            if (names.contains(bare)) {
                return bare;
            }
        }
        return null;
    }

    /** The checkpoint's files: one {@code model.safetensors}, or shards named by the index. */
    private static final class Shards implements AutoCloseable {
        private final Path directory;
        private final boolean sharded;
        private final Map<String, String> weightMap;
        private final Map<String, SafetensorsFile> open = new LinkedHashMap<>();

        private Shards(Path directory, boolean sharded, Map<String, String> weightMap) {
            this.directory = directory;
            this.sharded = sharded;
            this.weightMap = weightMap;
        }

        static Shards open(Path directory) throws IOException {
            Path single = directory.resolve(WEIGHTS);
            if (Files.isRegularFile(single)) {
                SafetensorsFile f = SafetensorsFile.open(single);
                Map<String, String> map = new LinkedHashMap<>();
                f.names().forEach(n -> map.put(n, WEIGHTS));
                Shards s = new Shards(directory, false, map);
                s.open.put(WEIGHTS, f);
                return s;
            }
            Path index = directory.resolve(INDEX);
            if (!Files.isRegularFile(index)) {
                throw new NoSuchFileException(
                        directory
                                + " has neither "
                                + WEIGHTS
                                + " nor "
                                + INDEX
                                + " (a Hugging Face model directory needs one of them)");
            }
            JsonNode root;
            try {
                root = JSON.readTree(Files.readString(index));
            } catch (IOException e) {
                throw new IllegalArgumentException(
                        index + " is not valid JSON: " + e.getMessage(), e);
            }
            JsonNode weightMap = root == null ? null : root.path("weight_map");
            if (weightMap == null || !weightMap.isObject()) {
                throw new IllegalArgumentException(index + " lacks a 'weight_map' object");
            }
            Map<String, String> map = new LinkedHashMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = weightMap.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                String shard = e.getValue().asText();
                Path resolved = directory.resolve(shard).normalize();
                if (!resolved.getParent().equals(directory.normalize())
                        || !Files.isRegularFile(resolved)) {
                    throw new NoSuchFileException(
                            index
                                    + ": tensor '"
                                    + e.getKey()
                                    + "' is in shard '"
                                    + shard
                                    + "', which is not a file of "
                                    + directory);
                }
                map.put(e.getKey(), shard);
            }
            return new Shards(directory, true, map);
        }

        List<String> names() {
            return List.copyOf(weightMap.keySet());
        }

        /** The open file holding {@code name}; it must list the tensor the index promised. */
        SafetensorsFile file(String name) {
            String shard = weightMap.get(name);
            SafetensorsFile f = open.get(shard);
            if (f == null) {
                f = SafetensorsFile.open(directory.resolve(shard));
                open.put(shard, f);
            }
            if (sharded && !f.names().contains(name)) {
                throw new IllegalArgumentException(
                        directory.resolve(INDEX)
                                + " puts tensor '"
                                + name
                                + "' in "
                                + shard
                                + ", which does not hold it");
            }
            return f;
        }

        String describe() {
            return directory.resolve(sharded ? INDEX : WEIGHTS).toString();
        }

        @Override
        public void close() {
            open.values().forEach(SafetensorsFile::close);
        }
    }

    /**
     * Writes a randomly initialised model of shape {@code config} into {@code directory} ({@code
     * config.json} + {@code model.safetensors}, F32, HF names with the {@code model.} prefix, no
     * {@code lm_head.weight} when tied) as {@code LlamaForCausalLM(config)} initialises one: linear
     * weights and embeddings normal(0, 0.02) ({@code initializer_range}), biases 0, norm weights 1,
     * the {@code pad_token_id} row of the embedding 0. Seeded: the same seed writes the same bytes.
     * For tests and examples, where no pretrained checkpoint can be downloaded.
     */
    public static void saveRandom(LlamaConfig config, Path directory, long seed)
            throws IOException {
        saveRandom(config, directory, seed, 0.02);
    }

    /**
     * As {@link #saveRandom(LlamaConfig, Path, long)} with weights of standard deviation {@code
     * std}; any other value than HF's 0.02 also draws biases from normal(0, std) and norm weights
     * from 1 + normal(0, std), so a test sees every tensor's effect on the logits.
     */
    public static void saveRandom(LlamaConfig config, Path directory, long seed, double std)
            throws IOException {
        Files.createDirectories(directory);
        boolean hfInit = std == 0.02;
        Random r = new Random(seed);
        int h = config.hiddenSize();
        int d = config.headDim();
        int q = config.heads() * d;
        int kv = config.kvHeads() * d;
        int inner = config.intermediateSize();
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
        float[] embed = normal(r, (long) config.vocabSize() * h, std, 0);
        if (config.padTokenId().isPresent()
                && config.padTokenId().getAsInt() < config.vocabSize()) {
            // nn.Embedding(padding_idx=pad_token_id) starts that row at zero.
            Arrays.fill(
                    embed,
                    config.padTokenId().getAsInt() * h,
                    (config.padTokenId().getAsInt() + 1) * h,
                    0f);
        }
        w.addF32(PREFIX + "embed_tokens.weight", new long[] {config.vocabSize(), h}, embed);
        for (int l = 0; l < config.layers(); l++) {
            String p = PREFIX + "layers." + l + ".";
            linear(w, r, p + "self_attn.q_proj", q, h, config.qkvBias(), std, hfInit);
            linear(w, r, p + "self_attn.k_proj", kv, h, config.qkvBias(), std, hfInit);
            linear(w, r, p + "self_attn.v_proj", kv, h, config.qkvBias(), std, hfInit);
            linear(w, r, p + "self_attn.o_proj", h, q, config.outputBias(), std, hfInit);
            if (config.qkNorm()) {
                norm(w, r, p + "self_attn.q_norm.weight", d, std, hfInit);
                norm(w, r, p + "self_attn.k_norm.weight", d, std, hfInit);
            }
            linear(w, r, p + "mlp.gate_proj", inner, h, config.mlpBias(), std, hfInit);
            linear(w, r, p + "mlp.up_proj", inner, h, config.mlpBias(), std, hfInit);
            linear(w, r, p + "mlp.down_proj", h, inner, config.mlpBias(), std, hfInit);
            norm(w, r, p + "input_layernorm.weight", h, std, hfInit);
            norm(w, r, p + "post_attention_layernorm.weight", h, std, hfInit);
        }
        norm(w, r, PREFIX + "norm.weight", h, std, hfInit);
        if (!config.tieWordEmbeddings()) {
            w.addF32(
                    HEAD,
                    new long[] {config.vocabSize(), h},
                    normal(r, (long) config.vocabSize() * h, std, 0));
        }
        w.write(directory.resolve(WEIGHTS));
        Files.writeString(directory.resolve(CONFIG), configJson(config));
    }

    private static void linear(
            SafetensorsWriter w,
            Random r,
            String module,
            int out,
            int in,
            boolean bias,
            double std,
            boolean hfInit) {
        w.addF32(module + ".weight", new long[] {out, in}, normal(r, (long) out * in, std, 0));
        if (bias) {
            w.addF32(
                    module + ".bias",
                    new long[] {out},
                    hfInit ? new float[out] : normal(r, out, std, 0));
        }
    }

    private static void norm(
            SafetensorsWriter w, Random r, String name, int n, double std, boolean hfInit) {
        float[] v = hfInit ? normal(r, n, 0, 1) : normal(r, n, std, 1);
        w.addF32(name, new long[] {n}, v);
    }

    private static float[] normal(Random r, long n, double std, double mean) {
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (mean + (std == 0 ? 0 : std * r.nextGaussian()));
        }
        return v;
    }

    /**
     * Writes {@code model} as a Hugging Face directory {@code LlamaForCausalLM.from_pretrained}
     * reads: {@code config.json} (the fields {@link #configJson} writes, {@code torch_dtype} naming
     * {@code dtype}) and {@code model.safetensors} with every base parameter under its HF name,
     * LoRA and any other delta folded into its layer's weight ({@code W + (alpha/r) B A}), a tied
     * head written once (as {@code model.embed_tokens.weight}; {@code save_pretrained} drops the
     * tied {@code lm_head.weight} too), biases only where the architecture has them.
     *
     * <p>Tensors are streamed ({@link SafetensorsStreamWriter}): one merged weight at a time in
     * native memory, a few MB of it in the heap, every size a {@code long}.
     *
     * @param dtype F32, or BF16 (rounded to nearest even, as {@code tensor.to(torch.bfloat16)})
     */
    public static void save(LlamaLmModel model, Path directory, Dtype dtype) throws IOException {
        save(model, directory, dtype, MAX_SHARD_BYTES);
    }

    /**
     * As {@link #save(LlamaLmModel, Path, Dtype)}, in shards of at most {@code maxShardBytes} with
     * {@code model.safetensors.index.json} once the weights exceed it (transformers' layout).
     */
    public static void save(LlamaLmModel model, Path directory, Dtype dtype, long maxShardBytes)
            throws IOException {
        Files.createDirectories(directory);
        SafetensorsStreamWriter w = new SafetensorsStreamWriter().metadata("format", "pt");
        Map<String, Dense> byWeight = new LinkedHashMap<>();
        model.linears().forEach((module, dense) -> byWeight.put(module + ".weight", dense));
        for (Map.Entry<String, Parameter> e : model.baseParameters().entrySet()) {
            String name = e.getKey();
            NDArray stored = e.getValue().getArray();
            Dense dense = byWeight.get(name);
            w.add(
                    name,
                    dtype,
                    stored.getShape().getShape(),
                    new MergedValues(stored, dense, stored.size()));
        }
        // A weight held in NF4 (QLoRA) or bf16 (precision bf16) is no parameter: it is written
        // widened, deltas merged (for NF4 the merge bitsandbytes users do by hand).
        for (Map.Entry<String, Dense> e : byWeight.entrySet()) {
            Dense dense = e.getValue();
            if (!(dense.base() instanceof Dense.WeightStore.DenseWeight)) {
                w.add(
                        e.getKey(),
                        dtype,
                        new long[] {dense.out(), dense.in()},
                        new MergedValues(null, dense, dense.weightElements()));
            }
        }
        w.writeSharded(directory, "model", maxShardBytes);
        Files.writeString(
                directory.resolve(CONFIG),
                configJson(model.config(), dtype == Dtype.BF16 ? "bfloat16" : "float32"));
    }

    /**
     * The row-major values of a parameter, a linear weight with its deltas merged: the merged array
     * is made when the first chunk is asked for and closed after the last.
     */
    private static final class MergedValues implements SafetensorsStreamWriter.Values {
        private final NDArray stored;
        private final Dense dense;
        private final long count;
        private NDArray flat;

        /** {@code stored} null: the weight of {@code dense}, held in NF4. */
        MergedValues(NDArray stored, Dense dense, long count) {
            this.stored = stored;
            this.dense = dense;
            this.count = count;
        }

        @Override
        public float[] range(long from, long to) {
            if (flat == null) {
                if (dense != null && (stored == null || !dense.deltas().isEmpty())) {
                    // A view keeps the merged storage alive after its own handle is closed.
                    try (NDArray merged = dense.mergedWeight()) {
                        flat = merged.reshape(-1);
                    }
                } else {
                    // A view of the parameter itself: no copy of a (possibly 1 GB) embedding.
                    flat = stored.reshape(-1);
                }
            }
            float[] v;
            // Parameters are float32 (the loader widens every stored type).
            try (NDArray slice = flat.get(new NDIndex(from + ":" + to))) {
                v = slice.toFloatArray();
            }
            if (to == count) {
                flat.close();
                flat = null;
            }
            return v;
        }
    }

    /**
     * The type a tuned copy of {@code directory}'s model is saved in: BF16 when its weights are
     * stored in BF16 (as most published Llama-family checkpoints are), F32 otherwise (F16 too: the
     * engine computes in float32 and writes F32 or BF16 only).
     */
    public static Dtype storedDtype(Path directory) throws IOException {
        try (Shards shards = Shards.open(directory)) {
            for (String name : shards.names()) {
                if (name.endsWith("embed_tokens.weight")) {
                    return shards.file(name).info(name).dtype() == Dtype.BF16
                            ? Dtype.BF16
                            : Dtype.F32;
                }
            }
        }
        return Dtype.F32;
    }

    /**
     * A Hugging Face {@code config.json} that {@link LlamaConfig#parse} reads back as {@code c}.
     */
    public static String configJson(LlamaConfig c) throws IOException {
        return configJson(c, "float32");
    }

    /** As {@link #configJson(LlamaConfig)}, with {@code torch_dtype} set to {@code torchDtype}. */
    public static String configJson(LlamaConfig c, String torchDtype) throws IOException {
        ObjectNode o = JSON.createObjectNode();
        String arch =
                switch (c.modelType()) {
                    case "mistral" -> "MistralForCausalLM";
                    case "qwen2" -> "Qwen2ForCausalLM";
                    case "qwen3" -> "Qwen3ForCausalLM";
                    default -> "LlamaForCausalLM";
                };
        o.putArray("architectures").add(arch);
        o.put("model_type", c.modelType());
        o.put("vocab_size", c.vocabSize());
        o.put("hidden_size", c.hiddenSize());
        o.put("intermediate_size", c.intermediateSize());
        o.put("num_hidden_layers", c.layers());
        o.put("num_attention_heads", c.heads());
        o.put("num_key_value_heads", c.kvHeads());
        o.put("head_dim", c.headDim());
        o.put("hidden_act", "silu");
        o.put("rms_norm_eps", c.rmsNormEps());
        o.put("rope_theta", c.ropeTheta());
        o.set("rope_scaling", ropeJson(c.ropeScaling()));
        o.put("max_position_embeddings", c.maxPositionEmbeddings());
        o.put("tie_word_embeddings", c.tieWordEmbeddings());
        o.put("initializer_range", 0.02);
        o.put("attention_dropout", c.attentionDropout());
        switch (c.modelType()) {
            case "llama" -> {
                o.put("attention_bias", c.qkvBias());
                o.put("mlp_bias", c.mlpBias());
            }
            case "mistral" -> {
                if (c.slidingWindow() > 0) {
                    o.put("sliding_window", c.slidingWindow());
                } else {
                    o.putNull("sliding_window");
                }
            }
            default -> {
                if (c.modelType().equals("qwen3")) {
                    o.put("attention_bias", c.qkvBias());
                }
                o.put("use_sliding_window", c.slidingWindow() > 0);
                if (c.slidingWindow() > 0) {
                    o.put("sliding_window", c.slidingWindow());
                } else {
                    o.putNull("sliding_window");
                }
                int first = c.slidingLayers().indexOf(true);
                o.put("max_window_layers", first < 0 ? c.layers() : first);
                ArrayNode types = o.putArray("layer_types");
                c.slidingLayers()
                        .forEach(s -> types.add(s ? "sliding_attention" : "full_attention"));
            }
        }
        c.bosTokenId().ifPresent(id -> o.put("bos_token_id", id));
        if (c.eosTokenIds().size() == 1) {
            o.put("eos_token_id", c.eosTokenIds().get(0));
        } else if (!c.eosTokenIds().isEmpty()) {
            ArrayNode eos = o.putArray("eos_token_id");
            c.eosTokenIds().forEach(eos::add);
        }
        c.padTokenId().ifPresent(id -> o.put("pad_token_id", id));
        o.put("torch_dtype", torchDtype);
        return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(o);
    }

    private static JsonNode ropeJson(RopeScaling s) {
        ObjectNode o = JSON.createObjectNode();
        if (s instanceof RopeScaling.Default) {
            return JSON.nullNode();
        }
        o.put("rope_type", s.type());
        if (s instanceof RopeScaling.Linear l) {
            o.put("factor", l.factor());
        } else if (s instanceof RopeScaling.Dynamic d) {
            o.put("factor", d.factor());
        } else if (s instanceof RopeScaling.Llama3 l) {
            o.put("factor", l.factor());
            o.put("low_freq_factor", l.lowFreqFactor());
            o.put("high_freq_factor", l.highFreqFactor());
            o.put("original_max_position_embeddings", l.originalMaxPositionEmbeddings());
        } else if (s instanceof RopeScaling.Yarn y) {
            o.put("factor", y.factor());
            y.attentionFactor().ifPresent(v -> o.put("attention_factor", v));
            o.put("beta_fast", y.betaFast());
            o.put("beta_slow", y.betaSlow());
            y.mscale().ifPresent(v -> o.put("mscale", v));
            y.mscaleAllDim().ifPresent(v -> o.put("mscale_all_dim", v));
            o.put("original_max_position_embeddings", y.originalMaxPositionEmbeddings());
            o.put("truncate", y.truncate());
        }
        return o;
    }
}
