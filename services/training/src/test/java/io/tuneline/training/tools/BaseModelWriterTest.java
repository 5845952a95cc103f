package io.tuneline.training.tools;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.Model;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.model.llama.LlamaCheckpoint;
import io.tuneline.engine.model.llama.LlamaLmModel;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.tokenize.ModelTokens;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code ./platform base-model}'s directory: a loadable model sized by its tokenizer. */
class BaseModelWriterTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void theModelTakesItsVocabularyAndSpecialTokensFromTheTokenizerAndLoads(@TempDir Path dir)
            throws Exception {
        Path tokenizer = dir.resolve("tokenizer");
        Files.createDirectories(tokenizer);
        // Ids 0..3 in the vocabulary, 9 an added token: the embedding needs 10 rows.
        Files.writeString(
                tokenizer.resolve(ModelTokens.TOKENIZER),
                "{\"model\": {\"type\": \"WordLevel\", \"unk_token\": \"<unk>\", \"vocab\":"
                        + " {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, \"hi\": 3}},"
                        + " \"added_tokens\": [{\"id\": 1, \"content\": \"<s>\", \"special\":"
                        + " true}, {\"id\": 2, \"content\": \"</s>\", \"special\": true}, {\"id\":"
                        + " 9, \"content\": \"<|im_end|>\", \"special\": true}]}");
        Files.writeString(
                tokenizer.resolve(ModelTokens.TOKENIZER_CONFIG),
                "{\"bos_token\": \"<s>\", \"eos_token\": \"<|im_end|>\", \"chat_template\":"
                        + " \"{{ messages[0].content }}\"}");
        Path out = dir.resolve("model");
        Files.createDirectories(out);

        BaseModelWriter.write("qwen3", tokenizer, out, 7);

        JsonNode config = JSON.readTree(out.resolve("config.json").toFile());
        assertThat(config.path("model_type").asText()).isEqualTo("qwen3");
        assertThat(config.path("vocab_size").asInt()).isEqualTo(10);
        assertThat(config.path("bos_token_id").asInt()).isEqualTo(1);
        assertThat(config.path("eos_token_id").asInt()).isEqualTo(9);
        assertThat(ModelTokens.read(out).chatTemplates()).isNotEmpty();
        try (Model model = LlamaCheckpoint.load(out, EngineRuntime.start(1).device())) {
            LlamaLmModel lm = (LlamaLmModel) model.getBlock();
            assertThat(lm.vocabSize()).isEqualTo(10);
            assertThat(lm.config().qkNorm()).isTrue();
        }
    }

    @Test
    void aModelTypeOutsideTheLlamaFamilyIsRefusedNamingTheFamily(@TempDir Path dir) {
        assertThatThrownBy(() -> BaseModelWriter.write("gpt2", dir, dir, 1))
                .hasMessageContaining("'gpt2'")
                .hasMessageContaining("qwen3");
    }
}
