package io.tuneline.engine.method;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.Device;
import org.junit.jupiter.api.Test;

/** The job's precision choice as the engine resolves it (no libtorch needed). */
class PrecisionTest {

    @Test
    void autoIsFp32OnACpuAndNamedChoicesAreTakenAsGiven() {
        assertThat(Precision.of("", Device.cpu())).isEqualTo(Precision.FP32);
        assertThat(Precision.of("auto", Device.cpu())).isEqualTo(Precision.FP32);
        assertThat(Precision.of("bf16", Device.cpu())).isEqualTo(Precision.BF16);
        assertThat(Precision.of(" BF16", Device.cpu())).isEqualTo(Precision.BF16);
        assertThat(Precision.of("fp32", Device.cpu())).isEqualTo(Precision.FP32);
        assertThat(Precision.of("fp16", Device.cpu())).isEqualTo(Precision.FP16);
        assertThat(Precision.of("FP16 ", Device.cpu())).isEqualTo(Precision.FP16);
        assertThat(Precision.supportsBf16(Device.cpu())).isFalse();
    }

    @Test
    void autoNeverPicksFp16AndOnlyFp16ScalesItsLoss() {
        // A GPU without a CUDA runtime to ask falls back to fp32, never to fp16.
        assertThat(Precision.of("auto", Device.gpu())).isIn(Precision.FP32, Precision.BF16);
        assertThat(Precision.FP16.needsLossScaling()).isTrue();
        assertThat(Precision.BF16.needsLossScaling()).isFalse();
        assertThat(Precision.FP32.needsLossScaling()).isFalse();
        assertThat(Precision.FP16.label()).isEqualTo("fp16");
    }

    @Test
    void anUnknownChoiceFailsNamingTheField() {
        assertThatThrownBy(() -> Precision.of("fp8", Device.cpu()))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage(
                        "hyperparameters.precision: \"fp8\" is not one of auto, fp32, bf16, fp16");
    }
}
