package io.tuneline.engine.bench;

import ai.djl.Model;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.Precision;
import io.tuneline.engine.model.llama.LlamaCheckpoint;
import io.tuneline.engine.model.llama.LlamaConfig;
import io.tuneline.engine.model.llama.LlamaLmModel;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.LmExample;
import io.tuneline.engine.train.TrainingListener;
import io.tuneline.engine.train.TrainingSettings;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * A small Llama-layout causal LM ({@link #SHAPE}: grouped-query attention, RoPE, RMSNorm, SwiGLU,
 * untied head) with random weights, batches of 8 sequences of 64 random token ids with labels =
 * inputs, timed through {@link CausalLmTrainer}. freeze trains the top two layers and {@code
 * model.norm}; lora is r=8, alpha 16, dropout 0.05 on PEFT's Llama targets ({@code q_proj}, {@code
 * v_proj}); qlora the same on an NF4 base. The model is written once as a Hugging Face directory
 * ({@code llama/}) that {@code bench/torch_llama_train.py} loads too. A precision ({@code
 * lora@bf16}) is applied after the method, as the training worker does; {@code :ckpt} after it
 * ({@code qlora:ckpt}, {@code lora@bf16:ckpt}) trains with activation checkpointing, which the
 * worker turns on by default for QLoRA.
 */
final class LlamaWorkload implements TrainingThroughput.Workload {
    static final int BATCH = 8;
    static final int SEQ = 64;

    /**
     * Llama's layout at a size the 2 shared cores train in well under a second a step: 4 layers 256
     * wide, 8 query heads on 2 key/value heads of 32, SwiGLU 688 wide (Llama's 8/3 x hidden rounded
     * to a multiple of 16), a vocabulary of 8,192.
     */
    static final String SHAPE =
            "{\"model_type\": \"llama\", \"vocab_size\": 8192, \"hidden_size\": 256,"
                    + " \"intermediate_size\": 688, \"num_hidden_layers\": 4,"
                    + " \"num_attention_heads\": 8, \"num_key_value_heads\": 2, \"head_dim\": 32,"
                    + " \"max_position_embeddings\": 128, \"rms_norm_eps\": 1e-6,"
                    + " \"rope_theta\": 10000.0, \"tie_word_embeddings\": false,"
                    + " \"bos_token_id\": 1, \"eos_token_id\": 2}";

    static final String DIRECTORY = "llama";

    /** The suffix of a method trained with activation checkpointing. */
    static final String CHECKPOINTING = ":ckpt";

    private final Model model;
    private final LlamaLmModel lm;
    private final long trainable;
    private final boolean checkpointing;

    private LlamaWorkload(Model model, LlamaLmModel lm, long trainable, boolean checkpointing) {
        this.model = model;
        this.lm = lm;
        this.trainable = trainable;
        this.checkpointing = checkpointing;
    }

    /**
     * {@code method} is a benchmark method, optionally {@code @fp32} or {@code @bf16}, optionally
     * followed by {@code :ckpt}.
     */
    static LlamaWorkload open(EngineRuntime runtime, String method, Path dir) throws IOException {
        boolean checkpointing = method.endsWith(CHECKPOINTING);
        if (checkpointing) {
            method = method.substring(0, method.length() - CHECKPOINTING.length());
        }
        Path modelDir = dir.resolve(DIRECTORY);
        if (!Files.exists(modelDir.resolve(LlamaCheckpoint.WEIGHTS))) {
            LlamaCheckpoint.saveRandom(LlamaConfig.parse(SHAPE), modelDir, 42);
        }
        String[] parts = method.split("@", 2);
        Precision precision = Precision.of(parts.length > 1 ? parts[1] : "fp32", runtime.device());
        Model model = LlamaCheckpoint.load(modelDir, runtime.device());
        try {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            FineTuningMethod.Lora lora =
                    new FineTuningMethod.Lora(8, 16f, 0.05f, lm.defaultLoraTargets());
            long trainable =
                    TrainingThroughput.method(parts[0], lora)
                            .apply(lm, model.getNDManager())
                            .trainable();
            precision.apply(lm);
            return new LlamaWorkload(model, lm, trainable, checkpointing);
        } catch (RuntimeException e) {
            model.close();
            throw e;
        }
    }

    @Override
    public long trainable() {
        return trainable;
    }

    @Override
    public int tokensPerStep() {
        return BATCH * SEQ;
    }

    @Override
    public void train(int steps, long seed, TrainingListener listener) {
        Random random = new Random(seed);
        int vocab = lm.config().vocabSize();
        List<LmExample> examples = new ArrayList<>();
        for (int i = 0; i < steps * BATCH; i++) {
            long[] ids = new long[SEQ];
            for (int t = 0; t < SEQ; t++) {
                ids[t] = random.nextInt(vocab);
            }
            examples.add(LmExample.of(ids));
        }
        new CausalLmTrainer()
                .train(
                        model,
                        lm,
                        examples,
                        new TrainingSettings(1, BATCH, 2e-4f, 0.01f, 0f, 1f, SEQ, 42)
                                .withActivationCheckpointing(checkpointing),
                        listener);
    }

    @Override
    public void close() {
        model.close();
    }
}
