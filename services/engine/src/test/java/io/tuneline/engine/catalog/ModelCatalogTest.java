package io.tuneline.engine.catalog;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.Model;
import io.tuneline.engine.model.gpt2.Gpt2Checkpoint;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.gpt2.Gpt2LmModel;
import io.tuneline.engine.model.llama.LlamaCheckpoint;
import io.tuneline.engine.model.llama.LlamaConfig;
import io.tuneline.engine.model.llama.LlamaLmModel;
import io.tuneline.engine.runtime.EngineRuntime;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Hugging Face model directories in the catalogue: a tiny random GPT-2 written with the engine's
 * writer, with MiniLM's tokenizer.json as its tokenizer (no GPT-2 tokenizer exists offline), so its
 * vocab_size is MiniLM's 30522.
 */
class ModelCatalogTest {
    static final Gpt2Config TINY = Gpt2Config.of(30522, 32, 16, 1, 2);

    @TempDir Path tmp;

    static Path gpt2Directory(Path dir, Gpt2Config config) throws IOException {
        Gpt2Checkpoint.saveRandom(config, 7, dir);
        try (InputStream in =
                ModelCatalogTest.class
                        .getClassLoader()
                        .getResourceAsStream("all-minilm-l6-v2-tokenizer.json")) {
            Files.copy(in, dir.resolve("tokenizer.json"));
        }
        return dir;
    }

    @Test
    void aLocalGpt2DirectoryResolvesToItsConfigWeightsAndTokenizer() throws Exception {
        Path dir = gpt2Directory(tmp.resolve("tiny-gpt2"), TINY);
        PretrainedModel model = ModelCatalog.resolve(dir.toString());
        assertThat(model.architecture()).isEqualTo(PretrainedModel.Architecture.GPT2);
        assertThat(model.gpt2Config()).isEqualTo(TINY);
        assertThat(model.directory()).contains(dir);
        assertThat(model.weights().describe()).endsWith("model.safetensors");
        try (InputStream in = model.tokenizer().open()) {
            assertThat(new String(in.readNBytes(200))).contains("\"truncation\"");
        }
        assertThatThrownBy(model::config)
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("not a BERT-family encoder");
        assertThat(ModelCatalog.resolve(dir.toUri().toString()).gpt2Config()).isEqualTo(TINY);

        EngineRuntime runtime = EngineRuntime.start(2);
        try (Model loaded =
                Gpt2Checkpoint.load(model.directory().orElseThrow(), runtime.device())) {
            assertThat(((Gpt2LmModel) loaded.getBlock()).config()).isEqualTo(TINY);
        }
    }

