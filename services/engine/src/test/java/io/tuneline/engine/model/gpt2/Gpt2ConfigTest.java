package io.tuneline.engine.model.gpt2;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class Gpt2ConfigTest {
    /** The config.json of Hugging Face's {@code gpt2} (124M), fields as published. */
    private static final String GPT2_SMALL =
            """
            {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
             "attn_pdrop": 0.1, "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256,
             "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gpt2",
             "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12, "n_positions": 1024,
             "resid_pdrop": 0.1, "summary_activation": null, "summary_first_dropout": 0.1,
             "summary_proj_to_labels": true, "summary_type": "cls_index", "summary_use_proj": true,
             "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
             "vocab_size": 50257}
            """;

    @Test
    void readsThePublishedGpt2Config() {
        Gpt2Config c = Gpt2Config.parse(GPT2_SMALL);
        assertThat(c).isEqualTo(new Gpt2Config(50257, 1024, 768, 12, 12, 3072, 1e-5f));
        assertThat(c.headSize()).isEqualTo(64);
        assertThat(Gpt2Config.parse(TinyGpt2.CONFIG_JSON)).isEqualTo(TinyGpt2.CONFIG);
        assertThat(
                        Gpt2Config.parse(
                                        GPT2_SMALL.replace(
                                                "\"n_head\": 12",
                                                "\"n_inner\": 100, \"n_head\": 12"))
                                .innerSize())
                .isEqualTo(100);
    }

    @Test
    void anythingTheEngineDoesNotImplementFailsNamingTheSetting() {
        assertThatThrownBy(() -> Gpt2Config.parse(GPT2_SMALL.replace("gelu_new", "gelu")))
                .hasMessageContaining("activation_function 'gelu'")
                .hasMessageContaining("only gelu_new");
        assertThatThrownBy(
                        () ->
                                Gpt2Config.parse(
                                        GPT2_SMALL.replace(
                                                "\"model_type\": \"gpt2\"",
                                                "\"model_type\": \"gpt_neo\"")))
                .hasMessageContaining("model_type 'gpt_neo'");
        assertThatThrownBy(
                        () ->
                                Gpt2Config.parse(
                                        GPT2_SMALL.replace(
                                                "\"n_ctx\"",
                                                "\"tie_word_embeddings\": false, \"n_ctx\"")))
                .hasMessageContaining("tie_word_embeddings");
        assertThatThrownBy(
                        () ->
                                Gpt2Config.parse(
                                        GPT2_SMALL.replace(
                                                "\"n_ctx\"",
                                                "\"scale_attn_by_inverse_layer_idx\": true, \"n_ctx\"")))
                .hasMessageContaining("scale_attn_by_inverse_layer_idx");
        assertThatThrownBy(() -> Gpt2Config.parse(GPT2_SMALL.replace("\"n_head\": 12,", "")))
                .hasMessageContaining("lacks 'n_head'");
        assertThatThrownBy(
                        () ->
                                Gpt2Config.parse(
                                        GPT2_SMALL.replace("\"n_head\": 12", "\"n_head\": 7")))
                .hasMessageContaining("not divisible");
        assertThatThrownBy(
                        () ->
                                Gpt2Config.parse(
                                        GPT2_SMALL.replace(
                                                "\"n_layer\": 12", "\"n_layer\": \"12\"")))
                .hasMessageContaining("'n_layer' must be an integer");
        assertThatThrownBy(() -> Gpt2Config.parse("[1]")).hasMessageContaining("not a JSON object");
    }
}
