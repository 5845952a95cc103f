package io.tuneline.evaluation.metrics;

/** A metric with its bootstrap 95% confidence interval. */
public record Estimate(double value, double lower, double upper) {
    public static Estimate exact(double value) {
        return new Estimate(value, value, value);
    }
}