    @Test
    void missingFilesAreNamed() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("half"));
        Files.writeString(dir.resolve("config.json"), Gpt2Checkpoint.configJson(TINY));
        Files.writeString(dir.resolve("pytorch_model.bin"), "not read");
        assertThatThrownBy(() -> ModelCatalog.resolve(dir.toString()))
                .isInstanceOf(UnknownModelException.class)
                .hasMessageContaining("lacks model.safetensors, tokenizer.json")
                .hasMessageContaining("safe_serialization=True");

        Path empty = Files.createDirectories(tmp.resolve("empty"));
        assertThatThrownBy(() -> ModelCatalog.resolve(empty.toString()))
                .isInstanceOf(UnknownModelException.class)
                .hasMessageContaining("lacks config.json, model.safetensors, tokenizer.json");
    }

    @Test
    void otherArchitecturesAndForeignTokenizersAreRefused() throws Exception {
        Path bert = Files.createDirectories(tmp.resolve("bert"));
        Files.writeString(
                bert.resolve("config.json"),
                "{\"model_type\": \"bert\", \"hidden_act\": \"gelu_new\"}");
        Files.writeString(bert.resolve("model.safetensors"), "x");
        Files.writeString(bert.resolve("tokenizer.json"), "{}");
        assertThatThrownBy(() -> ModelCatalog.resolve(bert.toString()))
                .isInstanceOf(UnknownModelException.class)
                .hasMessageContaining("base model '" + bert + "'")
                .hasMessageContaining("hidden_act 'gelu_new'");

        Path gemma = Files.createDirectories(tmp.resolve("gemma"));
        Files.writeString(gemma.resolve("config.json"), "{\"model_type\": \"gemma\"}");
        Files.writeString(gemma.resolve("model.safetensors"), "x");
        Files.writeString(gemma.resolve("tokenizer.json"), "{}");
        assertThatThrownBy(() -> ModelCatalog.resolve(gemma.toString()))
                .hasMessageContaining("model_type 'gemma'");

        // vocab 50: MiniLM's tokenizer would produce ids the embedding does not have.
        Path small = gpt2Directory(tmp.resolve("small"), Gpt2Config.of(50, 16, 16, 1, 2));
        assertThatThrownBy(() -> ModelCatalog.resolve(small.toString()))
                .isInstanceOf(UnknownModelException.class)
                .hasMessageContaining("token ids up to 30521")
                .hasMessageContaining("vocab_size is 50");
    }

    @Test
    void anS3DirectoryIsFetchedConfigFirst() throws Exception {
        Path remote = gpt2Directory(tmp.resolve("remote"), TINY);
        List<List<String>> asked = new ArrayList<>();
        ModelFetcher fetcher =
                (uri, files, into) -> {
                    assertThat(uri).isEqualTo("s3://models/tiny-gpt2/");
                    asked.add(files);
                    for (String f : files) {
                        if (Files.exists(remote.resolve(f))) {
                            Files.copy(remote.resolve(f), into.resolve(f));
                        }
                    }
                };
        PretrainedModel model =
                ModelCatalog.resolve("s3://models/tiny-gpt2/", fetcher, tmp.resolve("scratch"));
        assertThat(model.gpt2Config()).isEqualTo(TINY);
        assertThat(model.name()).isEqualTo("s3://models/tiny-gpt2/");
        assertThat(model.directory().orElseThrow()).startsWith(tmp.resolve("scratch"));
        // The optional files are asked for too: special tokens and chat template, and the state
        // of a method that cannot be merged (MethodState), so a tuned model is seen as such.
        assertThat(asked)
                .containsExactly(
                        List.of("config.json"),
                        List.of(
                                "model.safetensors",
                                "tokenizer.json",
                                "tokenizer_config.json",
                                "special_tokens_map.json",
                                "tuneline_method.json",
                                "tuneline_method.safetensors"));

        // A configuration the engine does not implement fails on its own: no weights travel.
        Files.writeString(
                remote.resolve("config.json"),
                "{\"model_type\": \"roberta\", \"position_embedding_type\": \"relative_key\"}");
        asked.clear();
        assertThatThrownBy(
                        () ->
                                ModelCatalog.resolve(
                                        "s3://models/tiny-gpt2/", fetcher, tmp.resolve("other")))
                .hasMessageContaining("position_embedding_type 'relative_key'");
        assertThat(asked).containsExactly(List.of("config.json"));

        // Files the store does not have are named with the URI.
        Files.delete(remote.resolve("tokenizer.json"));
        Files.writeString(remote.resolve("config.json"), Gpt2Checkpoint.configJson(TINY));
        assertThatThrownBy(
                        () ->
                                ModelCatalog.resolve(
                                        "s3://models/tiny-gpt2/", fetcher, tmp.resolve("third")))
                .hasMessageContaining("base model 's3://models/tiny-gpt2/' lacks tokenizer.json");

        assertThatThrownBy(() -> ModelCatalog.resolve("s3://models/tiny-gpt2/"))
                .isInstanceOf(UnknownModelException.class)
                .hasMessageContaining("no model fetcher");
    }

    @Test
    void theTokenizerAloneFetchesNoWeights() throws Exception {
        Path remote = gpt2Directory(tmp.resolve("remote-tok"), TINY);
        List<List<String>> asked = new ArrayList<>();
        ModelFetcher fetcher =
                (uri, files, into) -> {
                    asked.add(files);
                    for (String f : files) {
                        if (Files.exists(remote.resolve(f))) {
                            Files.copy(remote.resolve(f), into.resolve(f));
                        }
                    }
                };
        Files.writeString(remote.resolve("tokenizer_config.json"), "{\"eos_token\": \"[SEP]\"}");
        ModelCatalog.TokenizerFiles files =
                ModelCatalog.tokenizerFiles("s3://models/tiny/", fetcher, tmp.resolve("s"));
        PretrainedModel.Source tokenizer = files.tokenizer();
        assertThat(asked)
                .containsExactly(
                        List.of(
                                "config.json",
                                "tokenizer.json",
                                "tokenizer_config.json",
                                "special_tokens_map.json"));
        assertThat(files.directory().orElseThrow().resolve("tokenizer_config.json")).exists();
        assertThat(files.directory().orElseThrow().resolve("special_tokens_map.json"))
                .doesNotExist();
        try (InputStream in = tokenizer.open()) {
            assertThat(new String(in.readNBytes(200))).contains("\"truncation\"");
        }
        assertThat(ModelCatalog.tokenizer("minilm-l6", ModelFetcher.NONE, null).describe())
                .isEqualTo("classpath:all-minilm-l6-v2-tokenizer.json");
    }

    /** A tiny Qwen2 of MiniLM's vocabulary size, sharded as save_pretrained shards. */
    Path shardedQwen2(Path dir) throws IOException {
        LlamaConfig config =
                LlamaConfig.parse(
                        "{\"model_type\": \"qwen2\", \"vocab_size\": 30522, \"hidden_size\": 16,"
                                + " \"intermediate_size\": 24, \"num_hidden_layers\": 2,"
                                + " \"num_attention_heads\": 2, \"num_key_value_heads\": 1,"
                                + " \"tie_word_embeddings\": true}");
        Path single = tmp.resolve("single-" + dir.getFileName());
        LlamaCheckpoint.saveRandom(config, single, 3);
        Files.createDirectories(dir);
        Files.copy(single.resolve("config.json"), dir.resolve("config.json"));
        var writers =
                new io.tuneline.engine.io.safetensors.SafetensorsWriter[] {
                    new io.tuneline.engine.io.safetensors.SafetensorsWriter(),
                    new io.tuneline.engine.io.safetensors.SafetensorsWriter()
                };
        String[] shards = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
        StringBuilder map = new StringBuilder();
        try (var f =
                io.tuneline.engine.io.safetensors.SafetensorsFile.open(
                        single.resolve("model.safetensors"))) {
            for (String n : f.names()) {
                int s = n.startsWith("model.layers.1.") ? 1 : 0;
                writers[s].addF32(n, f.info(n).shape(), f.floats(n));
                map.append(map.length() == 0 ? "" : ", ")
                        .append('"')
                        .append(n)
                        .append("\": \"")
                        .append(shards[s])
                        .append('"');
            }
        }
        writers[0].write(dir.resolve(shards[0]));
        writers[1].write(dir.resolve(shards[1]));
        Files.writeString(
                dir.resolve("model.safetensors.index.json"),
                "{\"metadata\": {}, \"weight_map\": {" + map + "}}");
        try (InputStream in =
                ModelCatalogTest.class
                        .getClassLoader()
                        .getResourceAsStream("all-minilm-l6-v2-tokenizer.json")) {
            Files.copy(in, dir.resolve("tokenizer.json"));
        }
        return dir;
    }

    @Test
    void aShardedLlamaFamilyDirectoryResolvesLocallyAndFromTheStore() throws Exception {
        Path dir = shardedQwen2(tmp.resolve("qwen2"));
        PretrainedModel model = ModelCatalog.resolve(dir.toString());
        assertThat(model.architecture()).isEqualTo(PretrainedModel.Architecture.LLAMA);
        assertThat(model.llamaConfig().modelType()).isEqualTo("qwen2");
        assertThat(model.weights().describe()).endsWith("model.safetensors.index.json");
        assertThatThrownBy(model::gpt2Config).hasMessageContaining("not GPT-2");
        EngineRuntime runtime = EngineRuntime.start(2);
        try (Model loaded =
                LlamaCheckpoint.load(model.directory().orElseThrow(), runtime.device())) {
            assertThat(((LlamaLmModel) loaded.getBlock()).config()).isEqualTo(model.llamaConfig());
        }

        List<List<String>> asked = new ArrayList<>();
        ModelFetcher fetcher =
                (uri, files, into) -> {
                    asked.add(files);
                    for (String f : files) {
                        if (Files.exists(dir.resolve(f))) {
                            Files.copy(dir.resolve(f), into.resolve(f));
                        }
                    }
                };
        PretrainedModel fetched =
                ModelCatalog.resolve("s3://models/qwen2/", fetcher, tmp.resolve("scratch"));
        assertThat(fetched.llamaConfig()).isEqualTo(model.llamaConfig());
        assertThat(asked)
                .containsExactly(
                        List.of("config.json"),
                        List.of(
                                "model.safetensors",
                                "tokenizer.json",
                                "tokenizer_config.json",
                                "special_tokens_map.json",
                                "tuneline_method.json",
                                "tuneline_method.safetensors"),
                        List.of("model.safetensors.index.json"),
                        List.of(
                                "model-00001-of-00002.safetensors",
                                "model-00002-of-00002.safetensors"));

        Files.delete(dir.resolve("model-00002-of-00002.safetensors"));
        assertThatThrownBy(() -> ModelCatalog.resolve(dir.toString()))
                .isInstanceOf(UnknownModelException.class)
                .hasMessageContaining(
                        "lacks model-00002-of-00002.safetensors (named in"
                                + " model.safetensors.index.json)");
    }

    @Test
    void unknownNamesAndMissingDirectoriesSaySo() {
        assertThatThrownBy(() -> ModelCatalog.resolve("openai-community/gpt2"))
                .isInstanceOf(UnknownModelException.class)
                .hasMessageContaining("no such directory")
                .hasMessageContaining("minilm-l6")
                .hasMessageContaining("nothing is downloaded");
        assertThatThrownBy(() -> ModelCatalog.resolve("file:relative/dir"))
                .isInstanceOf(UnknownModelException.class)
                .hasMessageContaining("file:///absolute/path");
    }
}
