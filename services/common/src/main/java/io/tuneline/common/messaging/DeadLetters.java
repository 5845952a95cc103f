package io.tuneline.common.messaging;

/**
 * The dead-letter convention. Every incoming channel declares {@code
 * failure-strategy=dead-letter-queue} and {@code dead-letter-queue.topic=<topic>.dlq}; SmallRye
 * then forwards a record whose processing threw, unchanged (key, value, original headers), with
 * these headers added. {@code dead-letter-reason} is the exception message, which for an invalid
 * record names the position and the problem.
 */
public final class DeadLetters {
    public static final String REASON = "dead-letter-reason";
    public static final String CAUSE = "dead-letter-cause";
    public static final String TOPIC = "dead-letter-topic";
    public static final String PARTITION = "dead-letter-partition";
    public static final String OFFSET = "dead-letter-offset";

    private DeadLetters() {}
}
