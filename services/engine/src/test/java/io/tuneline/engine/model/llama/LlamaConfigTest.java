package io.tuneline.engine.model.llama;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

/** Reading published Llama-family configs, and refusing what the engine does not implement. */
class LlamaConfigTest {
    /** meta-llama/Llama-3.2-1B's config.json. */
    static final String LLAMA_32_1B =
            """
            {"architectures": ["LlamaForCausalLM"], "attention_bias": false,
             "attention_dropout": 0.0, "bos_token_id": 128000, "eos_token_id": 128001,
             "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048,
             "initializer_range": 0.02, "intermediate_size": 8192,
             "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
             "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
             "pretraining_tp": 1, "rms_norm_eps": 1e-05,
             "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                              "original_max_position_embeddings": 8192, "rope_type": "llama3"},
             "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
             "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256}
            """;

    /** Qwen/Qwen3-0.6B's config.json. */
    static final String QWEN3_06B =
            """
            {"architectures": ["Qwen3ForCausalLM"], "attention_bias": false,
             "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645,
             "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
             "initializer_range": 0.02, "intermediate_size": 3072,
             "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
             "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
             "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000,
             "sliding_window": null, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
             "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false,
             "vocab_size": 151936}
            """;

    /** mistralai/Mistral-7B-v0.1's config.json. */
    static final String MISTRAL_7B =
            """
            {"architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
             "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
             "intermediate_size": 14336, "max_position_embeddings": 32768,
             "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32,
             "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
             "sliding_window": 4096, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
             "transformers_version": "4.34.0.dev0", "use_cache": true, "vocab_size": 32000}
            """;

    /** Qwen/Qwen2.5-0.5B-Instruct's config.json. */
    static final String QWEN25_05B =
            """
            {"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0,
             "bos_token_id": 151643, "eos_token_id": 151645, "hidden_act": "silu",
             "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864,
             "max_position_embeddings": 32768, "max_window_layers": 21, "model_type": "qwen2",
             "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
             "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
             "tie_word_embeddings": true, "torch_dtype": "bfloat16",
             "transformers_version": "4.43.1", "use_cache": true, "use_sliding_window": false,
             "vocab_size": 151936}
            """;

    @Test
    void readsLlama32WithItsLlama3RopeScalingAndTiedHead() {
        LlamaConfig c = LlamaConfig.parse(LLAMA_32_1B);
        assertThat(c.modelType()).isEqualTo("llama");
        assertThat(c.headDim()).isEqualTo(64);
        assertThat(c.groups()).isEqualTo(4);
        assertThat(c.tieWordEmbeddings()).isTrue();
        assertThat(c.qkvBias() || c.outputBias() || c.mlpBias() || c.qkNorm()).isFalse();
        assertThat(c.ropeScaling()).isEqualTo(new RopeScaling.Llama3(32, 1, 4, 8192));
        assertThat(c.eosTokenIds()).containsExactly(128001);
        assertThat(c.slidingLayers()).containsOnly(false);
    }

    @Test
    void readsQwen3Qwen25AndMistralWithTheirVariantFlags() {
        LlamaConfig qwen3 = LlamaConfig.parse(QWEN3_06B);
        assertThat(qwen3.qkNorm()).isTrue();
        assertThat(qwen3.headDim()).isEqualTo(128); // not 1024 / 16
        assertThat(qwen3.slidingWindow()).isZero();

        LlamaConfig qwen2 = LlamaConfig.parse(QWEN25_05B);
        assertThat(qwen2.qkvBias()).isTrue();
        assertThat(qwen2.outputBias()).isFalse();
        // sliding_window is set but use_sliding_window is false: full attention everywhere.
        assertThat(qwen2.slidingWindow()).isZero();
        assertThat(qwen2.slidingLayers()).containsOnly(false);

        LlamaConfig mistral = LlamaConfig.parse(MISTRAL_7B);
        assertThat(mistral.slidingWindow()).isEqualTo(4096);
        assertThat(mistral.slidingLayers()).hasSize(32).containsOnly(true);
        assertThat(mistral.headDim()).isEqualTo(128);
        assertThat(mistral.ropeScaling()).isEqualTo(new RopeScaling.Default());
    }

