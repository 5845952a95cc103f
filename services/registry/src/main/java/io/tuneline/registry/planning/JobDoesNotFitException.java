package io.tuneline.registry.planning;

import io.tuneline.engine.plan.Estimate;
import java.util.List;

/**
 * A job whose estimated peak memory exceeds its device's: refused at submission (HTTP 422) with the
 * numbers and concrete ways out, each a change the user can make to the job file.
 */
public final class JobDoesNotFitException extends RuntimeException {
    private final transient Estimate estimate;
    private final List<String> waysOut;

    public JobDoesNotFitException(String message, Estimate estimate, List<String> waysOut) {
        super(message);
        this.estimate = estimate;
        this.waysOut = List.copyOf(waysOut);
    }

    public Estimate estimate() {
        return estimate;
    }

    public List<String> waysOut() {
        return waysOut;
    }
}
