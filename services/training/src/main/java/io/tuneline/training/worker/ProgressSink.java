package io.tuneline.training.worker;

import io.tuneline.proto.v1.TrainingProgress;

/** Where a worker's progress events go: Kafka in production, a list in tests. */
@FunctionalInterface
public interface ProgressSink {
    void publish(TrainingProgress progress);
}
