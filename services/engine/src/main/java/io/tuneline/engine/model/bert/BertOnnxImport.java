package io.tuneline.engine.model.bert;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import io.tuneline.engine.io.onnx.OnnxGraph;
import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.nn.NativeCopy;
import io.tuneline.engine.quant.Nf4;
import io.tuneline.engine.quant.Nf4Loading;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Loads the weights of a BERT-family ONNX export (PyTorch → ONNX, as sentence-transformers and
 * Hugging Face optimum produce) into a {@link BertEncoder}. Embeddings, LayerNorms and biases keep
 * their Hugging Face names in the graph; the exporter renames Linear weights to anonymous {@code
 * onnx::MatMul_N} tensors stored as (in, out), so those are found through the MatMul node that
 * consumes them ({@code /encoder/layer.0/attention/self/query/MatMul}) and transposed.
 */
public final class BertOnnxImport {
    private static final Pattern LINEAR =
            Pattern.compile("encoder\\.layer\\.(\\d+)\\.(.+)\\.weight");

    private static final String POOLER_WEIGHT = "pooler.dense.weight";
    private static final String POOLER_BIAS = "pooler.dense.bias";

    private BertOnnxImport() {}

    /** Copies every parameter of {@code encoder} from {@code graph}; returns how many. */
    public static int load(OnnxGraph graph, BertEncoder encoder) {
        Map<String, String> matMulWeights = matMulWeights(graph);
        int loaded = 0;
        for (Map.Entry<String, Parameter> e : encoder.namedParameters().entrySet()) {
            String name = e.getKey();
            OnnxGraph.Initializer direct = graph.initializers().get(name);
            if (direct != null) {
                copy(name, direct, e.getValue().getArray(), false);
                loaded++;
                continue;
            }
            Matcher m = LINEAR.matcher(name);
            if (m.matches()) {
                String weight = matMulWeights.get(matMulNode(m.group(1), m.group(2)));
                if (weight != null) {
                    copy(name, graph.initializers().get(weight), e.getValue().getArray(), true);
                    loaded++;
                    continue;
                }
            }
            throw new IllegalArgumentException(
                    "the ONNX graph has no weight for "
                            + name
                            + "; it is not a BERT-family export this importer knows");
        }
        return loaded;
    }

    /** The weight each MatMul node multiplies by, by node name. */
    private static Map<String, String> matMulWeights(OnnxGraph graph) {
        Map<String, String> matMulWeights = new HashMap<>();
        for (OnnxGraph.Node node : graph.nodes()) {
            if (node.opType().equals("MatMul")) {
                node.inputs().stream()
                        .filter(graph.initializers()::containsKey)
                        .findFirst()
                        .ifPresent(w -> matMulWeights.put(node.name(), w));
            }
        }
        return matMulWeights;
    }

    /**
     * QLoRA's streaming load from the graph: each linear weight {@code nf4} selects from {@code
     * linears} (a classifier's {@code linears()}) goes from its initializer, transposed to (out,
     * in) where the exporter stored it (in, out), to NF4 ({@link Dense#holdInNf4}) before the model
     * is initialized, so the model never allocates its float32 copy. The values are those {@link
     * #load} copies, so the bytes are those of quantizing after it. A pooler the graph lacks is
     * left alone (QLoRA quantizes its initialisation after).
     */
    public static void quantize(OnnxGraph graph, Map<String, Dense> linears, Nf4Loading nf4) {
        Map<String, String> matMulWeights = matMulWeights(graph);
        for (String module : nf4.modules().apply(linears.keySet())) {
            String name = module + ".weight";
            Dense dense = linears.get(module);
            long[] want = {dense.out(), dense.in()};
            float[] values;
            OnnxGraph.Initializer direct = graph.initializers().get(name);
            Matcher m = LINEAR.matcher(name);
            if (direct != null) {
                values = values(name, direct, want, false);
            } else if (name.equals(POOLER_WEIGHT)) {
                if (!hasPooler(graph)) {
                    continue;
                }
                values = values(name, graph.initializers().get(poolerMatMul(graph)), want, true);
            } else if (m.matches()
                    && matMulWeights.containsKey(matMulNode(m.group(1), m.group(2)))) {
                values =
                        values(
                                name,
                                graph.initializers()
                                        .get(matMulWeights.get(matMulNode(m.group(1), m.group(2)))),
                                want,
                                true);
            } else {
                throw new IllegalArgumentException(
                        "the ONNX graph has no weight for "
                                + name
                                + "; it is not a BERT-family export this importer knows");
            }
            dense.holdInNf4(
                    Nf4.quantize(values, want, Dtype.F32, nf4.blocksize(), nf4.doubleQuant()));
        }
    }

