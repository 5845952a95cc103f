package io.tuneline.engine.model.bert;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Parameter;
import io.tuneline.engine.io.onnx.OnnxGraph;
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
