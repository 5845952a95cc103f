package io.tuneline.engine.io.safetensors;

import java.nio.file.Path;

/**
 * A safetensors file that breaks the format or does not fit the model; the message names the file
 * and the tensor.
 */
public class SafetensorsException extends IllegalArgumentException {
    public SafetensorsException(Path file, String problem) {
        super(file + ": " + problem);
    }

    public SafetensorsException(Path file, String problem, Throwable cause) {
        super(file + ": " + problem, cause);
    }
}
