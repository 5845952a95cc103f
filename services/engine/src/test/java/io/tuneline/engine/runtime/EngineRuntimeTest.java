package io.tuneline.engine.runtime;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import org.junit.jupiter.api.Test;

class EngineRuntimeTest {

    @Test
    void libtorchLoadsOfflineFromTheJarAndComputes() {
        EngineRuntime runtime = EngineRuntime.start(2);
        assertThat(runtime.version()).startsWith("2.7.1");
        assertThat(runtime.device()).isEqualTo(Device.cpu()); // no GPU on the build machines
        try (NDManager manager = NDManager.newBaseManager(runtime.device(), EngineRuntime.ENGINE)) {
            NDArray a =
                    manager.create(new float[] {1, 2, 3, 4}, new ai.djl.ndarray.types.Shape(2, 2));
            NDArray product = a.matMul(a);
            // [[1,2],[3,4]]^2 = [[7,10],[15,22]]
            assertThat(product.toFloatArray()).containsExactly(7f, 10f, 15f, 22f);
        }
    }

    @Test
    void aMachineWithGpusTrainsOnTheFirstOne() {
        assertThat(EngineRuntime.chooseDevice(0)).isEqualTo(Device.cpu());
        assertThat(EngineRuntime.chooseDevice(4)).isEqualTo(Device.gpu(0));
    }

    @Test
    void aRunGivenSeveralGpusTrainsOnThatManyOfTheVisibleOnesAndOnACpuOnItAlone() {
        assertThat(EngineRuntime.chooseDevices(4, 2)).containsExactly(Device.gpu(0), Device.gpu(1));
        assertThat(EngineRuntime.chooseDevices(2, 8)).containsExactly(Device.gpu(0), Device.gpu(1));
        assertThat(EngineRuntime.chooseDevices(4, 0)).containsExactly(Device.gpu(0));
        assertThat(EngineRuntime.chooseDevices(0, 4)).containsExactly(Device.cpu());
    }
}
