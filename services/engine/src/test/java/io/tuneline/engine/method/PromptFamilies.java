package io.tuneline.engine.method;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.export.ClassifierWeights;
import io.tuneline.engine.model.ClassifierHead;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.model.gpt2.Gpt2Checkpoint;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.llama.LlamaCheckpoint;
import io.tuneline.engine.model.llama.LlamaConfig;
import io.tuneline.engine.nn.NativeCopy;
import io.tuneline.engine.runtime.EngineRuntime;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Random;

/**
 * The families the virtual-token methods are tested on, as small random Hugging Face directories: a
 * BERT classifier with the mean head (MiniLM's vocabulary, so MiniLM's tokenizer feeds it), the
 * same shape as a {@code BertForSequenceClassification} (pooler, {@code cls_pooler}), a {@code
 * RobertaForSequenceClassification}, GPT-2, a grouped-query Llama with biases and an untied head,
 * and a Qwen3 with q/k norms and a tied head.
 */
enum PromptFamilies {
    BERT,
    BERT_POOLER,
    ROBERTA,
    GPT2,
    LLAMA_GQA,
    QWEN3;

    static final int LABELS = 3;

    /** 30522 words (MiniLM's tokenizer), 32 wide, 2 layers of 4 heads, 40 positions. */
    static final BertConfig BERT_CONFIG =
            new BertConfig(30522, 32, 2, 4, 48, 40, 2, 1e-12f).withoutDropout();

    /** The same shape as RoBERTa: one token type, positions from pad_token_id + 1 = 2. */
    static final BertConfig ROBERTA_CONFIG =
            new BertConfig(30522, 32, 2, 4, 48, 42, 1, 1e-5f, BertConfig.ROBERTA, 2)
                    .withoutDropout();

    /** Vocabulary 50, 24 positions, 32 wide, 2 layers, 4 heads. */
    static final Gpt2Config GPT2_CONFIG = Gpt2Config.of(50, 24, 32, 2, 4);

    static final String LLAMA_GQA_JSON =
            "{\"model_type\": \"llama\", \"vocab_size\": 61, \"hidden_size\": 32,"
                    + " \"intermediate_size\": 48, \"num_hidden_layers\": 2,"
                    + " \"max_position_embeddings\": 24, \"rms_norm_eps\": 1e-6,"
                    + " \"hidden_act\": \"silu\", \"bos_token_id\": 1, \"eos_token_id\": 2,"
                    + " \"num_attention_heads\": 8, \"num_key_value_heads\": 2, \"head_dim\": 8,"
                    + " \"rope_theta\": 10000.0, \"attention_bias\": true, \"mlp_bias\": true,"
                    + " \"tie_word_embeddings\": false}";

    static final String QWEN3_JSON =
            "{\"model_type\": \"qwen3\", \"vocab_size\": 61, \"hidden_size\": 32,"
                    + " \"intermediate_size\": 48, \"num_hidden_layers\": 2,"
                    + " \"max_position_embeddings\": 24, \"rms_norm_eps\": 1e-6,"
                    + " \"hidden_act\": \"silu\", \"bos_token_id\": 1, \"eos_token_id\": 2,"
                    + " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 16,"
                    + " \"rope_theta\": 1000000.0, \"attention_bias\": false,"
                    + " \"use_sliding_window\": false, \"sliding_window\": null,"
                    + " \"tie_word_embeddings\": true}";

    String reference() {
        return switch (this) {
            case BERT, BERT_POOLER, ROBERTA -> "bert";
            case GPT2 -> "gpt2";
            case LLAMA_GQA, QWEN3 -> "llama";
        };
    }

    int vocab() {
        return switch (this) {
            case BERT, BERT_POOLER, ROBERTA -> 30522;
            case GPT2 -> 50;
            case LLAMA_GQA, QWEN3 -> 61;
        };
    }

