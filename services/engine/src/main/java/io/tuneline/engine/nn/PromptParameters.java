package io.tuneline.engine.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;

/** Parameters of the virtual-token methods, made from arrays their method initialised. */
final class PromptParameters {
    private PromptParameters() {}

    static Parameter of(String name, Parameter.Type type, NDArray initial) {
        Parameter p = Parameter.builder().setName(name).setType(type).build();
        p.setArray(initial);
        return p;
    }

    /**
     * PyTorch's default initialisation of {@code nn.Linear} and {@code nn.LSTM} ({@code
     * kaiming_uniform_(a=sqrt(5))} for a Linear weight, which is U(-1/sqrt(fan_in),
     * 1/sqrt(fan_in)), the same bound for its bias; {@code LSTM.reset_parameters}:
     * U(-1/sqrt(hidden), 1/sqrt(hidden)) for every weight and bias), drawn from the engine's seeded
     * generator.
     */
    static NDArray uniform(NDManager manager, double bound, Shape shape) {
        return manager.randomUniform((float) -bound, (float) bound, shape, DataType.FLOAT32);
    }
}
