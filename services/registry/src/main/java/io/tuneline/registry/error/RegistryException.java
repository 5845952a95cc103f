package io.tuneline.registry.error;

/**
 * A request the registry refuses, by kind; the API turns each into an RFC 9457 problem with the
 * matching status. Messages name what is wrong and what to do.
 */
public abstract sealed class RegistryException extends RuntimeException {
    protected RegistryException(String message) {
        super(message);
    }

    public abstract int status();

    public abstract String title();

    /** Something named in the request does not exist. */
    public static final class NotFound extends RegistryException {
        public NotFound(String message) {
            super(message);
        }

        @Override
        public int status() {
            return 404;
        }

        @Override
        public String title() {
            return "Not found";
        }
    }

    /** The request is well-formed but breaks a rule of the current state. */
    public static final class Conflict extends RegistryException {
        public Conflict(String message) {
            super(message);
        }

        @Override
        public int status() {
            return 409;
        }

        @Override
        public String title() {
            return "Conflict";
        }
    }

    /** The request itself is wrong. */
    public static final class BadRequest extends RegistryException {
        public BadRequest(String message) {
            super(message);
        }

        @Override
        public int status() {
            return 400;
        }

        @Override
        public String title() {
            return "Bad request";
        }
    }

    /** The request is larger than the platform can carry. */
    public static final class TooLarge extends RegistryException {
        public TooLarge(String message) {
            super(message);
        }

        @Override
        public int status() {
            return 413;
        }

        @Override
        public String title() {
            return "Content too large";
        }
    }
}
