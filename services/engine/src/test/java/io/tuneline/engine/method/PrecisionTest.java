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
        assertThat(Precision.supportsBf16(Device.cpu())).isFalse();
    }

    @Test
    void anUnknownChoiceFailsNamingTheField() {
        assertThatThrownBy(() -> Precision.of("fp16", Device.cpu()))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("hyperparameters.precision: \"fp16\" is not one of auto, fp32, bf16");
    }
}
