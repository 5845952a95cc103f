package io.tuneline.training.local;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

/**
 * How runs execute on this machine.
 *
 * @param workerCommand the command that starts a worker process; the run's identity is passed in
 *     its environment ({@code TUNELINE_JOB_ID}, {@code TUNELINE_RUN_ID}, {@code TUNELINE_ATTEMPT})
 * @param maxConcurrentRuns runs at once; the rest wait in the queue (default 1: the engine records
 *     gradients for one training per process and two would share the same cores)
 * @param workDir each run gets {@code <workDir>/<runId>/} as its working directory and log
 * @param stopGrace how long a cancelled worker may take to stop between two steps and save a
 *     checkpoint before it is killed
 */
public record LocalExecutorSettings(
        List<String> workerCommand,
        int maxConcurrentRuns,
        Path workDir,
        Duration stopGrace,
        Map<String, String> environment) {

    public LocalExecutorSettings {
        if (workerCommand.isEmpty()) {
            throw new IllegalArgumentException("the worker command is empty");
        }
        if (maxConcurrentRuns < 1) {
            throw new IllegalArgumentException(
                    "max concurrent runs must be at least 1, was " + maxConcurrentRuns);
        }
        workerCommand = List.copyOf(workerCommand);
        environment = Map.copyOf(environment);
    }
}
