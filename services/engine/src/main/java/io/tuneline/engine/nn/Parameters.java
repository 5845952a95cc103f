package io.tuneline.engine.nn;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.training.initializer.Initializer;

/** Builds the parameters of the engine's blocks. */
final class Parameters {
    private Parameters() {}

    static Parameter of(String name, Parameter.Type type, Shape shape, Initializer initializer) {
        return Parameter.builder()
                .setName(name)
                .setType(type)
                .optShape(shape)
                .optInitializer(initializer)
                .build();
    }
}
