package io.tuneline.engine.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.gpt2.Gpt2LmModel;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.nn.LayerNormBlock;
import io.tuneline.engine.runtime.EngineRuntime;
import java.nio.FloatBuffer;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Weight decay skips biases and norm weights, as Hugging Face's Trainer does ({@code
 * Trainer.get_decay_parameter_names}: every parameter except biases and LayerNorm parameters).
 */
class WeightDecayTest {

    @Test
    void eachFamilyDecaysWeightsButNotBiasesOrNormWeights() {
        Gpt2LmModel gpt2 = new Gpt2LmModel(Gpt2Config.of(50, 16, 32, 2, 4));
        assertThat(gpt2.decays("transformer.h.0.attn.c_attn.weight")).isTrue();
        assertThat(gpt2.decays("transformer.wte.weight")).isTrue();
        assertThat(gpt2.decays("transformer.h.0.attn.c_attn.bias")).isFalse();
        assertThat(gpt2.decays("transformer.h.0.ln_1.weight")).isFalse();
        assertThat(gpt2.decays("transformer.ln_f.weight")).isFalse();
        assertThat(gpt2.decays("transformer.ln_f.bias")).isFalse();

        SequenceClassifier bert =
                new SequenceClassifier(new BertEncoder(BertConfig.miniLmL6()), 2, 0f);
        assertThat(bert.decays("encoder.layer.0.intermediate.dense.weight")).isTrue();
        assertThat(bert.decays("classifier.weight")).isTrue();
        assertThat(bert.decays("classifier.bias")).isFalse();
        assertThat(bert.decays("embeddings.LayerNorm.weight")).isFalse();
        assertThat(bert.decays("encoder.layer.0.output.LayerNorm.weight")).isFalse();
    }

    /**
     * One step of the loop against AdamW by hand. With loss {@code sum(W x) + sum(b) + sum(gamma) +
     * 2 sum(beta)} the gradients are x, 1, 1 and 2; at step 1 the bias-corrected moments are g and
     * g^2, so every parameter moves by {@code -lr g / (|g| + eps)}, and the decayed ones by {@code
     * -lr wd w} as well.
     */
    @Test
    void oneAdamWStepDecaysTheLinearWeightOnly() throws Exception {
        EngineRuntime runtime = EngineRuntime.start(1);
        try (Model model = Model.newInstance("decay", runtime.device(), EngineRuntime.ENGINE)) {
            NDManager manager = model.getNDManager();
            Dense dense = new Dense(2, 1);
            dense.initialize(manager, DataType.FLOAT32, new Shape(1, 2));
            LayerNormBlock norm = new LayerNormBlock(2, 1e-5f);
            norm.initialize(manager, DataType.FLOAT32, new Shape(1, 2));
            model.setBlock(dense);
            float[] w0 = {0.5f, -0.3f};
            float[] b0 = {0.2f};
            float[] gamma0 = {1.5f, 0.8f};
            float[] beta0 = {0.4f, -0.6f};
            dense.weight().getArray().set(FloatBuffer.wrap(w0));
            dense.bias().getArray().set(FloatBuffer.wrap(b0));
            norm.weight().getArray().set(FloatBuffer.wrap(gamma0));
            norm.bias().getArray().set(FloatBuffer.wrap(beta0));
            Map<String, Parameter> named = new LinkedHashMap<>();
            named.put("dense.weight", dense.weight());
            named.put("dense.bias", dense.bias());
            named.put("norm.weight", norm.weight());
            named.put("norm.bias", norm.bias());

            TrainingLoop.Task<Integer> task =
                    new TrainingLoop.Task<>() {
                        @Override
                        public Block block() {
                            return dense;
                        }

                        @Override
                        public Map<String, Parameter> namedParameters() {
                            return named;
                        }

                        @Override
                        public TrainingLoop.BatchLoss loss(NDManager m, List<Integer> batch) {
                            ParameterStore ps = new ParameterStore(m, false);
                            NDArray x = m.create(new float[] {1f, 2f}, new Shape(1, 2));
                            NDArray y = dense.forward(ps, new NDList(x), true).singletonOrThrow();
                            NDArray gamma = ps.getValue(norm.weight(), x.getDevice(), true);
                            NDArray beta = ps.getValue(norm.bias(), x.getDevice(), true);
                            return new TrainingLoop.BatchLoss(
                                    y.sum().add(gamma.sum()).add(beta.sum().mul(2f)), 1);
                        }

                        @Override
                        public double validationLoss(List<Integer> examples) {
                            return 0;
                        }
                    };
            float lr = 0.1f;
            float wd = 0.5f;
            TrainingLoop.run(
                    model,
                    task,
                    List.of(0),
                    new TrainingSettings(
                            1, 1, lr, wd, 0f, 0f, 8, 1, LearningRateSchedule.Shape.CONSTANT, 1),
                    Validation.none(),
                    r -> {},
                    Checkpointing.none());

            float[] x = {1f, 2f};
            float[] w = dense.weight().getArray().toFloatArray();
            for (int i = 0; i < 2; i++) {
                assertThat(w[i])
                        .as("linear weight %d, decayed", i)
                        .isCloseTo(w0[i] - lr * wd * w0[i] - lr * step(x[i]), within(1e-6f));
            }
            assertThat(dense.bias().getArray().toFloatArray()[0])
                    .as("bias, not decayed")
                    .isCloseTo(b0[0] - lr * step(1f), within(1e-6f));
            float[] gamma = norm.weight().getArray().toFloatArray();
            float[] beta = norm.bias().getArray().toFloatArray();
            for (int i = 0; i < 2; i++) {
                assertThat(gamma[i])
                        .as("LayerNorm weight %d, not decayed", i)
                        .isCloseTo(gamma0[i] - lr * step(1f), within(1e-6f));
                assertThat(beta[i])
                        .as("LayerNorm bias %d, not decayed", i)
                        .isCloseTo(beta0[i] - lr * step(2f), within(1e-6f));
            }
        }
    }

    /**
     * AdamW's first-step direction for gradient g: m_hat / (sqrt(v_hat) + eps) = g / (|g| + eps).
     */
    private static float step(float g) {
        return (float) (g / (Math.abs(g) + 1e-8));
    }
}
