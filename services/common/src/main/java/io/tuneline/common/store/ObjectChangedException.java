package io.tuneline.common.store;

/**
 * A read or copy made on the condition that the object still had the ETag seen before (HTTP 412,
 * PreconditionFailed) found it replaced in between.
 */
public class ObjectChangedException extends ArtifactStoreException {
    public ObjectChangedException(String message, Throwable cause) {
        super(message, cause);
    }
}
