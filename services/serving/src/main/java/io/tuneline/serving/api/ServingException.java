package io.tuneline.serving.api;

/**
 * A request the service cannot answer, with the HTTP status and title it is answered with (RFC
 * 9457) and a message that names the problem and what to do.
 */
public class ServingException extends RuntimeException {
    private final int status;
    private final String title;
    private int retryAfterSeconds;

    public ServingException(int status, String title, String message) {
        super(message);
        this.status = status;
        this.title = title;
    }

    public ServingException(int status, String title, String message, Throwable cause) {
        super(message, cause);
        this.status = status;
        this.title = title;
    }

    public int status() {
        return status;
    }

    public String title() {
        return title;
    }

    /** Seconds a client should wait before retrying (the {@code Retry-After} header); 0: none. */
    public int retryAfterSeconds() {
        return retryAfterSeconds;
    }

    /** Answers with {@code Retry-After: seconds} (RFC 9110), for a refusal that passes. */
    public ServingException retryAfter(int seconds) {
        this.retryAfterSeconds = seconds;
        return this;
    }

    /** A malformed or out-of-limits request: 400. */
    public static ServingException badRequest(String message) {
        return new ServingException(400, "Invalid request", message);
    }

    /** A request over a configured limit: 413. */
    public static ServingException tooLarge(String message) {
        return new ServingException(413, "Request too large", message);
    }

    /** No such model or version in the registry: 404. */
    public static ServingException unknownModel(String message) {
        return new ServingException(404, "Unknown model", message);
    }
}
