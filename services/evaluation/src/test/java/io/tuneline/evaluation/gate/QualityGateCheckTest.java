package io.tuneline.evaluation.gate;

import static org.assertj.core.api.Assertions.assertThat;

import io.tuneline.proto.v1.GateReference;
import io.tuneline.proto.v1.QualityGate;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class QualityGateCheckTest {
    private static final Map<String, Double> TUNED =
            Map.of("accuracy", 0.87, "macro_f1", 0.71, "ece", 0.08);

    @Test
    void noGatePasses() {
        assertThat(
                        QualityGateCheck.check(
                                QualityGate.getDefaultInstance(), TUNED, Optional.empty()))
                .isEqualTo(new GateVerdict(true, java.util.List.of(), java.util.List.of()));
    }

    @Test
    void minimumsAndRegressionsGiveOneReasonEach() {
        QualityGate gate =
                QualityGate.newBuilder()
                        .putMinMetrics("macro_f1", 0.8)
                        .putMinMetrics("accuracy", 0.85)
                        .putMinMetrics("ece", 0.05)
                        .putMaxRegression("accuracy", 0.01)
                        .build();
        GateVerdict v =
                QualityGateCheck.check(
                        gate, TUNED, Optional.of(Map.of("accuracy", 0.90, "ece", 0.1)));
        assertThat(v.passed()).isFalse();
        assertThat(v.reasons())
                .containsExactlyInAnyOrder(
                        "macro_f1 0.7100 < minimum 0.8000",
                        "ece 0.0800 > maximum 0.0500",
                        "accuracy dropped by 0.0300 against the base model (0.9000 -> 0.8700); at"
                                + " most 0.0100 allowed");
    }

    @Test
    void aRegressionWithinTheAllowanceAndAnImprovementPass() {
        QualityGate gate =
                QualityGate.newBuilder()
                        .putMaxRegression("accuracy", 0.05)
                        .putMaxRegression("ece", 0.0)
                        .setReference(GateReference.GATE_REFERENCE_PRODUCTION)
                        .build();
        GateVerdict v =
                QualityGateCheck.check(
                        gate, TUNED, Optional.of(Map.of("accuracy", 0.90, "ece", 0.09)));
        assertThat(v.passed()).isTrue();
        assertThat(v.notes()).isEmpty();
    }

    @Test
    void withoutAProductionVersionRegressionIsNotedNotFailed() {
        QualityGate gate =
                QualityGate.newBuilder()
                        .putMaxRegression("accuracy", 0.01)
                        .setReference(GateReference.GATE_REFERENCE_PRODUCTION)
                        .build();
        GateVerdict v = QualityGateCheck.check(gate, TUNED, Optional.empty());
        assertThat(v.passed()).isTrue();
        assertThat(v.notes())
                .containsExactly(
                        "regression of accuracy not checked: there is no production version to compare"
                                + " with");
    }

    @Test
    void aMetricTheGateNamesButNobodyComputedFailsWithTheAvailableOnes() {
        QualityGate gate = QualityGate.newBuilder().putMinMetrics("f2", 0.5).build();
        assertThat(QualityGateCheck.check(gate, TUNED, Optional.empty()).reasons())
                .containsExactly(
                        "metric 'f2' named in the gate was not computed; available: accuracy, ece, macro_f1");
    }
}
