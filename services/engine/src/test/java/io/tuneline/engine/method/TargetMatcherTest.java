package io.tuneline.engine.method;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.gpt2.Gpt2LmModel;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * PEFT's target rule ({@code check_target_module_exists}, {@code peft/tuners/tuners_utils.py}) on
 * the real module names of each family: a list matches a name equal to an entry or ending with
 * {@code "." + entry}; a string is a regular expression the whole name must match.
 */
class TargetMatcherTest {
    /** all-MiniLM-L6-v2's shape: 6 layers. No weights are needed for names. */
    private static final Set<String> BERT =
            new SequenceClassifier(new BertEncoder(BertConfig.miniLmL6()), 2, 0f)
                    .linears()
                    .keySet();

    /** A 2-layer GPT-2. */
    private static final Set<String> GPT2 =
            new Gpt2LmModel(Gpt2Config.of(50, 16, 32, 2, 4)).linears().keySet();

    @Test
    void bertModulesAreNamedAsHuggingFaceNamesThem() {
        assertThat(BERT)
                .hasSize(6 * 6)
                .startsWith(
                        "encoder.layer.0.attention.self.query",
                        "encoder.layer.0.attention.self.key",
                        "encoder.layer.0.attention.self.value",
                        "encoder.layer.0.attention.output.dense",
                        "encoder.layer.0.intermediate.dense",
                        "encoder.layer.0.output.dense")
                .doesNotContain("classifier");
    }

    @Test
    void onBertDenseIsEveryDenseOfEveryLayerAsInPeft() {
        List<String> dense = TargetMatcher.anyOf(List.of("dense")).select(BERT);
        assertThat(dense)
                .hasSize(6 * 3)
                .contains(
                        "encoder.layer.0.attention.output.dense",
                        "encoder.layer.0.intermediate.dense",
                        "encoder.layer.5.output.dense");
        // A longer suffix narrows it; "output.dense" also ends "attention.output.dense".
        assertThat(TargetMatcher.anyOf(List.of("attention.output.dense")).select(BERT))
                .hasSize(6)
                .allMatch(m -> m.endsWith(".attention.output.dense"));
        assertThat(TargetMatcher.anyOf(List.of("output.dense")).select(BERT)).hasSize(12);
        assertThat(TargetMatcher.anyOf(List.of("query", "value")).select(BERT))
                .hasSize(12)
                .first()
                .isEqualTo("encoder.layer.0.attention.self.query");
        // A whole name matches itself only.
        assertThat(TargetMatcher.anyOf(List.of("encoder.layer.3.attention.self.key")).select(BERT))
                .containsExactly("encoder.layer.3.attention.self.key");
    }

    @Test
    void onGpt2CProjIsBothProjectionsAndAQualifiedNameOne() {
        assertThat(TargetMatcher.anyOf(List.of("c_proj")).select(GPT2))
                .containsExactly(
                        "transformer.h.0.attn.c_proj",
                        "transformer.h.0.mlp.c_proj",
                        "transformer.h.1.attn.c_proj",
                        "transformer.h.1.mlp.c_proj");
        assertThat(TargetMatcher.anyOf(List.of("attn.c_proj")).select(GPT2))
                .containsExactly("transformer.h.0.attn.c_proj", "transformer.h.1.attn.c_proj");
        assertThat(TargetMatcher.anyOf(List.of("c_attn")).select(GPT2))
                .containsExactly("transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn");
    }

    @Test
    void aStringIsARegularExpressionOverTheWholeName() {
        assertThat(TargetMatcher.fullMatch(".*\\.(query|value)").select(BERT)).hasSize(12);
        assertThat(TargetMatcher.fullMatch("encoder\\.layer\\.[01]\\..*dense").select(BERT))
                .containsExactly(
                        "encoder.layer.0.attention.output.dense",
                        "encoder.layer.0.intermediate.dense",
                        "encoder.layer.0.output.dense",
                        "encoder.layer.1.attention.output.dense",
                        "encoder.layer.1.intermediate.dense",
                        "encoder.layer.1.output.dense");
        assertThat(TargetMatcher.fullMatch("transformer\\.h\\.\\d+\\.mlp\\..*").select(GPT2))
                .containsExactly(
                        "transformer.h.0.mlp.c_fc",
                        "transformer.h.0.mlp.c_proj",
                        "transformer.h.1.mlp.c_fc",
                        "transformer.h.1.mlp.c_proj");
        // re.fullmatch, not re.search: a pattern matching part of a name selects nothing.
        assertThat(TargetMatcher.fullMatch("c_attn").matches("transformer.h.0.attn.c_attn"))
                .isFalse();
        assertThat(TargetMatcher.fullMatch("query").matches("encoder.layer.0.attention.self.query"))
                .isFalse();
    }

    @Test
    void targetsMatchingNoModuleAreAnErrorNamingTheModelsModules() {
        assertThatThrownBy(() -> TargetMatcher.anyOf(List.of("query", "value")).select(GPT2))
                .isInstanceOf(TargetMatcher.NoTargetMatchException.class)
                .hasMessageContaining("[query, value]")
                .hasMessageContaining("use c_attn, c_proj, c_fc")
                .hasMessageContaining("transformer.h.1.mlp.c_proj");
        // A suffix must start at a dot: "uery" is not "query".
        assertThatThrownBy(() -> TargetMatcher.anyOf(List.of("uery")).select(BERT))
                .hasMessageContaining("use query, key, value, dense")
                .hasMessageContaining("encoder.layer.5.output.dense");
        assertThatThrownBy(() -> TargetMatcher.fullMatch("query").select(BERT))
                .isInstanceOf(TargetMatcher.NoTargetMatchException.class)
                .hasMessageContaining("regular expression");
        assertThatThrownBy(() -> TargetMatcher.fullMatch("(unclosed"))
                .isInstanceOf(java.util.regex.PatternSyntaxException.class);
    }
}