    /** The MatMul node of layer {@code layer}'s linear module {@code module} (dots in the path). */
    private static String matMulNode(String layer, String module) {
        return "/encoder/layer." + layer + "/" + module.replace('.', '/') + "/MatMul";
    }

    /**
     * Whether the graph holds BERT's pooler: an ONNX export of {@code BertModel} with its {@code
     * pooler_output} keeps {@code pooler.dense.bias} and the MatMul {@code /pooler/dense/MatMul};
     * an export of the last hidden state alone (the built-in all-MiniLM-L6-v2) prunes it.
     */
    public static boolean hasPooler(OnnxGraph graph) {
        return graph.initializers().containsKey(POOLER_BIAS)
                && (graph.initializers().containsKey(POOLER_WEIGHT) || poolerMatMul(graph) != null);
    }

    /**
     * Copies BERT's pooler into {@code pooler} when the graph has one; returns 0 or 2. A weight
     * kept under its own name is (out, in) as in PyTorch; an anonymous MatMul weight is (in, out).
     */
    public static int loadPooler(OnnxGraph graph, Dense pooler) {
        if (!hasPooler(graph)) {
            return 0;
        }
        // Held in NF4 already when QLoRA's streaming load read it (quantize).
        if (pooler.base() instanceof Dense.WeightStore.DenseWeight) {
            OnnxGraph.Initializer direct = graph.initializers().get(POOLER_WEIGHT);
            if (direct != null) {
                copy(POOLER_WEIGHT, direct, pooler.weight().getArray(), false);
            } else {
                copy(
                        POOLER_WEIGHT,
                        graph.initializers().get(poolerMatMul(graph)),
                        pooler.weight().getArray(),
                        true);
            }
        }
        copy(POOLER_BIAS, graph.initializers().get(POOLER_BIAS), pooler.bias().getArray(), false);
        return 2;
    }

    private static String poolerMatMul(OnnxGraph graph) {
        for (OnnxGraph.Node node : graph.nodes()) {
            if (node.opType().equals("MatMul") && node.name().equals("/pooler/dense/MatMul")) {
                return node.inputs().stream()
                        .filter(graph.initializers()::containsKey)
                        .findFirst()
                        .orElse(null);
            }
        }
        return null;
    }

    private static void copy(
            String name, OnnxGraph.Initializer source, NDArray target, boolean transpose) {
        long[] want = target.getShape().getShape();
        if (source.dataType() == OnnxGraph.FLOAT && source.floatData().length == 0) {
            // Straight from the file's bytes into libtorch, transposed there: no float[] copies
            // on the heap (two per MatMul weight otherwise, 90 MB of garbage for MiniLM).
            check(name, source.dims(), want, transpose);
            NativeCopy.copyInto(target, source.rawBytes(), new Shape(source.dims()), transpose);
            return;
        }
        NativeCopy.copyInto(target, values(name, source, want, transpose));
    }

    private static void check(String name, long[] have, long[] want, boolean transpose) {
        if (transpose) {
            if (have.length != 2 || have[0] != want[1] || have[1] != want[0]) {
                throw new IllegalArgumentException(
                        name
                                + ": ONNX "
                                + Arrays.toString(have)
                                + " does not transpose to "
                                + Arrays.toString(want));
            }
        } else if (!Arrays.equals(have, want)) {
            throw new IllegalArgumentException(
                    name
                            + ": ONNX shape "
                            + Arrays.toString(have)
                            + " differs from the model's "
                            + Arrays.toString(want));
        }
    }

    /** {@code source}'s values in the shape {@code want}, transposed from (in, out) when asked. */
    private static float[] values(
            String name, OnnxGraph.Initializer source, long[] want, boolean transpose) {
        float[] values = source.floats();
        long[] have = source.dims();
        check(name, have, want, transpose);
        if (transpose) {
            int rows = (int) have[0];
            int cols = (int) have[1];
            float[] t = new float[values.length];
            for (int i = 0; i < rows; i++) {
                for (int j = 0; j < cols; j++) {
                    t[j * rows + i] = values[i * cols + j];
                }
            }
            values = t;
        }
        return values;
    }
}
