package io.tuneline.evaluation.run;

/** The evaluation of a job cannot be done; the message says why and what to do. */
public class EvaluationFailedException extends RuntimeException {
    public EvaluationFailedException(String message) {
        super(message);
    }

    public EvaluationFailedException(String message, Throwable cause) {
        super(message, cause);
    }
}
