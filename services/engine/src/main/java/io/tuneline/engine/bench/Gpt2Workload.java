package io.tuneline.engine.bench;

import ai.djl.Model;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.model.gpt2.Gpt2Checkpoint;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.gpt2.Gpt2LmModel;
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
 * A small GPT-2 causal LM ({@link #SHAPE}) with random weights (no pretrained checkpoint can be
 * downloaded here, and the values do not change the cost of a step), batches of 8 sequences of 64
 * random token ids with labels = inputs, timed through {@link CausalLmTrainer}, without the model's
 * dropouts (LoRA's own 0.05 runs), as on the PyTorch side. freeze trains the top two blocks and
 * {@code ln_f}; lora is r=8 on {@code c_attn}. The model is written once as a Hugging Face
 * directory ({@code gpt2/config.json}, {@code gpt2/model.safetensors}) that this side and {@code
 * bench/torch_gpt2_train.py} both load, so both train the identical model.
 */
final class Gpt2Workload implements TrainingThroughput.Workload {
    static final int BATCH = 8;
    static final int SEQ = 64;

    /**
     * distilgpt2 (6 layers, GPT-2's vocabulary and 1024 positions) narrowed from 768 to 512 wide
     * with 8 heads of 64: at distilgpt2's full width one step of full fine-tuning took 13-17 s on
     * the 2 shared cores, too long to repeat in pairs.
     */
    static final Gpt2Config SHAPE = Gpt2Config.of(50257, 1024, 512, 6, 8);

    static final String DIRECTORY = "gpt2";

    private final Model model;
    private final Gpt2LmModel lm;
    private final long trainable;

    private Gpt2Workload(Model model, Gpt2LmModel lm, long trainable) {
        this.model = model;
        this.lm = lm;
        this.trainable = trainable;
    }

    static Gpt2Workload open(EngineRuntime runtime, String method, Path dir) throws IOException {
        Path modelDir = dir.resolve(DIRECTORY);
        if (!Files.exists(modelDir.resolve(Gpt2Checkpoint.WEIGHTS))) {
            Gpt2Checkpoint.saveRandom(SHAPE, 42, modelDir);
        }
        // Without GPT-2's dropouts, as the PyTorch peer runs the model (bench/torch_gpt2_train.py
        // has none but LoRA's): the config.json written above carries the published 0.1s, and the
        // engine runs them since it implements them, which made this side do more work than the
        // peer and keep its masks for backward.
        Model model = Gpt2Checkpoint.load(modelDir, runtime.device(), Gpt2Config::withoutDropout);
        try {
            Gpt2LmModel lm = (Gpt2LmModel) model.getBlock();
            long trainable =
                    TrainingThroughput.method(method, FineTuningMethod.Lora.gpt2Defaults())
                            .apply(lm, model.getNDManager())
                            .trainable();
            return new Gpt2Workload(model, lm, trainable);
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
        List<LmExample> examples = new ArrayList<>();
        for (int i = 0; i < steps * BATCH; i++) {
            long[] ids = new long[SEQ];
            for (int t = 0; t < SEQ; t++) {
                ids[t] = random.nextInt(SHAPE.vocabSize());
            }
            examples.add(LmExample.of(ids));
        }
        new CausalLmTrainer()
                .train(
                        model,
                        lm,
                        examples,
                        new TrainingSettings(1, BATCH, 2e-4f, 0.01f, 0f, 1f, SEQ, 42),
                        listener);
    }

    @Override
    public void close() {
        model.close();
    }
}
