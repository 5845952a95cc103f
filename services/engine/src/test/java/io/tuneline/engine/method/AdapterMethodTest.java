package io.tuneline.engine.method;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.Model;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.export.AdapterHubAdapter;
import io.tuneline.engine.method.FineTuningMethod.Adapter;
import io.tuneline.engine.method.FineTuningMethod.Adapter.Placement;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.runtime.EngineRuntime;
import java.math.BigDecimal;
import org.junit.jupiter.api.Test;

/**
 * The adapter method's settings as the {@code adapters} library names and defaults them, its
 * description round trip, and its parameter count on MiniLM-L6 (hidden 384, 6 layers) computed from
 * the library's formula: one adapter is Linear(H, m) + Linear(m, H), 2 H m + m + H.
 */
class AdapterMethodTest {

    @Test
    void theLibrarysConfigNamesGiveItsDefaults() {
        assertThat(Adapter.parse("seq_bn")).isEqualTo(Adapter.pfeiffer());
        assertThat(Adapter.parse("pfeiffer")).isEqualTo(Adapter.pfeiffer());
        assertThat(Adapter.parse("double_seq_bn")).isEqualTo(Adapter.houlsby());
        assertThat(Adapter.parse(" HOULSBY ")).isEqualTo(Adapter.houlsby());
        assertThatThrownBy(() -> Adapter.parse("par_bn"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("seq_bn");
        assertThat(Adapter.pfeiffer().activation()).isEqualTo("relu");
        assertThat(Adapter.houlsby().activation()).isEqualTo("swish");
        assertThat(Adapter.pfeiffer().reductionFactor()).isEqualTo(16);
        assertThat(Adapter.pfeiffer().bottleneck(384)).isEqualTo(24);
        assertThat(Adapter.houlsby().bottleneck(768)).isEqualTo(48);
        assertThat(new Adapter(Placement.PFEIFFER, 0, 1000, null, 0f).bottleneck(32))
                .as("at least 1, as the library's down_sample")
                .isEqualTo(1);
        assertThat(new Adapter(Placement.HOULSBY, 7, 16, "GELU", 0f).bottleneck(384)).isEqualTo(7);
        assertThat(new Adapter(Placement.HOULSBY, 7, 16, "GELU", 0f).activation())
                .isEqualTo("gelu");
        assertThat(Adapter.pfeiffer().mergeable()).isFalse();
        assertThat(Adapter.fromJob("", 0, 0, "", 0)).isEqualTo(Adapter.pfeiffer());
        assertThat(Adapter.fromJob("double_seq_bn", 0, 0, null, 0)).isEqualTo(Adapter.houlsby());
        assertThat(Adapter.fromJob("houlsby", 32, 0, "relu", 0.1))
                .isEqualTo(new Adapter(Placement.HOULSBY, 32, 16, "relu", 0.1f));
    }

    @Test
    void badSettingsAreRefusedWithTheirName() {
        assertThatThrownBy(() -> new Adapter(Placement.PFEIFFER, -1, 16, null, 0f))
                .hasMessageContaining("bottleneck size");
        assertThatThrownBy(() -> new Adapter(Placement.PFEIFFER, 0, 0, null, 0f))
                .hasMessageContaining("reduction factor");
        assertThatThrownBy(() -> new Adapter(Placement.PFEIFFER, 0, 16, null, 1f))
                .hasMessageContaining("dropout");
        assertThatThrownBy(() -> new Adapter(Placement.PFEIFFER, 0, 16, "softplus", 0f))
                .hasMessageContaining("softplus");
        assertThatThrownBy(() -> new Adapter(null, 0, 16, null, 0f))
                .hasMessageContaining("placement");
    }

    @Test
    void theDescriptionRebuildsTheSameMethod() {
        for (Adapter a :
                new Adapter[] {
                    Adapter.pfeiffer(),
                    Adapter.houlsby(),
                    new Adapter(Placement.HOULSBY, 12, 8, "gelu_new", 0.1f)
                }) {
            ObjectNode d = a.describe();
            assertThat(d.path("method").asText()).isEqualTo("ADAPTER");
            assertThat(FineTuningMethod.fromDescription(d)).isEqualTo(a);
        }
        assertThat(Adapter.houlsby().describe().toString())
                .isEqualTo(
                        "{\"method\":\"ADAPTER\",\"placement\":\"HOULSBY\",\"bottleneck_size\":0,"
                                + "\"reduction_factor\":16,\"activation\":\"swish\",\"dropout\":0.0}");
    }

    @Test
    void onMiniLmTheTrainedParametersAreTheLibrarysCountPlusTheHead() {
        EngineRuntime runtime = EngineRuntime.start(1);
        long perAdapter = 2L * 384 * 24 + 24 + 384;
        long head = 2L * 384 + 2;
        for (Adapter a : new Adapter[] {Adapter.pfeiffer(), Adapter.houlsby()}) {
            try (Model model = Model.newInstance("bert", runtime.device(), EngineRuntime.ENGINE)) {
                SequenceClassifier c =
                        new SequenceClassifier(new BertEncoder(BertConfig.miniLmL6()), 2, 0f);
                c.initialize(
                        model.getNDManager(), DataType.FLOAT32, new Shape(1, 8), new Shape(1, 8));
                long base = ParameterCounts.of(c).total();
                ParameterCounts counts = a.apply(c, model.getNDManager());
                long adapters = 6 * perAdapter * (a.placement() == Placement.HOULSBY ? 2 : 1);
                assertThat(counts.trainable()).as(a.placement().name()).isEqualTo(adapters + head);
                assertThat(counts.total()).isEqualTo(base + adapters);
                System.out.printf(
                        "MiniLM-L6 %s: trainable %d of %d (%.2f%%)%n",
                        a.placement(),
                        counts.trainable(),
                        counts.total(),
                        100 * counts.trainableFraction());
                assertThatThrownBy(() -> a.apply(c, model.getNDManager()))
                        .isInstanceOf(IllegalStateException.class)
                        .hasMessageContaining("already has a bottleneck adapter");
            }
        }
    }

    /**
     * An explicit bottleneck is exported as a float reduction factor whose exact floor division
     * (what Python's {@code hidden // rf} gives for these integers) is the bottleneck again.
     */
    @Test
    void anExplicitBottleneckSurvivesTheLibrarysFloorDivision() {
        for (int hidden : new int[] {32, 384, 768, 4096}) {
            for (int b = 1; b <= hidden; b++) {
                double rf =
                        AdapterHubAdapter.bnConfig(
                                        new Adapter(Placement.PFEIFFER, b, 16, null, 0f), hidden)
                                .path("reduction_factor")
                                .asDouble();
                BigDecimal exact = new BigDecimal(rf);
                BigDecimal h = BigDecimal.valueOf(hidden);
                assertThat(exact.multiply(BigDecimal.valueOf(b)).compareTo(h))
                        .as("%d // %s >= %d", hidden, rf, b)
                        .isLessThanOrEqualTo(0);
                assertThat(exact.multiply(BigDecimal.valueOf(b + 1L)).compareTo(h))
                        .as("%d // %s < %d", hidden, rf, b + 1)
                        .isGreaterThan(0);
            }
        }
        assertThat(AdapterHubAdapter.bnConfig(Adapter.pfeiffer(), 384).size()).isEqualTo(33);
        assertThat(
                        AdapterHubAdapter.bnConfig(Adapter.pfeiffer(), 384)
                                .path("reduction_factor")
                                .isInt())
                .isTrue();
    }
}
