package io.tuneline.engine.quant;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.ndarray.NDManager;
import io.tuneline.engine.bench.Nf4Footprint;
import io.tuneline.engine.bench.Nf4Footprint.Linear;
import io.tuneline.engine.runtime.EngineRuntime;
import java.util.List;
import org.junit.jupiter.api.Test;

class Nf4FootprintTest {

    @Test
    void llamaLinearWeightsTakeAtMostFifteenHundredthsOfFp32() {
        List<Linear> set = Nf4Footprint.llama32OneB();
        Nf4Footprint.Sizes s = Nf4Footprint.sizes(set, Nf4.DEFAULT_BLOCKSIZE);
        // 16 layers x (2 x 2048^2 + 2 x 512 x 2048 + 3 x 8192 x 2048).
        assertThat(s.parameters()).isEqualTo(973_078_528L);
        // 4 bits + 32 bits per 64 values = 4.5 bits: 0.1406 of fp32.
        assertThat(s.nf4OverFp32()).isCloseTo(4.5 / 32, org.assertj.core.data.Offset.offset(1e-6));
        // 4 bits + 8 bits per 64 + 32 bits per 64 x 256 (+ an offset per tensor): 0.1290.
        assertThat(s.nf4DoubleOverFp32()).isLessThan(0.1290).isGreaterThan(0.1289);
        assertThat(s.nf4OverFp32()).isLessThanOrEqualTo(0.15);
    }

    @Test
    void theComputedSizeIsWhatAQuantizedLayerHolds() {
        Linear kProj = Nf4Footprint.llama32OneB().get(1);
        for (boolean dq : new boolean[] {false, true}) {
            Nf4Weight w = Nf4Footprint.randomWeight(kProj, dq, 3);
            assertThat(w.residentBytes())
                    .isEqualTo(
                            Nf4Weight.residentBytes(kProj.elements(), Nf4.DEFAULT_BLOCKSIZE, dq));
            try (NDManager manager =
                    NDManager.newBaseManager(
                            EngineRuntime.start(2).device(), EngineRuntime.ENGINE)) {
                assertThat(Nf4Footprint.dequantizeMillis(w, manager, 1)).isPositive();
            }
        }
    }
}
