package io.tuneline.common.store;

import java.io.IOException;

/** The bytes read from the store do not have the sha256 the event promised. */
public class ChecksumMismatchException extends IOException {
    public ChecksumMismatchException(S3Uri uri, String expected, String actual) {
        super(
                uri
                        + ": sha256 is "
                        + actual
                        + " but "
                        + expected
                        + " was expected; the object was changed or corrupted after it was"
                        + " written");
    }
}
