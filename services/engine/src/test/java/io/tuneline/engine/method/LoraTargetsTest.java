package io.tuneline.engine.method;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.Model;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.export.PeftAdapter;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.gpt2.Gpt2LmModel;
import io.tuneline.engine.runtime.EngineRuntime;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * LoRA attaches to exactly the modules PEFT's rule selects, in every family, and the exported
 * adapter says so: PEFT loading {@code adapter_config.json} onto the base finds every trained
 * matrix under the name it expects.
 */
class LoraTargetsTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final EngineRuntime runtime = EngineRuntime.start(1);

    @Test
    void denseOnBertAdaptsAllThreeDenseProjectionsOfEveryLayer(@TempDir Path dir) throws Exception {
        SequenceClassifier classifier =
                new SequenceClassifier(new BertEncoder(BertConfig.miniLmL6()), 2, 0f);
        try (Model model = Model.newInstance("bert", runtime.device(), EngineRuntime.ENGINE)) {
            classifier.initialize(
                    model.getNDManager(), DataType.FLOAT32, new Shape(1, 8), new Shape(1, 8));
            model.setBlock(classifier);
            FineTuningMethod.Lora lora = new FineTuningMethod.Lora(4, 8f, 0f, List.of("dense"));
            ParameterCounts counts = lora.apply(classifier, model.getNDManager());

            // Per layer, r 4 on (in, out): attention.output.dense (384, 384), intermediate.dense
            // (384, 1536), output.dense (1536, 384); plus the head (2 x 384 + 2).
            long perLayer = 4 * (384 + 384) + 4 * (384 + 1536) + 4 * (1536 + 384);
            assertThat(counts.trainable()).isEqualTo(6 * perLayer + 2 * 384 + 2);
            assertThat(classifier.deltaParameters())
                    .hasSize(6 * 3 * 2)
                    .containsKeys(
                            "encoder.layer.0.attention.output.dense.lora_A.weight",
                            "encoder.layer.0.intermediate.dense.lora_B.weight",
                            "encoder.layer.5.output.dense.lora_A.weight");
            assertThat(classifier.namedParameters().get("encoder.layer.0.output.dense.weight"))
                    .matches(p -> !p.requiresGradient(), "frozen");
            assertThat(classifier.namedParameters().get("classifier.weight"))
                    .matches(p -> p.requiresGradient(), "the head trains");

            assertThat(PeftAdapter.write(classifier, lora, "base", dir)).isTrue();
            JsonNode config = JSON.readTree(dir.resolve("adapter_config.json").toFile());
            assertThat(config.path("target_modules").toString()).isEqualTo("[\"dense\"]");
            assertThat(config.path("modules_to_save").toString()).isEqualTo("[\"classifier\"]");
            try (SafetensorsFile f =
                    SafetensorsFile.open(dir.resolve("adapter_model.safetensors"))) {
                assertThat(f.names())
                        .hasSize(6 * 3 * 2 + 2)
                        .contains(
                                "base_model.model.encoder.layer.3.intermediate.dense.lora_A.weight");
                assertThat(
                                f.info(
                                                "base_model.model.encoder.layer.3.intermediate.dense.lora_B.weight")
                                        .shape())
                        .containsExactly(1536, 4);
            }
        }
    }

    @Test
    void aRegularExpressionTargetsItsModulesAndIsExportedAsAString(@TempDir Path dir)
            throws Exception {
        Gpt2LmModel lm = new Gpt2LmModel(Gpt2Config.of(50, 16, 32, 2, 4));
        try (Model model = Model.newInstance("gpt2", runtime.device(), EngineRuntime.ENGINE)) {
            lm.initialize(model.getNDManager(), DataType.FLOAT32, new Shape(1, 1));
            model.setBlock(lm);
            FineTuningMethod.Lora lora =
                    new FineTuningMethod.Lora(
                            2, 4f, 0f, TargetMatcher.fullMatch("transformer\\.h\\.1\\.attn\\..*"));
            ParameterCounts counts = lora.apply(lm, model.getNDManager());

            // c_attn (32 -> 96) and attn.c_proj (32 -> 32) of layer 1 only.
            assertThat(counts.trainable()).isEqualTo(2 * (32 + 96) + 2 * (32 + 32));
            assertThat(lm.deltaParameters().keySet())
                    .containsExactly(
                            "transformer.h.1.attn.c_attn.lora_A.weight",
                            "transformer.h.1.attn.c_attn.lora_B.weight",
                            "transformer.h.1.attn.c_proj.lora_A.weight",
                            "transformer.h.1.attn.c_proj.lora_B.weight");
            // A second adapter on the same module would share its PEFT names.
            assertThatThrownBy(
                            () ->
                                    new FineTuningMethod.Lora(2, 4f, 0f, List.of("c_attn"))
                                            .apply(lm, model.getNDManager()))
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("transformer.h.1.attn.c_attn");
            assertThat(lm.deltaParameters()).hasSize(4);

            assertThat(PeftAdapter.write(lm, lora, "base", dir)).isTrue();
            JsonNode config = JSON.readTree(dir.resolve("adapter_config.json").toFile());
            assertThat(config.path("target_modules").isTextual()).isTrue();
            assertThat(config.path("target_modules").asText())
                    .isEqualTo("transformer\\.h\\.1\\.attn\\..*");
        }
    }

    @Test
    void targetsMatchingNothingFailBeforeTheModelIsTouched() throws Exception {
        SequenceClassifier classifier =
                new SequenceClassifier(new BertEncoder(BertConfig.miniLmL6()), 2, 0f);
        try (Model model = Model.newInstance("bert", runtime.device(), EngineRuntime.ENGINE)) {
            classifier.initialize(
                    model.getNDManager(), DataType.FLOAT32, new Shape(1, 8), new Shape(1, 8));
            model.setBlock(classifier);
            assertThatThrownBy(
                            () ->
                                    FineTuningMethod.Lora.gpt2Defaults()
                                            .apply(classifier, model.getNDManager()))
                    .isInstanceOf(TargetMatcher.NoTargetMatchException.class)
                    .hasMessageContaining("[c_attn]")
                    .hasMessageContaining("encoder.layer.0.attention.self.query");
            assertThat(classifier.deltaParameters()).isEmpty();
            assertThat(classifier.namedParameters().values())
                    .allMatch(p -> p.requiresGradient(), "nothing was frozen");
        }
    }
}
