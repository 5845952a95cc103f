package io.tuneline.engine.model.gpt2;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.nn.NativeCopy;
import io.tuneline.engine.quant.Nf4;
import io.tuneline.engine.quant.Nf4Loading;
import io.tuneline.engine.runtime.EngineRuntime;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.UnaryOperator;

/**
 * Loads and saves GPT-2 in a Hugging Face model directory: {@code config.json} and {@code
 * model.safetensors}.
 *
 * <p>Tensor names may carry the {@code transformer.} prefix ({@code GPT2LMHeadModel} checkpoints)
 * or not ({@code GPT2Model} checkpoints, such as the original {@code gpt2}). {@code
 * lm_head.weight}, when present, must equal {@code wte} (the head is tied); the causal-mask buffers
 * older checkpoints carry ({@code h.N.attn.bias}, {@code h.N.attn.masked_bias}) are skipped; any
 * other tensor, a missing one or a wrong shape fails the load with the tensor's name.
 *
 * <p><b>Conv1D transpose.</b> Hugging Face's GPT-2 computes its projections with {@code Conv1D},
 * whose weight is (in, out): {@code y = x W + b}, the transpose of {@code nn.Linear}. The engine's
 * {@link Dense} is (out, in), so {@code attn.c_attn}, {@code attn.c_proj}, {@code mlp.c_fc} and
 * {@code mlp.c_proj} weights are transposed when loaded and transposed back when saved; biases,
 * embeddings and LayerNorms are copied as they are. LoRA matrices are not transposed: PEFT keeps A
 * as (r, in) and B as (out, r) for Conv1D targets too.
 */
public final class Gpt2Checkpoint {
    public static final String WEIGHTS = "model.safetensors";
    public static final String CONFIG = "config.json";

    private static final String PREFIX = "transformer.";
    private static final ObjectMapper JSON = new ObjectMapper();

    private Gpt2Checkpoint() {}

    /**
     * Reads the directory's config, builds the model on {@code device}, loads its weights and
     * returns a DJL model whose block is the {@link Gpt2LmModel}; the caller closes it.
     */
    public static Model load(Path directory, Device device) throws IOException {
        return load(directory, device, UnaryOperator.identity());
    }

    /**
     * As {@link #load(Path, Device)}, with the config adjusted before the model is built (e.g.
     * {@link Gpt2Config#withoutDropout()} for a run that must be a deterministic function of its
     * data).
     */
    public static Model load(Path directory, Device device, UnaryOperator<Gpt2Config> adjust)
            throws IOException {
        return load(directory, device, adjust, Optional.empty());
    }

