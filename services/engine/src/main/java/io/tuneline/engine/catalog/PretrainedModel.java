package io.tuneline.engine.catalog;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import io.tuneline.engine.io.onnx.OnnxGraph;
import io.tuneline.engine.model.ClassifierHead;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertCheckpoint;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.model.bert.BertOnnxImport;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.llama.LlamaConfig;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.quant.Nf4Loading;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * A base model the catalogue resolved: its architecture, weights, tokenizer and configuration.
 *
 * @param name the reference it was resolved from, e.g. {@code minilm-l6}, a directory or an s3://
 *     URI
 * @param architecture which model family the weights are for
 * @param bert the encoder configuration, for {@link Architecture#BERT}; null otherwise
 * @param gpt2 the GPT-2 configuration, for {@link Architecture#GPT2}; null otherwise
 * @param llama the Llama-family configuration, for {@link Architecture#LLAMA}; null otherwise
 * @param weights the ONNX file (built-in encoders), {@code model.safetensors} (directories) or a
 *     sharded checkpoint's {@code model.safetensors.index.json}
 * @param tokenizer the Hugging Face {@code tokenizer.json}
 * @param directory the local Hugging Face model directory, for models resolved from a directory or
 *     fetched from the store (what {@link io.tuneline.engine.model.gpt2.Gpt2Checkpoint#load} and
 *     {@link #loadInto} read); empty for built-in models
 */
public record PretrainedModel(
        String name,
        Architecture architecture,
        BertConfig bert,
        Gpt2Config gpt2,
        LlamaConfig llama,
        Source weights,
        Source tokenizer,
        Optional<Path> directory) {

    /** The model families the engine builds. */
    public enum Architecture {
        /**
         * A BERT-family encoder (BERT, MiniLM, RoBERTa): built-in models from their ONNX file,
         * Hugging Face directories ({@code model_type} bert or roberta) from safetensors.
         */
        BERT,
        /** A GPT-2 decoder from a Hugging Face directory ({@code model_type} gpt2). */
        GPT2,
        /**
         * A Llama-family decoder from a Hugging Face directory ({@code model_type} llama, mistral,
         * qwen2 or qwen3), single-file or sharded; {@link
         * io.tuneline.engine.model.llama.LlamaCheckpoint#load} reads it. Not trained yet.
         */
        LLAMA
    }

    public PretrainedModel {
        if ((architecture == Architecture.BERT) != (bert != null)
                || (architecture == Architecture.GPT2) != (gpt2 != null)
                || (architecture == Architecture.LLAMA) != (llama != null)) {
            throw new IllegalArgumentException(
                    "a " + architecture + " model needs exactly its own configuration");
        }
    }

    /** A built-in BERT-family model. */
    public PretrainedModel(String name, BertConfig config, Source weights, Source tokenizer) {
        this(name, Architecture.BERT, config, null, null, weights, tokenizer, Optional.empty());
    }

    /**
     * Loads this model's encoder weights into {@code encoder} (initialized, of {@link #config()}'s
     * shape): a directory's {@code model.safetensors}, or a built-in model's ONNX file. Returns the
     * number of parameters loaded.
     */
    public int loadInto(BertEncoder encoder) throws IOException {
        config();
        if (directory.isPresent()) {
            return BertCheckpoint.loadWeights(
                    directory.get().resolve("model.safetensors"), encoder);
        }
        OnnxGraph onnx;
        try (InputStream in = weights.open()) {
            onnx = OnnxGraph.parse(in);
        }
        return BertOnnxImport.load(onnx, encoder);
    }

    /**
     * Loads this model's encoder and, when {@code classifier} has BERT's pooler ({@link
     * ClassifierHead#CLS_POOLER}), the checkpoint's pooler if it has one (otherwise the pooler
     * keeps its initialisation, as transformers leaves it "newly initialized"). Returns the number
     * of parameters loaded.
     */
    public int loadInto(SequenceClassifier classifier) throws IOException {
        config();
        Optional<Dense> pooler = classifier.pooler();
        if (directory.isPresent()) {
            Path file = directory.get().resolve("model.safetensors");
            int n = BertCheckpoint.loadWeights(file, classifier.encoder());
            return pooler.isPresent() ? n + BertCheckpoint.loadPooler(file, pooler.get()) : n;
        }
        return loadInto(onnx(), classifier);
    }

    private static int loadInto(OnnxGraph graph, SequenceClassifier classifier) {
        Optional<Dense> pooler = classifier.pooler();
        int n = BertOnnxImport.load(graph, classifier.encoder());
        return pooler.isPresent() ? n + BertOnnxImport.loadPooler(graph, pooler.get()) : n;
    }

    /**
     * Initializes {@code classifier} (of {@link #config()}'s shape; inputs (1, {@code
     * sequenceLength})) in {@code manager} and loads this model's base into it, as {@link
     * #loadInto(SequenceClassifier)} does. With {@code nf4} (QLoRA's streaming load) each linear
     * weight of the base it selects is held in NF4 first, read from a directory's {@code
     * model.safetensors} ({@link BertCheckpoint#quantizeFromFile}) or a built-in model's ONNX file
     * ({@link BertOnnxImport#quantize}), so initializing never allocates their float32 copies; the
     * NF4 bytes are those of quantizing after a full load. A built-in model's ONNX file is read and
     * parsed once (its 90 MB of float32 pass through the heap either way; what is avoided is the
     * model's native float32 copy). Returns the number of parameters loaded.
     *
     * @throws IllegalStateException when {@code classifier} is initialized already
     */
    public int initializeAndLoad(
            SequenceClassifier classifier,
            NDManager manager,
            int sequenceLength,
            Optional<Nf4Loading> nf4)
            throws IOException {
        config();
        if (classifier.isInitialized()) {
            throw new IllegalStateException(
                    "base model '"
                            + name
                            + "': the classifier is initialized already; the base is loaded"
                            + " into a new one (initializing allocates the float32 weights a"
                            + " streaming NF4 load avoids)");
        }
        Shape input = new Shape(1, sequenceLength);
        if (directory.isPresent()) {
            nf4.ifPresent(
                    q ->
                            BertCheckpoint.quantizeFromFile(
                                    directory.get().resolve("model.safetensors"),
                                    classifier.linears(),
                                    q));
            classifier.initialize(manager, DataType.FLOAT32, input, input);
            return loadInto(classifier);
        }
        OnnxGraph graph = onnx();
        nf4.ifPresent(q -> BertOnnxImport.quantize(graph, classifier.linears(), q));
        classifier.initialize(manager, DataType.FLOAT32, input, input);
        return loadInto(graph, classifier);
    }

    /**
     * Whether the checkpoint holds BERT's pooler ({@code pooler.dense}), which the Hugging Face
     * classification head reads the [CLS] state through. The built-in all-MiniLM-L6-v2 has none
     * (its ONNX export computes the last hidden state only).
     */
    public boolean hasPooler() throws IOException {
        config();
        if (directory.isPresent()) {
            return BertCheckpoint.hasPooler(directory.get().resolve("model.safetensors"));
        }
        // Initializer names are stored as UTF-8 in the protobuf: a file without the pooler's bias
        // name has no pooler, and needs no parse (the built-in MiniLM's 90 MB). Scanned as it
        // streams, so the file is never on the heap whole.
        try (InputStream in = weights.open()) {
            if (!contains(in, "pooler.dense.bias".getBytes(StandardCharsets.UTF_8))) {
                return false;
            }
        }
        return BertOnnxImport.hasPooler(onnx());
    }

    /** Whether {@code needle} occurs in what {@code in} reads, holding 1 MiB at a time. */
    static boolean contains(InputStream in, byte[] needle) throws IOException {
        byte[] buf = new byte[Math.max(1 << 20, 2 * needle.length)];
        int kept = 0;
        int n;
        while ((n = in.read(buf, kept, buf.length - kept)) > 0) {
            int end = kept + n;
            outer:
            for (int i = 0; i + needle.length <= end; i++) {
                for (int j = 0; j < needle.length; j++) {
                    if (buf[i + j] != needle[j]) {
                        continue outer;
                    }
                }
                return true;
            }
            // The needle may straddle this read and the next: keep its length less one byte.
            kept = Math.min(needle.length - 1, end);
            System.arraycopy(buf, end - kept, buf, 0, kept);
        }
        return false;
    }

    /** The head a job gets when it names none ({@link ClassifierHead#defaultFor}). */
    public ClassifierHead defaultClassifierHead() throws IOException {
        return ClassifierHead.defaultFor(config().modelType(), hasPooler());
    }

    private OnnxGraph onnx() throws IOException {
        try (InputStream in = weights.open()) {
            return OnnxGraph.parse(in);
        }
    }

    /** The BERT configuration; fails for a model of another architecture. */
    public BertConfig config() {
        if (bert == null) {
            throw new IllegalStateException(
                    "base model '" + name + "' is " + architecture + ", not a BERT-family encoder");
        }
        return bert;
    }

    /** The GPT-2 configuration; fails for a model of another architecture. */
    public Gpt2Config gpt2Config() {
        if (gpt2 == null) {
            throw new IllegalStateException(
                    "base model '" + name + "' is " + architecture + ", not GPT-2");
        }
        return gpt2;
    }

    /** The Llama-family configuration; fails for a model of another architecture. */
    public LlamaConfig llamaConfig() {
        if (llama == null) {
            throw new IllegalStateException(
                    "base model '"
                            + name
                            + "' is "
                            + architecture
                            + ", not a Llama-family decoder");
        }
        return llama;
    }

    /** Where bytes come from: a class-path resource, a file, an object in the store. */
    public interface Source {
        InputStream open() throws IOException;

        String describe();

        static Source file(Path file) {
            return new Source() {
                @Override
                public InputStream open() throws IOException {
                    return Files.newInputStream(file);
                }

                @Override
                public String describe() {
                    return file.toString();
                }
            };
        }
    }
}
