package io.tuneline.engine.model;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.training.ParameterStore;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.gpt2.Gpt2LmModel;
import io.tuneline.engine.runtime.EngineRuntime;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Both families drop out where Hugging Face's modules do, at their config.json's rates, while
 * training only, with masks from the engine's seeded generator. Each rate is switched on alone to
 * show it is wired (BERT: hidden_dropout_prob, attention_probs_dropout_prob; GPT-2: embd_pdrop,
 * attn_pdrop, resid_pdrop).
 */
class ModelDropoutTest {
    private final EngineRuntime runtime = EngineRuntime.start(1);

    @Test
    void configJsonRatesAreReadAndWrittenBack() {
        BertConfig bert =
                BertConfig.parse(
                        """
                        {"model_type": "bert", "vocab_size": 64, "hidden_size": 8,
                         "num_hidden_layers": 2, "num_attention_heads": 2,
                         "intermediate_size": 16, "max_position_embeddings": 16,
                         "hidden_dropout_prob": 0.2, "attention_probs_dropout_prob": 0.3}
                        """);
        assertThat(bert.hiddenDropout()).isEqualTo(0.2f);
        assertThat(bert.attentionDropout()).isEqualTo(0.3f);
        assertThat(BertConfig.parse(bert.toJson().toString())).isEqualTo(bert);
        assertThat(BertConfig.miniLmL6().hiddenDropout()).isEqualTo(0.1f);

        Gpt2Config gpt2 =
                Gpt2Config.parse(
                        """
                        {"model_type": "gpt2", "vocab_size": 50, "n_positions": 16, "n_embd": 32,
                         "n_layer": 2, "n_head": 4, "embd_pdrop": 0.05, "attn_pdrop": 0.15,
                         "resid_pdrop": 0.25}
                        """);
        assertThat(gpt2.embdPdrop()).isEqualTo(0.05f);
        assertThat(gpt2.attnPdrop()).isEqualTo(0.15f);
        assertThat(gpt2.residPdrop()).isEqualTo(0.25f);
        // Absent rates are Hugging Face's defaults.
        Gpt2Config defaults =
                Gpt2Config.parse(
                        """
                        {"model_type": "gpt2", "vocab_size": 50, "n_positions": 16, "n_embd": 32,
                         "n_layer": 2, "n_head": 4}
                        """);
        assertThat(defaults.residPdrop()).isEqualTo(0.1f);
        assertThat(defaults.withoutDropout().residPdrop()).isZero();
    }

    /** A job's model_dropout replaces every rate of the family and keeps the shape. */
    @Test
    void aJobOverrideSetsEveryRateOfTheFamily() {
        BertConfig bert = BertConfig.miniLmL6().withDropout(0.3f);
        assertThat(bert.hiddenDropout()).isEqualTo(0.3f);
        assertThat(bert.attentionDropout()).isEqualTo(0.3f);
        assertThat(bert.withDropout(0.1f)).isEqualTo(BertConfig.miniLmL6());
        Gpt2Config gpt2 = new Gpt2Config(50, 16, 32, 2, 4, 128, 1e-5f).withDropout(0.35f);
        assertThat(List.of(gpt2.embdPdrop(), gpt2.attnPdrop(), gpt2.residPdrop()))
                .containsOnly(0.35f);
        assertThat(gpt2.withoutDropout()).isEqualTo(gpt2.withDropout(0f));
    }

    @Test
    void bertDropsOutWhileTrainingOnlyAndSeeded() throws Exception {
        BertConfig base = new BertConfig(64, 8, 2, 2, 16, 16, 2, 1e-12f).withoutDropout();
        assertDropout(encoder(base), false);
        assertDropout(encoder(with(base, 0.3f, 0f)), true);
        assertDropout(encoder(with(base, 0f, 0.3f)), true);
    }

    @Test
    void gpt2DropsOutWhileTrainingOnlyAndSeeded() throws Exception {
        Gpt2Config base = Gpt2Config.of(50, 16, 32, 2, 4).withoutDropout();
        assertDropout(new Gpt2LmModel(base), false);
        assertDropout(new Gpt2LmModel(gpt2(base, 0.3f, 0f, 0f)), true);
        assertDropout(new Gpt2LmModel(gpt2(base, 0f, 0.3f, 0f)), true);
        assertDropout(new Gpt2LmModel(gpt2(base, 0f, 0f, 0.3f)), true);
    }

    private static BertEncoder encoder(BertConfig c) {
        return new BertEncoder(c);
    }

    private static BertConfig with(BertConfig c, float hidden, float attention) {
        return new BertConfig(
                c.vocabSize(),
                c.hiddenSize(),
                c.layers(),
                c.heads(),
                c.intermediateSize(),
                c.maxPositions(),
                c.typeVocabSize(),
                c.layerNormEps(),
                c.modelType(),
                c.positionOffset(),
                hidden,
                attention);
    }

    private static Gpt2Config gpt2(Gpt2Config c, float embd, float attn, float resid) {
        return new Gpt2Config(
                c.vocabSize(),
                c.maxPositions(),
                c.hiddenSize(),
                c.layers(),
                c.heads(),
                c.innerSize(),
                c.layerNormEps(),
                embd,
                attn,
                resid);
    }

    /**
     * Inference equals itself; a training pass differs from inference exactly when a rate is set,
     * and two training passes from the same seed are equal.
     */
    private void assertDropout(AbstractBlock model, boolean expectDropout) throws Exception {
        try (Model m = Model.newInstance("dropout", runtime.device(), EngineRuntime.ENGINE)) {
            NDManager manager = m.getNDManager();
            Engine.getInstance().setRandomSeed(3);
            model.initialize(manager, DataType.FLOAT32, new Shape(2, 6), new Shape(2, 6));
            m.setBlock(model);
            float[] inference = forward(model, manager, false, 1);
            assertThat(forward(model, manager, false, 2)).containsExactly(inference);
            float[] training = forward(model, manager, true, 5);
            assertThat(forward(model, manager, true, 5))
                    .as("the same seed gives the same masks")
                    .containsExactly(training);
            if (expectDropout) {
                assertThat(training).isNotEqualTo(inference);
                assertThat(forward(model, manager, true, 6))
                        .as("another seed, other masks")
                        .isNotEqualTo(training);
            } else {
                assertThat(training).containsExactly(inference);
            }
        }
    }

    private static float[] forward(
            AbstractBlock model, NDManager manager, boolean training, int seed) {
        Engine.getInstance().setRandomSeed(seed);
        try (NDManager m = manager.newSubManager()) {
            NDList in =
                    new NDList(
                            m.create(
                                    new long[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
                                    new Shape(2, 6)),
                            m.ones(new Shape(2, 6), DataType.INT64));
            return model.forward(new ParameterStore(m, false), in, training)
                    .singletonOrThrow()
                    .toFloatArray();
        }
    }
}
