package io.tuneline.engine.model.bert;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Parameter;
import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.nn.NativeCopy;
import io.tuneline.engine.quant.Nf4;
import io.tuneline.engine.quant.Nf4Loading;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * Loads a BERT-family encoder from a Hugging Face {@code model.safetensors}: BERT, MiniLM and
 * RoBERTa checkpoints as {@code save_pretrained} writes them, whichever head they were saved with.
 *
 * <p>The encoder's tensors are found under one common prefix: none ({@code BertModel}, and
 * sentence-transformers models), {@code bert.} ({@code BertForSequenceClassification}, {@code
 * BertForMaskedLM}), {@code roberta.} ({@code RobertaFor...}), or any other; the prefix is where
 * {@code embeddings.word_embeddings.weight} is. Tensors the encoder does not use (masked-LM or
 * classification heads, the {@code position_ids} buffer) are left alone: a new task gets a new
 * head. BERT's pooler is part of the base model, read by {@link #loadPooler} for the Hugging Face
 * classification head when the checkpoint has it. Linear weights are (out, in) in both Hugging Face
 * and the engine, so nothing is transposed. F16 and BF16 checkpoints are widened to float32
 * exactly.
 */
public final class BertCheckpoint {
    private static final String WORD_EMBEDDINGS = "embeddings.word_embeddings.weight";
    private static final String POOLER_WEIGHT = "pooler.dense.weight";
    private static final String POOLER_BIAS = "pooler.dense.bias";

    private BertCheckpoint() {}

    /** Copies every parameter of {@code encoder} from {@code file}; returns how many. */
    public static int loadWeights(Path file, BertEncoder encoder) {
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            String prefix = prefix(file, f.names());
            int loaded = 0;
            for (Map.Entry<String, Parameter> e : encoder.namedParameters().entrySet()) {
                String name = e.getKey();
                String stored = find(f.names(), prefix, name);
                if (stored == null) {
                    throw new IllegalArgumentException(
                            file
                                    + ": tensor '"
                                    + prefix
                                    + name
                                    + "' is missing; the checkpoint does not fit "
                                    + encoder.config().modelType()
                                    + " with "
                                    + encoder.config().layers()
                                    + " layers");
                }
                NDArray target = e.getValue().getArray();
                float[] values = f.floats(stored, target.getShape().getShape());
                NativeCopy.copyInto(target, values);
                loaded++;
            }
            return loaded;
        }
    }

    /**
     * QLoRA's streaming load: reads each linear weight {@code nf4} selects from {@code linears} (by
     * module path, a classifier's {@code linears()}) and holds it in NF4 ({@link Dense#holdInNf4}),
     * before the model is initialized, so no float32 copy of it is allocated; one tensor at a time
     * passes through the heap. The bytes are those {@link Dense#quantizeWeight} gives after a full
     * load (the same float32 values, no transpose: HF and the engine both store (out, in)). A
     * pooler the checkpoint lacks is left alone: it starts from its initialisation, and QLoRA
     * quantizes it after.
     */
    public static void quantizeFromFile(Path file, Map<String, Dense> linears, Nf4Loading nf4) {
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            String prefix = prefix(file, f.names());
            for (String module : nf4.modules().apply(linears.keySet())) {
                String name = module + ".weight";
                String stored = find(f.names(), prefix, name);
                if (stored == null) {
                    if (name.equals(POOLER_WEIGHT)) {
                        continue;
                    }
                    throw new IllegalArgumentException(
                            file + ": tensor '" + prefix + name + "' is missing");
                }
                Dense dense = linears.get(module);
                long[] shape = {dense.out(), dense.in()};
                dense.holdInNf4(
                        Nf4.quantize(
                                f.floats(stored, shape),
                                shape,
                                Dtype.F32,
                                nf4.blocksize(),
                                nf4.doubleQuant()));
            }
        }
    }

    /**
     * Whether the checkpoint holds BERT's pooler ({@code pooler.dense.weight} and {@code bias}
     * beside the encoder's tensors), as {@code BertModel} and {@code BertForSequenceClassification}
     * save it; masked-LM heads and RoBERTa's classifiers have none.
     */
    public static boolean hasPooler(Path file) {
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            String prefix = prefix(file, f.names());
            return f.names().contains(prefix + POOLER_WEIGHT)
                    && f.names().contains(prefix + POOLER_BIAS);
        }
    }

    /**
     * Copies BERT's pooler ({@code pooler.dense.*}, under the encoder's prefix) into {@code pooler}
     * when the checkpoint has one; returns how many tensors were copied (0 or 2). Without one the
     * pooler keeps its initialisation, as transformers leaves a pooler the checkpoint lacks "newly
     * initialized".
     */
    public static int loadPooler(Path file, Dense pooler) {
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            String prefix = prefix(file, f.names());
            if (!f.names().contains(prefix + POOLER_WEIGHT)
                    || !f.names().contains(prefix + POOLER_BIAS)) {
                return 0;
            }
            // Held in NF4 already when QLoRA's streaming load read it (quantizeFromFile).
            if (pooler.base() instanceof Dense.WeightStore.DenseWeight) {
                NDArray w = pooler.weight().getArray();
                NativeCopy.copyInto(w, f.floats(prefix + POOLER_WEIGHT, w.getShape().getShape()));
            }
            NDArray b = pooler.bias().getArray();
            NativeCopy.copyInto(b, f.floats(prefix + POOLER_BIAS, b.getShape().getShape()));
            return 2;
        }
    }

    private static String prefix(Path file, List<String> names) {
        String found = null;
        for (String n : names) {
            if (n.endsWith(WORD_EMBEDDINGS) && (found == null || n.length() < found.length())) {
                found = n;
            }
        }
        if (found == null) {
            throw new IllegalArgumentException(
                    file
                            + " has no "
                            + WORD_EMBEDDINGS
                            + " under any prefix; it is not a BERT-family checkpoint");
        }
        return found.substring(0, found.length() - WORD_EMBEDDINGS.length());
    }

    /** The stored name of a parameter; TensorFlow-era checkpoints call LayerNorms gamma/beta. */
    private static String find(List<String> names, String prefix, String name) {
        String direct = prefix + name;
        if (names.contains(direct)) {
            return direct;
        }
        if (name.endsWith("LayerNorm.weight")) {
            String legacy = prefix + name.replace("LayerNorm.weight", "LayerNorm.gamma");
            return names.contains(legacy) ? legacy : null;
        }
        if (name.endsWith("LayerNorm.bias")) {
            String legacy = prefix + name.replace("LayerNorm.bias", "LayerNorm.beta");
            return names.contains(legacy) ? legacy : null;
        }
        return null;
    }
}
