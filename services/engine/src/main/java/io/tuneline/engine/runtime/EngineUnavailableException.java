package io.tuneline.engine.runtime;

/** The native engine could not be loaded; the message says what to check. */
public class EngineUnavailableException extends RuntimeException {
    public EngineUnavailableException(String message, Throwable cause) {
        super(message, cause);
    }
}
