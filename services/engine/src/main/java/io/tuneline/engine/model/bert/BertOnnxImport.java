package io.tuneline.engine.model.bert;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Parameter;
import io.tuneline.engine.io.onnx.OnnxGraph;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.nn.NativeCopy;
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
        Map<String, String> matMulWeights = new HashMap<>();
        for (OnnxGraph.Node node : graph.nodes()) {
            if (node.opType().equals("MatMul")) {
                node.inputs().stream()
                        .filter(graph.initializers()::containsKey)
                        .findFirst()
                        .ifPresent(w -> matMulWeights.put(node.name(), w));
            }
        }
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
                String node =
                        "/encoder/layer."
                                + m.group(1)
                                + "/"
                                + m.group(2).replace('.', '/')
                                + "/MatMul";
                String weight = matMulWeights.get(node);
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
        float[] values = source.floats();
        long[] want = target.getShape().getShape();
        long[] have = source.dims();
        if (transpose) {
            if (have.length != 2 || have[0] != want[1] || have[1] != want[0]) {
                throw new IllegalArgumentException(
                        name
                                + ": ONNX "
                                + Arrays.toString(have)
                                + " does not transpose to "
                                + Arrays.toString(want));
            }
            int rows = (int) have[0];
            int cols = (int) have[1];
            float[] t = new float[values.length];
            for (int i = 0; i < rows; i++) {
                for (int j = 0; j < cols; j++) {
                    t[j * rows + i] = values[i * cols + j];
                }
            }
            values = t;
        } else if (!Arrays.equals(have, want)) {
            throw new IllegalArgumentException(
                    name
                            + ": ONNX shape "
                            + Arrays.toString(have)
                            + " differs from the model's "
                            + Arrays.toString(want));
        }
        NativeCopy.copyInto(target, values);
    }
}
