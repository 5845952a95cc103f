package io.tuneline.engine.quant;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.runtime.EngineRuntime;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class Nf4DeviceTest {
    /**
     * A weight held natively dequantizes to exactly {@code code[nibble] * scale} computed on the
     * heap, as often as it is asked, without leaving anything behind in its own manager (what the
     * forward pass of every QLoRA layer does each step), and reads back as the weight it was made
     * from. Shapes with a short last block and an odd count of values, with and without double
     * quantization (whose 300 blocks leave a short nested block too).
     */
    @ParameterizedTest
    @CsvSource({"3,7,64,false", "3,7,64,true", "150,128,64,true", "40,65,32,false"})
    void dequantizesExactlyAndRepeatedlyWithoutGrowingItsManager(
            int rows, int cols, int blocksize, boolean doubleQuant) {
        Random r = new Random(rows * 31L + cols);
        float[] values = new float[rows * cols];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) r.nextGaussian() * (i % 97 == 0 ? 3f : 0.05f);
        }
        long[] shape = {rows, cols};
        Nf4Weight w = Nf4.quantize(values, shape, Dtype.BF16, blocksize, doubleQuant);
        float[] scales = w.absmax().values();
        try (NDManager model =
                        NDManager.newBaseManager(
                                EngineRuntime.start(2).device(), EngineRuntime.ENGINE);
                Nf4Device resident = Nf4Device.of(w, model)) {
            int held = model.getManagedArrays().size();
            for (int call = 0; call < 3; call++) {
                try (NDManager step = model.newSubManager()) {
                    NDArray dense = resident.dequantize(step);
                    assertThat(dense.getShape().getShape()).containsExactly(shape);
                    float[] got = dense.toFloatArray();
                    for (int i = 0; i < got.length; i++) {
                        assertThat(got[i])
                                .as("element %d, call %d", i, call)
                                .isEqualTo(Nf4.CODE[w.code(i)] * scales[i / blocksize]);
                    }
                }
                assertThat(model.getManagedArrays())
                        .as("arrays left in the resident manager after call %d", call)
                        .hasSize(held);
            }
            Nf4Weight back = resident.toWeight();
            assertThat(back.packed()).isEqualTo(w.packed());
            assertThat(back.absmax()).usingRecursiveComparison().isEqualTo(w.absmax());
            assertThat(back.shape()).isEqualTo(shape);
            assertThat(back.dtype()).isEqualTo(Dtype.BF16);
            assertThat(resident.residentBytes()).isEqualTo(w.residentBytes());
            assertThat(resident.doubleQuantized()).isEqualTo(doubleQuant);
        }
    }
}
