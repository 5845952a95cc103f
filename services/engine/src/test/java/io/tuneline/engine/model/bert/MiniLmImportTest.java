package io.tuneline.engine.model.bert;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.catalog.UnknownModelException;
import io.tuneline.engine.io.onnx.OnnxGraph;
import io.tuneline.engine.runtime.EngineRuntime;
import java.io.InputStream;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The real pretrained all-MiniLM-L6-v2, imported into our DJL encoder, against ONNX Runtime running
 * the original file on the same tokens: the import is exact when every hidden state matches within
 * 1e-4.
 */
class MiniLmImportTest {
    private static final String[] SENTENCES = {
        "The cat sits on the mat.",
        "A wonderful, moving film with a brilliant cast.",
        "Stock markets fell sharply today after the announcement.",
        "I love fine-tuning transformer models in Java!"
    };

    private static byte[] onnx;
    private static long[][] ids;
    private static long[][] mask;

    @BeforeAll
    static void tokenize() throws Exception {
        PretrainedModel model = ModelCatalog.resolve(ModelCatalog.MINILM_L6);
        try (InputStream in = model.weights().open()) {
            onnx = in.readAllBytes();
        }
        Encoding[] encodings;
        try (InputStream in = model.tokenizer().open();
                HuggingFaceTokenizer tokenizer =
                        HuggingFaceTokenizer.newInstance(in, Map.of("padding", "true"))) {
            encodings = tokenizer.batchEncode(SENTENCES);
        }
        ids = new long[encodings.length][];
        mask = new long[encodings.length][];
        for (int i = 0; i < encodings.length; i++) {
            ids[i] = encodings[i].getIds();
            mask[i] = encodings[i].getAttentionMask();
        }
    }

    @Test
    void importedMiniLmMatchesOnnxRuntimeWithin1eMinus4() throws Exception {
        int b = ids.length;
        int t = ids[0].length;
        assertThat(mask[0]).contains(0L); // the batch has padding, so the mask is exercised

        float[][][] reference;
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
            options.setIntraOpNumThreads(2);
            try (OrtSession session = env.createSession(onnx, options);
                    OnnxTensor idsT = OnnxTensor.createTensor(env, ids);
                    OnnxTensor maskT = OnnxTensor.createTensor(env, mask);
                    OnnxTensor typesT = OnnxTensor.createTensor(env, new long[b][t]);
                    OrtSession.Result result =
                            session.run(
                                    Map.of(
                                            "input_ids", idsT,
                                            "attention_mask", maskT,
                                            "token_type_ids", typesT))) {
                reference = (float[][][]) result.get(0).getValue();
            }
        }

        EngineRuntime runtime = EngineRuntime.start(2);
        BertEncoder encoder = new BertEncoder(BertConfig.miniLmL6());
        try (NDManager manager = NDManager.newBaseManager(runtime.device(), EngineRuntime.ENGINE)) {
            encoder.initialize(manager, DataType.FLOAT32, new Shape(b, t), new Shape(b, t));
            int loaded = BertOnnxImport.load(OnnxGraph.parse(onnx), encoder);
            assertThat(loaded).isEqualTo(encoder.namedParameters().size()).isEqualTo(5 + 6 * 16);
            long parameters =
                    encoder.namedParameters().values().stream()
                            .mapToLong(p -> p.getArray().size())
                            .sum();
            // all-MiniLM-L6-v2's 22,713,216 minus its pooler (384 * 384 + 384), which the
            // sentence-transformers export does not use.
            assertThat(parameters).isEqualTo(22_713_216L - (384 * 384 + 384));

            NDArray hidden =
                    encoder.forward(
                                    new ParameterStore(manager, false),
                                    new NDList(toNd(manager, ids), toNd(manager, mask)),
                                    false)
                            .singletonOrThrow();
            float[] h = hidden.toFloatArray();
            double maxDiff = 0;
            for (int i = 0; i < b; i++) {
                for (int j = 0; j < t; j++) {
                    if (mask[i][j] == 1) {
                        for (int d = 0; d < 384; d++) {
                            maxDiff =
                                    Math.max(
                                            maxDiff,
                                            Math.abs(
                                                    h[(i * t + j) * 384 + d] - reference[i][j][d]));
                        }
                    }
                }
            }
            System.out.printf(
                    "max |DJL - ONNX Runtime| over the unpadded hidden states: %.3g%n", maxDiff);
            assertThat(maxDiff).isLessThan(1e-4);
        }
    }

    @Test
    void anUnknownBaseModelNamesTheOnesThatExist() {
        assertThatThrownBy(() -> ModelCatalog.resolve("gpt-17"))
                .isInstanceOf(UnknownModelException.class)
                .hasMessageContaining("unknown base model 'gpt-17'")
                .hasMessageContaining("minilm-l6");
    }

    private static NDArray toNd(NDManager manager, long[][] rows) {
        long[] flat = new long[rows.length * rows[0].length];
        for (int i = 0; i < rows.length; i++) {
            System.arraycopy(rows[i], 0, flat, i * rows[0].length, rows[0].length);
        }
        return manager.create(flat, new Shape(rows.length, rows[0].length));
    }
}
