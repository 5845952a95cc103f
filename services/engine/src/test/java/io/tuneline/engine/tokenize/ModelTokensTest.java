package io.tuneline.engine.tokenize;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelTokensTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void llama3sTokensComeFromItsTokenizerConfig() throws Exception {
        ModelTokens t = ModelTokens.read(RealTokenizers.dir(RealTokenizers.LLAMA3));
        assertThat(t.source()).isEqualTo(ModelTokens.Source.TOKENIZER_CONFIG);
        assertThat(t.bos()).contains(new SpecialToken("<|begin_of_text|>", 128000));
        assertThat(t.eos()).contains(new SpecialToken("<|end_of_text|>", 128001));
        assertThat(t.pad()).isEmpty();
        assertThat(t.chatTemplate()).get().asString().contains("<|start_header_id|>");
        assertThat(t.specialTokens()).contains("<|eot_id|>").hasSize(256);
    }

    @Test
    void qwen3sTokensComeFromItsTokenizerConfig() throws Exception {
        ModelTokens t = ModelTokens.read(RealTokenizers.dir(RealTokenizers.QWEN3));
        assertThat(t.bos()).isEmpty(); // "bos_token": null
        assertThat(t.eos()).contains(new SpecialToken("<|im_end|>", 151645));
        assertThat(t.pad()).contains(new SpecialToken("<|endoftext|>", 151643));
        assertThat(t.addBos()).isFalse();
        assertThat(t.stopIds()).containsExactly(151645L);
    }

    @Test
    void configJsonAddsStopIdsAndFillsUnsetTokens(@TempDir Path dir) throws Exception {
        Path real = RealTokenizers.dir(RealTokenizers.LLAMA3);
        Files.copy(real.resolve("tokenizer.json"), dir.resolve("tokenizer.json"));
        // Llama 3.1 Instruct's config.json: generation stops at <|end_of_text|>, <|eom_id|>,
        // <|eot_id|>; AddedToken objects and a list of named templates as transformers saves them.
        Files.writeString(
                dir.resolve("config.json"),
                "{\"bos_token_id\": 128000, \"eos_token_id\": [128001, 128008, 128009],"
                        + " \"pad_token_id\": 128004}");
        Files.writeString(
                dir.resolve("tokenizer_config.json"),
                "{\"bos_token\": {\"content\": \"<|begin_of_text|>\", \"special\": true},"
                        + " \"eos_token\": {\"content\": \"<|eot_id|>\"}, \"add_bos_token\": true,"
                        + " \"chat_template\": [{\"name\": \"default\", \"template\": \"D\"},"
                        + " {\"name\": \"tool_use\", \"template\": \"T\"}]}");
        ModelTokens t = ModelTokens.read(dir);
        assertThat(t.bos()).contains(new SpecialToken("<|begin_of_text|>", 128000));
        assertThat(t.eos()).contains(new SpecialToken("<|eot_id|>", 128009));
        // Llama 3's vocabulary names 128004 <|reserved_special_token_2|> (3.1 renamed it).
        assertThat(t.pad()).contains(new SpecialToken("<|reserved_special_token_2|>", 128004));
        assertThat(t.addBos()).isTrue();
        assertThat(t.stopIds()).containsExactly(128009L, 128001L, 128008L);
        assertThat(t.chatTemplate()).contains("D");
        assertThat(t.chatTemplate(Optional.of("tool_use"))).contains("T");
    }

    @Test
    void aTokenizerWithoutTokenizerConfigFallsBackToItsFamilysEndToken() throws Exception {
        JsonNode miniLm;
        try (InputStream in =
                ModelTokensTest.class.getResourceAsStream("/all-minilm-l6-v2-tokenizer.json")) {
            miniLm = JSON.readTree(in);
        }
        ModelTokens t =
                ModelTokens.of(miniLm, Optional.empty(), Optional.empty(), Optional.empty());
        assertThat(t.source()).isEqualTo(ModelTokens.Source.FALLBACK);
        assertThat(t.eos()).contains(new SpecialToken("[SEP]", 102));
        assertThat(t.chatTemplate()).isEmpty();
        assertThat(t.chatTemplateFor(Optional.of("{{ messages[0].content }}"))).isPresent();
    }
}
