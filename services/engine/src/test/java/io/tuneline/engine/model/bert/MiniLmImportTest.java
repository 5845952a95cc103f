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
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.catalog.UnknownModelException;
import io.tuneline.engine.export.ClassifierWeights;
import io.tuneline.engine.io.onnx.OnnxGraph;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.runtime.EngineRuntime;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The real pretrained all-MiniLM-L6-v2, imported into our DJL encoder, against ONNX Runtime running
 * the original file on the same tokens: the import is exact when every hidden state matches within
 * 1e-4. The same reference checks Hugging Face directories (BERT and RoBERTa layouts) made from
 * those weights.
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
    private static float[][][] reference;
    private static EngineRuntime runtime;

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
        reference = onnxRuntimeReference();
        runtime = EngineRuntime.start(2);
    }

    /** ONNX Runtime's last hidden states for the original file: the reference every test uses. */
    private static float[][][] onnxRuntimeReference() throws Exception {
        int b = ids.length;
        int t = ids[0].length;
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
                return (float[][][]) result.get(0).getValue();
            }
        }
    }

    /** The largest |encoder - ONNX Runtime| over the hidden states of real (unpadded) tokens. */
    private static double maxDifference(BertEncoder encoder, NDManager manager) {
        int b = ids.length;
        int t = ids[0].length;
        int h = encoder.config().hiddenSize();
        NDArray hidden =
                encoder.forward(
                                new ParameterStore(manager, false),
                                new NDList(toNd(manager, ids), toNd(manager, mask)),
                                false)
                        .singletonOrThrow();
        float[] out = hidden.toFloatArray();
        double maxDiff = 0;
        for (int i = 0; i < b; i++) {
            for (int j = 0; j < t; j++) {
                if (mask[i][j] == 1) {
                    for (int d = 0; d < h; d++) {
                        maxDiff =
                                Math.max(
                                        maxDiff,
                                        Math.abs(out[(i * t + j) * h + d] - reference[i][j][d]));
                    }
                }
            }
        }
        return maxDiff;
    }

    private static BertEncoder initialized(BertConfig config, NDManager manager) {
        BertEncoder encoder = new BertEncoder(config);
        encoder.initialize(
                manager,
                DataType.FLOAT32,
                new Shape(ids.length, ids[0].length),
                new Shape(ids.length, ids[0].length));
        return encoder;
    }

    @Test
    void importedMiniLmMatchesOnnxRuntimeWithin1eMinus4() throws Exception {
        assertThat(mask[0]).contains(0L); // the batch has padding, so the mask is exercised
        try (NDManager manager = NDManager.newBaseManager(runtime.device(), EngineRuntime.ENGINE)) {
            BertEncoder encoder = initialized(BertConfig.miniLmL6(), manager);
            int loaded = BertOnnxImport.load(OnnxGraph.parse(onnx), encoder);
            assertThat(loaded).isEqualTo(encoder.namedParameters().size()).isEqualTo(5 + 6 * 16);
            long parameters =
                    encoder.namedParameters().values().stream()
                            .mapToLong(p -> p.getArray().size())
                            .sum();
            // all-MiniLM-L6-v2's 22,713,216 minus its pooler (384 * 384 + 384), which the
            // sentence-transformers export does not use.
            assertThat(parameters).isEqualTo(22_713_216L - (384 * 384 + 384));

            double maxDiff = maxDifference(encoder, manager);
            System.out.printf(
                    "max |DJL - ONNX Runtime| over the unpadded hidden states: %.3g%n", maxDiff);
            assertThat(maxDiff).isLessThan(1e-4);
        }
    }

    /**
     * The chain a user relies on: a classifier's Hugging Face directory (as the training worker
     * exports it) is a base model again; loaded through the catalogue from safetensors, its encoder
     * computes what ONNX Runtime computes from the original file.
     */
    @Test
    void aHuggingFaceDirectoryWrittenByTheExporterLoadsBackExactly(@TempDir Path tmp)
            throws Exception {
        Path dir = tmp.resolve("minilm-hf");
        try (NDManager manager = NDManager.newBaseManager(runtime.device(), EngineRuntime.ENGINE)) {
            SequenceClassifier classifier =
                    new SequenceClassifier(new BertEncoder(BertConfig.miniLmL6()), 3, 0f);
            classifier.initialize(manager, DataType.FLOAT32, new Shape(1, 8), new Shape(1, 8));
            ModelCatalog.resolve(ModelCatalog.MINILM_L6).loadInto(classifier.encoder());
            Path tokenizer = tmp.resolve("tokenizer.json");
            try (InputStream in = ModelCatalog.resolve(ModelCatalog.MINILM_L6).tokenizer().open()) {
                Files.copy(in, tokenizer);
            }
            ObjectNode provenance = new ObjectMapper().createObjectNode().put("method", "LORA");
            ClassifierWeights.writeDirectory(
                    classifier, List.of("neg", "neu", "pos"), tokenizer, provenance, dir);
        }
        JsonNode config = new ObjectMapper().readTree(dir.resolve("config.json").toFile());
        assertThat(config.path("model_type").asText()).isEqualTo("bert");
        assertThat(config.path("id2label").path("2").asText()).isEqualTo("pos");
        assertThat(config.path("label2id").path("neu").asInt()).isEqualTo(1);
        assertThat(config.path("tuneline").path("method").asText()).isEqualTo("LORA");

        PretrainedModel model = ModelCatalog.resolve(dir.toString());
        assertThat(model.architecture()).isEqualTo(PretrainedModel.Architecture.BERT);
        assertThat(model.config()).isEqualTo(BertConfig.miniLmL6());
        try (NDManager manager = NDManager.newBaseManager(runtime.device(), EngineRuntime.ENGINE)) {
            BertEncoder encoder = initialized(model.config(), manager);
            assertThat(model.loadInto(encoder)).isEqualTo(5 + 6 * 16);
            double maxDiff = maxDifference(encoder, manager);
            System.out.printf("max |safetensors directory - ONNX Runtime|: %.3g%n", maxDiff);
            assertThat(maxDiff).isLessThan(1e-4);
        }
    }

    /**
     * RoBERTa's layout, from MiniLM's real weights rearranged the way a RoBERTa checkpoint stores
     * them: a {@code roberta.} prefix, the position table shifted by pad_token_id + 1 (rows 0 and 1
     * hold noise no real token may read), one token type, and the tensors of heads the encoder does
     * not use. Reading positions from the wrong rows or missing the prefix would change the hidden
     * states far beyond 1e-4.
     */
    @Test
    void aRobertaCheckpointReadsItsPrefixAndShiftedPositions(@TempDir Path tmp) throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("roberta"));
        BertConfig roberta = new BertConfig(30522, 384, 6, 12, 1536, 514, 1, 1e-12f, "roberta", 2);
        try (NDManager manager = NDManager.newBaseManager(runtime.device(), EngineRuntime.ENGINE)) {
            BertEncoder miniLm = initialized(BertConfig.miniLmL6(), manager);
            BertOnnxImport.load(OnnxGraph.parse(onnx), miniLm);
            SafetensorsWriter w = new SafetensorsWriter();
            java.util.Random noise = new java.util.Random(3);
            for (Map.Entry<String, Parameter> e : miniLm.namedParameters().entrySet()) {
                NDArray a = e.getValue().getArray();
                float[] values = a.toFloatArray();
                long[] shape = a.getShape().getShape();
                if (e.getKey().equals("embeddings.position_embeddings.weight")) {
                    float[] shifted = new float[values.length + 2 * 384];
                    for (int i = 0; i < 2 * 384; i++) {
                        shifted[i] = (float) noise.nextGaussian();
                    }
                    System.arraycopy(values, 0, shifted, 2 * 384, values.length);
                    values = shifted;
                    shape = new long[] {514, 384};
                } else if (e.getKey().equals("embeddings.token_type_embeddings.weight")) {
                    values = java.util.Arrays.copyOf(values, 384);
                    shape = new long[] {1, 384};
                }
                w.addF32("roberta." + e.getKey(), shape, values);
            }
            w.addF32("roberta.pooler.dense.weight", new long[] {384, 384}, new float[384 * 384]);
            w.addF32("lm_head.bias", new long[] {30522}, new float[30522]);
            w.addI64("roberta.embeddings.position_ids", new long[] {1, 514}, new long[514]);
            w.write(dir.resolve("model.safetensors"));
        }
        ObjectNode config = roberta.toJson();
        config.putArray("architectures").add("RobertaForMaskedLM");
        Files.writeString(dir.resolve("config.json"), config.toString());
        try (InputStream in = ModelCatalog.resolve(ModelCatalog.MINILM_L6).tokenizer().open()) {
            Files.copy(in, dir.resolve("tokenizer.json"));
        }

        PretrainedModel model = ModelCatalog.resolve(dir.toString());
        assertThat(model.config()).isEqualTo(roberta);
        assertThat(model.config().maxSequenceLength()).isEqualTo(512);
        try (NDManager manager = NDManager.newBaseManager(runtime.device(), EngineRuntime.ENGINE)) {
            BertEncoder encoder = initialized(model.config(), manager);
            assertThat(model.loadInto(encoder)).isEqualTo(5 + 6 * 16);
            double maxDiff = maxDifference(encoder, manager);
            System.out.printf("max |RoBERTa layout - ONNX Runtime|: %.3g%n", maxDiff);
            assertThat(maxDiff).isLessThan(1e-4);

            NDArray tooLong = manager.zeros(new Shape(1, 513), DataType.INT64);
            assertThatThrownBy(
                            () ->
                                    encoder.forward(
                                            new ParameterStore(manager, false),
                                            new NDList(tooLong, tooLong.onesLike()),
                                            false))
                    .hasMessageContaining("513 tokens is longer than the model's 512 positions");
        }
    }

    @Test
    void checkpointsThatDoNotFitAreRefusedNamingTheTensor(@TempDir Path tmp) throws Exception {
        BertConfig tiny = new BertConfig(64, 8, 2, 2, 16, 16, 2, 1e-12f);
        try (NDManager manager = NDManager.newBaseManager(runtime.device(), EngineRuntime.ENGINE)) {
            BertEncoder source = new BertEncoder(tiny);
            source.initialize(manager, DataType.FLOAT32, new Shape(1, 4), new Shape(1, 4));
            SafetensorsWriter oneLayer = new SafetensorsWriter();
            SafetensorsWriter narrow = new SafetensorsWriter();
            for (Map.Entry<String, Parameter> e : source.namedParameters().entrySet()) {
                NDArray a = e.getValue().getArray();
                if (!e.getKey().startsWith("encoder.layer.1.")) {
                    oneLayer.addF32(
                            "bert." + e.getKey(), a.getShape().getShape(), a.toFloatArray());
                }
                long[] shape = a.getShape().getShape();
                float[] values = a.toFloatArray();
                if (e.getKey().equals("encoder.layer.0.intermediate.dense.weight")) {
                    shape = new long[] {8, 8};
                    values = java.util.Arrays.copyOf(values, 64);
                }
                narrow.addF32(e.getKey(), shape, values);
            }
            oneLayer.write(tmp.resolve("one-layer.safetensors"));
            narrow.write(tmp.resolve("narrow.safetensors"));
            BertEncoder target = new BertEncoder(tiny);
            target.initialize(manager, DataType.FLOAT32, new Shape(1, 4), new Shape(1, 4));
            assertThatThrownBy(
                            () ->
                                    BertCheckpoint.loadWeights(
                                            tmp.resolve("one-layer.safetensors"), target))
                    .hasMessageContaining("'bert.encoder.layer.1.attention.self.query.weight'")
                    .hasMessageContaining("is missing");
            assertThatThrownBy(
                            () ->
                                    BertCheckpoint.loadWeights(
                                            tmp.resolve("narrow.safetensors"), target))
                    .hasMessageContaining("'encoder.layer.0.intermediate.dense.weight'")
                    .hasMessageContaining("[8, 8]")
                    .hasMessageContaining("[16, 8]");
        }
        assertThatThrownBy(
                        () ->
                                BertConfig.parse(
                                        "{\"model_type\": \"bert\", \"hidden_act\": \"relu\","
                                                + " \"position_embedding_type\":"
                                                + " \"relative_key\"}"))
                .hasMessageContaining("hidden_act 'relu'")
                .hasMessageContaining("position_embedding_type 'relative_key'");
        assertThatThrownBy(() -> BertConfig.parse("{\"model_type\": \"bert\"}"))
                .hasMessageContaining("lacks 'vocab_size'");
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
