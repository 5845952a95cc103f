package io.tuneline.engine.nn;

import ai.djl.ndarray.NDArray;

/** Activations DJL lacks. */
public final class Activations {
    private static final double SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

    private Activations() {}

    /**
     * GELU "new" ({@code gelu_new} in transformers), the tanh approximation GPT-2 was trained with
     * (Hendrycks & Gimpel 2016): {@code 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))}.
     */
    public static NDArray geluNew(NDArray x) {
        NDArray inner =
                Scalars.mul(x.add(Scalars.mul(Scalars.pow(x, 3), 0.044715)), SQRT_2_OVER_PI);
        return Scalars.mul(x, 0.5).mul(inner.tanh().add(1f));
    }
}