    /** Writes the family's random base model (weights std 0.2) into {@code dir}. */
    Path write(Path dir, EngineRuntime runtime, long seed) throws IOException {
        Files.createDirectories(dir);
        switch (this) {
            case BERT, BERT_POOLER, ROBERTA -> {
                SequenceClassifier c = newClassifier();
                try (Model m = Model.newInstance("bert", runtime.device(), EngineRuntime.ENGINE)) {
                    c.initialize(
                            m.getNDManager(), DataType.FLOAT32, new Shape(1, 4), new Shape(1, 4));
                    Random r = new Random(seed);
                    for (Map.Entry<String, Parameter> e : c.namedParameters().entrySet()) {
                        NDArray a = e.getValue().getArray();
                        float[] v = new float[Math.toIntExact(a.size())];
                        boolean norm = e.getKey().contains("LayerNorm.weight");
                        for (int i = 0; i < v.length; i++) {
                            v[i] = (float) ((norm ? 1 : 0) + (norm ? 0.1 : 0.2) * r.nextGaussian());
                        }
                        NativeCopy.copyInto(a, v);
                    }
                    ClassifierWeights.writeMerged(c, dir.resolve("model.safetensors"));
                    ObjectNode config = c.encoder().config().toJson();
                    if (this != BERT) {
                        config.putArray("architectures")
                                .add(
                                        this == ROBERTA
                                                ? "RobertaForSequenceClassification"
                                                : "BertForSequenceClassification");
                    }
                    Files.write(
                            dir.resolve("config.json"),
                            new ObjectMapper().writeValueAsBytes(config));
                }
            }
            case GPT2 -> Gpt2Checkpoint.saveRandom(GPT2_CONFIG, seed, dir);
            case LLAMA_GQA ->
                    LlamaCheckpoint.saveRandom(LlamaConfig.parse(LLAMA_GQA_JSON), dir, seed, 0.2);
            case QWEN3 -> LlamaCheckpoint.saveRandom(LlamaConfig.parse(QWEN3_JSON), dir, seed, 0.2);
        }
        return dir;
    }

    /** Whether the family is one of the BERT-family classifiers. */
    boolean classifier() {
        return reference().equals("bert");
    }

    /** The family's classifier, not yet initialised. */
    SequenceClassifier newClassifier() {
        return switch (this) {
            case BERT -> new SequenceClassifier(new BertEncoder(BERT_CONFIG), LABELS, 0f);
            case BERT_POOLER ->
                    new SequenceClassifier(
                            new BertEncoder(BERT_CONFIG), LABELS, 0f, ClassifierHead.CLS_POOLER);
            case ROBERTA ->
                    new SequenceClassifier(
                            new BertEncoder(ROBERTA_CONFIG), LABELS, 0f, ClassifierHead.CLS_POOLER);
            default -> throw new IllegalStateException(this + " is not a classifier");
        };
    }

    /** The base in {@code dir} as a model without dropout. */
    Model load(Path dir, EngineRuntime runtime) throws IOException {
        return switch (this) {
            case BERT, BERT_POOLER, ROBERTA -> {
                SequenceClassifier c = newClassifier();
                Model m = Model.newInstance("bert", runtime.device(), EngineRuntime.ENGINE);
                c.initialize(m.getNDManager(), DataType.FLOAT32, new Shape(1, 4), new Shape(1, 4));
                ClassifierWeights.load(c, dir.resolve("model.safetensors"));
                m.setBlock(c);
                yield m;
            }
            case GPT2 -> Gpt2Checkpoint.load(dir, runtime.device(), Gpt2Config::withoutDropout);
            case LLAMA_GQA, QWEN3 ->
                    LlamaCheckpoint.load(dir, runtime.device(), LlamaConfig::withoutDropout);
        };
    }

    static TunableModel tunable(Model m) {
        return (TunableModel) m.getBlock();
    }

    /** Logits of one forward pass: (B, labels) or (B, T, vocab). */
    static NDArray forward(
            Model m, NDManager manager, long[][] ids, long[][] mask, boolean training) {
        int b = ids.length;
        int t = ids[0].length;
        long[] flat = new long[b * t];
        long[] flatMask = new long[b * t];
        for (int i = 0; i < b; i++) {
            System.arraycopy(ids[i], 0, flat, i * t, t);
            System.arraycopy(mask[i], 0, flatMask, i * t, t);
        }
        NDList in =
                new NDList(
                        manager.create(flat, new Shape(b, t)),
                        manager.create(flatMask, new Shape(b, t)));
        return m.getBlock().forward(new ParameterStore(manager, false), in, training).head();
    }
}