    /**
     * As {@link #load(Path, Device, UnaryOperator)}; with {@code nf4} (QLoRA's streaming load), the
     * Conv1D weights it selects go from the file's tensor to NF4 one at a time, transposed to (out,
     * in) on the way, before the model is initialized, so no float32 copy of them is ever
     * allocated: the peak is the NF4 base, the other parameters and one tensor in flight (twice, as
     * read and as transposed).
     */
    public static Model load(
            Path directory,
            Device device,
            UnaryOperator<Gpt2Config> adjust,
            Optional<Nf4Loading> nf4)
            throws IOException {
        Gpt2Config config = adjust.apply(Gpt2Config.read(directory));
        Gpt2LmModel lm = new Gpt2LmModel(config);
        Model model = Model.newInstance("gpt2", device, EngineRuntime.ENGINE);
        try {
            if (nf4.isPresent()) {
                quantizeFromFile(directory.resolve(WEIGHTS), lm, nf4.get());
            }
            lm.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(1, 1));
            loadWeights(directory.resolve(WEIGHTS), lm);
            model.setBlock(lm);
            return model;
        } catch (RuntimeException | IOException e) {
            model.close();
            throw e;
        }
    }

    /**
     * The weights stored (in, out) in the checkpoint: every linear layer of GPT-2 is a {@code
     * Conv1D} ({@code transformers/pytorch_utils.py}), so every linear weight.
     */
    static Set<String> conv1DWeights(Gpt2LmModel model) {
        Set<String> names = new LinkedHashSet<>();
        model.linears().keySet().forEach(module -> names.add(module + ".weight"));
        return names;
    }

    /**
     * Reads each Conv1D weight {@code nf4} selects, transposes it to the engine's (out, in) and
     * holds it in NF4 ({@link Dense#holdInNf4}). Recorded as a float32 original of the transposed
     * values, which are exactly the array {@link #loadWeights} fills, so the bytes are those {@link
     * Dense#quantizeWeight} gives after a full load.
     */
    static void quantizeFromFile(Path file, Gpt2LmModel model, Nf4Loading nf4) throws IOException {
        Map<String, Dense> linears = model.linears();
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            for (String module : nf4.modules().apply(linears.keySet())) {
                Dense dense = linears.get(module);
                String name = module + ".weight";
                String stored = find(f, name);
                if (stored == null) {
                    throw missing(file, name);
                }
                long[] shape = {dense.out(), dense.in()};
                dense.holdInNf4(
                        Nf4.quantize(
                                conv1D(file, stored, f, shape),
                                shape,
                                Dtype.F32,
                                nf4.blocksize(),
                                nf4.doubleQuant()));
            }
        }
    }

    /**
     * Loads {@code model.safetensors} into an initialized model; returns the number of tensors
     * loaded. Weights already held in NF4 ({@link #quantizeFromFile}) are no parameters and are
     * skipped.
     */
    public static int loadWeights(Path file, Gpt2LmModel model) throws IOException {
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            Set<String> unused = new LinkedHashSet<>(f.names());
            int loaded = 0;
            Set<String> conv1D = conv1DWeights(model);
            for (Map.Entry<String, Parameter> e : model.baseParameters().entrySet()) {
                String name = e.getKey();
                String stored = find(f, name);
                if (stored == null) {
                    throw missing(file, name);
                }
                unused.remove(stored);
                set(file, stored, f, e.getValue().getArray(), conv1D.contains(name));
                loaded++;
            }
            String head = unused.contains("lm_head.weight") ? "lm_head.weight" : null;
            if (head != null) {
                unused.remove(head);
                float[] headValues = f.floats(head);
                float[] wte = model.tokenEmbedding().getArray().toFloatArray();
                if (!Arrays.equals(headValues, wte)) {
                    throw new IllegalArgumentException(
                            file
                                    + ": lm_head.weight differs from wte; untied LM heads are"
                                    + " not supported");
                }
            }
            model.linears()
                    .forEach(
                            (module, dense) -> {
                                if (dense.base() instanceof Dense.WeightStore.Nf4) {
                                    String stored = find(f, module + ".weight");
                                    if (stored != null) {
                                        unused.remove(stored);
                                    }
                                }
                            });
            unused.removeIf(n -> n.endsWith(".attn.bias") || n.endsWith(".attn.masked_bias"));
            if (!unused.isEmpty()) {
                throw new IllegalArgumentException(
                        file + ": tensors the GPT-2 model does not have: " + unused);
            }
            return loaded;
        }
    }

    private static IllegalArgumentException missing(Path file, String name) {
        return new IllegalArgumentException(
                file
                        + ": tensor '"
                        + name
                        + "' (or '"
                        + name.substring(PREFIX.length())
                        + "') is missing");
    }

    private static String find(SafetensorsFile f, String name) {
        List<String> names = f.names();
        if (names.contains(name)) {
            return name;
        }
        String bare = name.substring(PREFIX.length());
        return names.contains(bare) ? bare : null;
    }

    private static void set(
            Path file, String name, SafetensorsFile f, NDArray target, boolean conv1d) {
        long[] want = target.getShape().getShape();
        float[] values = conv1d ? conv1D(file, name, f, want) : f.floats(name, want);
        NativeCopy.copyInto(target, values);
    }

    /** A Conv1D weight stored (in, out), as the (out, in) values {@code want} describes. */
    private static float[] conv1D(Path file, String name, SafetensorsFile f, long[] want) {
        long[] have = f.info(name).shape();
        if (have.length != 2 || have[0] != want[1] || have[1] != want[0]) {
            throw new IllegalArgumentException(
                    file
                            + ": tensor '"
                            + name
                            + "' has shape "
                            + Arrays.toString(have)
                            + "; a Conv1D weight (in, out) of "
                            + Arrays.toString(new long[] {want[1], want[0]})
                            + " was expected");
        }
        return transpose(f.floats(name), (int) have[0], (int) have[1]);
    }

    /** A row-major (rows, cols) matrix as row-major (cols, rows). */
    static float[] transpose(float[] values, int rows, int cols) {
        float[] t = new float[values.length];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) {
                t[j * rows + i] = values[i * cols + j];
            }
        }
        return t;
    }

    /**
     * The weights as a Hugging Face {@code GPT2LMHeadModel} checkpoint holds them: {@code
     * transformer.}-prefixed names, Conv1D weights (in, out), LoRA merged in ({@code W + (alpha/r)
     * B A}), no adapter matrices, no {@code lm_head.weight} (tied). Values with their shapes.
     */
    public static Map<String, Tensor> exportWeights(Gpt2LmModel model) {
        Set<String> conv1D = conv1DWeights(model);
        Map<String, NDArray> merged = model.mergedWeights();
        Map<String, Tensor> out = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, NDArray> e : merged.entrySet()) {
                long[] s = e.getValue().getShape().getShape();
                float[] values = e.getValue().toFloatArray();
                out.put(
                        e.getKey(),
                        conv1D.contains(e.getKey())
                                ? new Tensor(
                                        new long[] {s[1], s[0]},
                                        transpose(values, (int) s[0], (int) s[1]))
                                : new Tensor(s, values));
            }
        } finally {
            merged.values().forEach(NDArray::close);
        }
        return out;
    }

    /** A tensor's shape and row-major values. */
    public record Tensor(long[] shape, float[] values) {}

    /**
     * Writes {@code config.json} and {@code model.safetensors} (merged, Hugging Face layout) into
     * {@code directory}, so Hugging Face's {@code GPT2LMHeadModel.from_pretrained} can read them.
     */
    public static void save(Gpt2LmModel model, Path directory) throws IOException {
        Files.createDirectories(directory);
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
        exportWeights(model).forEach((name, t) -> w.addF32(name, t.shape(), t.values()));
        w.write(directory.resolve(WEIGHTS));
        Files.writeString(directory.resolve(CONFIG), configJson(model.config()));
    }

    /**
     * Writes a randomly initialised GPT-2 of shape {@code config} into {@code directory}, as
     * Hugging Face's {@code GPT2LMHeadModel(config)} initialises one: weights and embeddings
     * normal(0, 0.02), biases 0, LayerNorm weights 1 (without the scaled {@code c_proj} init).
     * Seeded: the same seed writes the same bytes. For tests and benchmarks, where no pretrained
     * checkpoint can be downloaded.
     */
    public static void saveRandom(Gpt2Config config, long seed, Path directory) throws IOException {
        Files.createDirectories(directory);
        java.util.Random r = new java.util.Random(seed);
        int h = config.hiddenSize();
        int inner = config.innerSize();
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
        w.addF32(
                PREFIX + "wte.weight",
                new long[] {config.vocabSize(), h},
                normal(r, config.vocabSize() * h));
        w.addF32(
                PREFIX + "wpe.weight",
                new long[] {config.maxPositions(), h},
                normal(r, config.maxPositions() * h));
        for (int l = 0; l < config.layers(); l++) {
            String p = PREFIX + "h." + l + ".";
            w.addF32(p + "ln_1.weight", new long[] {h}, ones(h));
            w.addF32(p + "ln_1.bias", new long[] {h}, new float[h]);
            w.addF32(p + "attn.c_attn.weight", new long[] {h, 3 * h}, normal(r, h * 3 * h));
            w.addF32(p + "attn.c_attn.bias", new long[] {3 * h}, new float[3 * h]);
            w.addF32(p + "attn.c_proj.weight", new long[] {h, h}, normal(r, h * h));
            w.addF32(p + "attn.c_proj.bias", new long[] {h}, new float[h]);
            w.addF32(p + "ln_2.weight", new long[] {h}, ones(h));
            w.addF32(p + "ln_2.bias", new long[] {h}, new float[h]);
            w.addF32(p + "mlp.c_fc.weight", new long[] {h, inner}, normal(r, h * inner));
            w.addF32(p + "mlp.c_fc.bias", new long[] {inner}, new float[inner]);
            w.addF32(p + "mlp.c_proj.weight", new long[] {inner, h}, normal(r, inner * h));
            w.addF32(p + "mlp.c_proj.bias", new long[] {h}, new float[h]);
        }
        w.addF32(PREFIX + "ln_f.weight", new long[] {h}, ones(h));
        w.addF32(PREFIX + "ln_f.bias", new long[] {h}, new float[h]);
        w.write(directory.resolve(WEIGHTS));
        Files.writeString(directory.resolve(CONFIG), configJson(config));
    }

    private static float[] normal(java.util.Random r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (0.02 * r.nextGaussian());
        }
        return v;
    }

    private static float[] ones(int n) {
        float[] v = new float[n];
        Arrays.fill(v, 1f);
        return v;
    }

    /** A Hugging Face {@code config.json} for {@code config}. */
    public static String configJson(Gpt2Config config) throws IOException {
        ObjectNode c = JSON.createObjectNode();
        c.putArray("architectures").add("GPT2LMHeadModel");
        c.put("model_type", "gpt2");
        c.put("vocab_size", config.vocabSize());
        c.put("n_positions", config.maxPositions());
        c.put("n_embd", config.hiddenSize());
        c.put("n_layer", config.layers());
        c.put("n_head", config.heads());
        c.put("n_inner", config.innerSize());
        c.put("layer_norm_epsilon", config.layerNormEps());
        c.put("embd_pdrop", config.embdPdrop());
        c.put("attn_pdrop", config.attnPdrop());
        c.put("resid_pdrop", config.residPdrop());
        c.put("activation_function", Gpt2Config.GELU_NEW);
        c.put("tie_word_embeddings", true);
        return JSON.writerWithDefaultPrettyPrinter().writeValueAsString(c);
    }
}
