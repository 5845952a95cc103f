package io.tuneline.engine.model;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.tuneline.engine.io.hf.ConfigJson;
import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.model.gpt2.Gpt2Checkpoint;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.gpt2.Gpt2LmModel;
import io.tuneline.engine.model.llama.LlamaCheckpoint;
import io.tuneline.engine.model.llama.LlamaConfig;
import io.tuneline.engine.model.llama.LlamaLmModel;
import io.tuneline.engine.runtime.EngineRuntime;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Loads and saves a causal LM's Hugging Face directory by its {@code config.json}'s {@code
 * model_type}: {@code gpt2} through {@link Gpt2Checkpoint}, the Llama family ({@code llama}, {@code
 * mistral}, {@code qwen2}, {@code qwen3}) through {@link LlamaCheckpoint}. The one place that knows
 * which families are causal LMs, so the worker and the evaluator do not.
 */
public final class CausalLmCheckpoint {
    public static final String CONFIG = "config.json";
    public static final String WEIGHTS = "model.safetensors";
    public static final String INDEX = LlamaCheckpoint.INDEX;

    private CausalLmCheckpoint() {}

    /**
     * Whether a file of a saved directory holds its weights: {@code model.safetensors}, or a
     * sharded save's {@code model.safetensors.index.json} and {@code model-0000i-of-0000n} shards.
     */
    public static boolean isWeightFile(String name) {
        return name.equals(WEIGHTS)
                || name.equals(INDEX)
                || name.matches("model-\\d{5}-of-\\d{5}\\.safetensors");
    }

    /** The weight files {@link #save} wrote into {@code directory}, in name order. */
    public static List<String> weightFiles(Path directory) throws IOException {
        try (var files = Files.list(directory)) {
            return files.map(f -> f.getFileName().toString())
                    .filter(CausalLmCheckpoint::isWeightFile)
                    .sorted()
                    .toList();
        }
    }

    /** The directory's {@code model_type}. */
    public static String modelType(Path directory) throws IOException {
        return ConfigJson.read(
                directory,
                json -> {
                    var node = ConfigJson.object(json).path("model_type");
                    return node.isTextual() ? node.asText() : "";
                });
    }

    /** Whether {@code directory}'s {@code config.json} names a causal LM family the engine has. */
    public static boolean isCausalLm(Path directory) throws IOException {
        String type = modelType(directory);
        return type.equals("gpt2") || LlamaConfig.MODEL_TYPES.contains(type);
    }

    /**
     * A DJL model whose block is the directory's {@link CausalLanguageModel}; the caller closes it.
     */
    public static Model load(Path directory, Device device) throws IOException {
        return load(directory, device, java.util.OptionalDouble.empty());
    }

    /**
     * As {@link #load(Path, Device)}, with every dropout rate inside the model at {@code dropout}
     * when present (a job's override of the checkpoint's {@code config.json} rates).
     */
    public static Model load(Path directory, Device device, java.util.OptionalDouble dropout)
            throws IOException {
        return load(directory, device, dropout, java.util.Optional.empty());
    }

    /**
     * As {@link #load(Path, Device, java.util.OptionalDouble)}; with {@code nf4} (QLoRA), the
     * selected linear weights are quantized as they are read (GPT-2's Conv1D weights transposed on
     * the way), so the full-precision base is never resident at once.
     */
    public static Model load(
            Path directory,
            Device device,
            java.util.OptionalDouble dropout,
            java.util.Optional<io.tuneline.engine.quant.Nf4Loading> nf4)
            throws IOException {
        String type = modelType(directory);
        if (type.equals("gpt2")) {
            return Gpt2Checkpoint.load(
                    directory,
                    device,
                    c -> dropout.isPresent() ? c.withDropout((float) dropout.getAsDouble()) : c,
                    nf4);
        }
        if (LlamaConfig.MODEL_TYPES.contains(type)) {
            return LlamaCheckpoint.load(
                    directory,
                    device,
                    c ->
                            dropout.isPresent()
                                    ? c.withAttentionDropout((float) dropout.getAsDouble())
                                    : c,
                    nf4);
        }
        throw new IllegalArgumentException(
                directory
                        + ": model_type '"
                        + type
                        + "' is not a causal LM the engine has (gpt2, "
                        + String.join(", ", LlamaConfig.MODEL_TYPES)
                        + ")");
    }

    /**
     * A DJL model whose block is the causal LM {@code directory}'s {@code config.json} describes,
     * computing with {@code base}'s weights in place ({@link SharedBase}): nothing of the base is
     * copied, and the directory's own weights are not read (a method is attached afterwards). The
     * caller closes the model before it closes the base.
     *
     * @throws IllegalArgumentException when the configuration is not the base's (dropout aside)
     */
    public static Model loadOnBase(Path directory, CausalLanguageModel base, Device device)
            throws IOException {
        String type = modelType(directory);
        CausalLanguageModel lm;
        if (type.equals("gpt2") && base instanceof Gpt2LmModel b) {
            Gpt2Config c = Gpt2Config.read(directory);
            requireSame(directory, c.withoutDropout(), b.config().withoutDropout());
            lm = new Gpt2LmModel(c);
        } else if (LlamaConfig.MODEL_TYPES.contains(type) && base instanceof LlamaLmModel b) {
            LlamaConfig c = LlamaConfig.read(directory);
            requireSame(directory, c.withoutDropout(), b.config().withoutDropout());
            lm = new LlamaLmModel(c);
        } else {
            throw new IllegalArgumentException(
                    directory
                            + ": model_type '"
                            + type
                            + "' is not the family of the base ("
                            + base.getClass().getSimpleName()
                            + ")");
        }
        Model model = Model.newInstance(type, device, EngineRuntime.ENGINE);
        try {
            SharedBase.share(base, lm);
            lm.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(1, 1));
            model.setBlock(lm);
            return model;
        } catch (RuntimeException e) {
            model.close();
            throw e;
        }
    }

    private static void requireSame(Path directory, Object config, Object base) {
        if (!config.equals(base)) {
            throw new IllegalArgumentException(
                    directory
                            + "/config.json is not the base's configuration: "
                            + config
                            + " against "
                            + base);
        }
    }

    /**
     * The type a tuned copy of the base in {@code directory} is written in: the Llama family keeps
     * a BF16 base in BF16 ({@link LlamaCheckpoint#storedDtype}); GPT-2 is written in F32.
     */
    public static Dtype savedDtype(Path directory) throws IOException {
        return LlamaConfig.MODEL_TYPES.contains(modelType(directory))
                ? LlamaCheckpoint.storedDtype(directory)
                : Dtype.F32;
    }

    /**
     * Writes {@code config.json} and a merged {@code model.safetensors} of {@code lm} into {@code
     * directory}, in {@code dtype} (GPT-2: F32 only); the Llama family in shards above {@link
     * LlamaCheckpoint#MAX_SHARD_BYTES} ({@link #weightFiles} lists what was written).
     */
    public static void save(CausalLanguageModel lm, Path directory, Dtype dtype)
            throws IOException {
        if (lm instanceof Gpt2LmModel gpt2) {
            if (dtype != Dtype.F32) {
                throw new IllegalArgumentException("GPT-2 is written in F32 only, not " + dtype);
            }
            Gpt2Checkpoint.save(gpt2, directory);
        } else if (lm instanceof LlamaLmModel llama) {
            LlamaCheckpoint.save(llama, directory, dtype);
        } else {
            throw new IllegalArgumentException("no checkpoint format for " + lm.getClass());
        }
    }
}