    @Test
    void qwenSlidesFromMaxWindowLayersOnAndReadsAListOfEosIds() {
        LlamaConfig c =
                LlamaConfig.parse(
                        QWEN25_05B
                                .replace(
                                        "\"use_sliding_window\": false",
                                        "\"use_sliding_window\": true")
                                .replace(
                                        "\"eos_token_id\": 151645",
                                        "\"eos_token_id\": [151645, 151643]"));
        assertThat(c.slidingWindow()).isEqualTo(32768);
        assertThat(c.slidingLayers().subList(0, 21)).containsOnly(false);
        assertThat(c.slidingLayers().subList(21, 24)).containsOnly(true);
        assertThat(c.eosTokenIds()).containsExactly(151645, 151643);
        assertThat(c.padTokenId()).isEqualTo(OptionalInt.empty());
    }

    @Test
    void refusesWhatItDoesNotImplementNamingTheField() {
        assertThatThrownBy(() -> LlamaConfig.parse(LLAMA_32_1B.replace("\"llama\"", "\"gemma\"")))
                .hasMessageContaining("model_type 'gemma'");
        assertThatThrownBy(() -> LlamaConfig.parse(LLAMA_32_1B.replace("\"silu\"", "\"gelu\"")))
                .hasMessageContaining("hidden_act 'gelu'");
        assertThatThrownBy(
                        () ->
                                LlamaConfig.parse(
                                        LLAMA_32_1B.replace(
                                                "\"rope_type\": \"llama3\"",
                                                "\"rope_type\": \"longrope\"")))
                .hasMessageContaining("rope_scaling type 'longrope'");
        assertThatThrownBy(
                        () ->
                                LlamaConfig.parse(
                                        LLAMA_32_1B.replace("\"low_freq_factor\": 1.0,", "")))
                .hasMessageContaining("low_freq_factor");
        assertThatThrownBy(
                        () ->
                                LlamaConfig.parse(
                                        MISTRAL_7B.replace(
                                                "\"num_key_value_heads\": 8",
                                                "\"num_key_value_heads\": 5")))
                .hasMessageContaining("num_key_value_heads 5");
        assertThatThrownBy(
                        () -> LlamaConfig.parse(LLAMA_32_1B.replace("\"hidden_size\": 2048,", "")))
                .hasMessageContaining("'hidden_size'");
    }

    @Test
    void theWrittenConfigReadsBackAsTheSameConfig() throws Exception {
        for (String json : List.of(LLAMA_32_1B, QWEN3_06B, MISTRAL_7B, QWEN25_05B)) {
            LlamaConfig c = LlamaConfig.parse(json);
            assertThat(LlamaConfig.parse(LlamaCheckpoint.configJson(c))).isEqualTo(c);
        }
        for (String json : TinyLlamas.variants().values()) {
            LlamaConfig c = LlamaConfig.parse(json);
            assertThat(LlamaConfig.parse(LlamaCheckpoint.configJson(c))).isEqualTo(c);
        }
    }

    @Test
    void llama3ScalingKeepsHighFrequenciesAndDividesLowOnesByTheFactor() {
        LlamaConfig c = LlamaConfig.parse(LLAMA_32_1B);
        float[] plain = LlamaRope.base(c.ropeTheta(), c.headDim());
        float[] scaled = LlamaRope.inverseFrequencies(c, 1);
        // Wavelength 2*pi < 8192/4: unchanged. The lowest frequency (wavelength > 8192): / 32.
        assertThat(scaled[0]).isEqualTo(plain[0]);
        assertThat(scaled[31]).isEqualTo(plain[31] / 32f);
    }

    @Test
    void qwen25sRecommendedYarnBlockKeepsItsFactor() {
        // Qwen2.5's model cards: add this block for contexts beyond 32768 tokens.
        LlamaConfig c =
                LlamaConfig.parse(
                        QWEN25_05B.replace(
                                "\"rope_theta\": 1000000.0,",
                                "\"rope_theta\": 1000000.0, \"rope_scaling\": {\"factor\": 4.0,"
                                        + " \"original_max_position_embeddings\": 32768,"
                                        + " \"type\": \"yarn\"},"));
        RopeScaling.Yarn yarn = (RopeScaling.Yarn) c.ropeScaling();
        assertThat(yarn.factor()).isEqualTo(4.0);
        assertThat(yarn.originalMaxPositionEmbeddings()).isEqualTo(32768);
        assertThat(yarn.betaFast()).isEqualTo(32);
        assertThat(yarn.betaSlow()).isEqualTo(1);
        // get_mscale(4) = 0.1 ln 4 + 1.
        assertThat(LlamaRope.attentionFactor(c)).isEqualTo((float) (0.1 * Math.log(4) + 1));
    }
}
