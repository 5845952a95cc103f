package io.tuneline.engine.catalog;

/** A base model reference the catalogue cannot resolve; the message lists what it can. */
public class UnknownModelException extends RuntimeException {
    public UnknownModelException(String message) {
        super(message);
    }

    public UnknownModelException(String message, Throwable cause) {
        super(message, cause);
    }
}
