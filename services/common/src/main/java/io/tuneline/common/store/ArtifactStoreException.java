package io.tuneline.common.store;

/** The object store failed or refused an operation; the message names the object and why. */
public class ArtifactStoreException extends RuntimeException {
    public ArtifactStoreException(String message, Throwable cause) {
        super(message, cause);
    }
}
