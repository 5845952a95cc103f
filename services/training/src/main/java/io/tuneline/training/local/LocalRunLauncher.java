package io.tuneline.training.local;

import io.tuneline.training.run.RunKey;
import io.tuneline.training.run.RunLauncher;
import io.tuneline.training.run.RunRequest;
import io.tuneline.training.run.RunState;
import io.tuneline.training.worker.TrainingWorker;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Comparator;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.PriorityQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BiConsumer;
import org.jboss.logging.Logger;

/**
 * Runs each training attempt in its own worker process on this machine, at most {@code
 * maxConcurrentRuns} at once, the others waiting by priority and then arrival. A worker that
 * crashes takes only its own run down; the controller sees its exit code and last log lines.
 */
public final class LocalRunLauncher implements RunLauncher {
    private static final Logger LOG = Logger.getLogger(LocalRunLauncher.class);
    private static final int TAIL_LINES = 20;

    /**
     * The file a local worker writes its failure's cause to ({@link
     * TrainingWorker#TERMINATION_LOG}).
     */
    private static final String CAUSE_FILE = "failure-cause.txt";

    private final LocalExecutorSettings settings;
    private final AtomicLong arrivals = new AtomicLong();
    private final PriorityQueue<Queued> queue =
            new PriorityQueue<>(
                    Comparator.comparingInt((Queued q) -> -q.run().priority())
                            .thenComparingLong(Queued::arrival));
    private final Map<String, Process> running = new HashMap<>();
    private final Map<String, RunState> finished = new HashMap<>();
    private final java.util.Set<String> cancelling = new java.util.HashSet<>();
    private final List<BiConsumer<RunKey, RunState>> listeners = new CopyOnWriteArrayList<>();
    private final Map<String, RunKey> keys = new java.util.concurrent.ConcurrentHashMap<>();
    private boolean closed;

    private record Queued(RunRequest run, long arrival) {}

    public LocalRunLauncher(LocalExecutorSettings settings) {
        this.settings = settings;
    }

    @Override
    public void start(RunRequest run) {
        synchronized (this) {
            String id = run.runId();
            if (closed) {
                throw new IllegalStateException("the local executor is shut down");
            }
            if (running.containsKey(id)
                    || finished.containsKey(id)
                    || queue.stream().anyMatch(q -> q.run().runId().equals(id))) {
                LOG.infof("run %s is already known; not starting another worker", id);
                return;
            }
            keys.put(id, run.key());
            queue.add(new Queued(run, arrivals.incrementAndGet()));
        }
        publish(run.runId(), new RunState.Pending("queued"));
        drain();
    }

    /** Starts queued runs while slots are free. */
    private void drain() {
        while (true) {
            RunRequest next;
            synchronized (this) {
                if (closed || running.size() >= settings.maxConcurrentRuns() || queue.isEmpty()) {
                    return;
                }
                next = queue.poll().run();
            }
            launch(next);
        }
    }

    private void launch(RunRequest run) {
        String id = run.runId();
        Path dir = settings.workDir().resolve(id);
        Path log = dir.resolve("worker.log");
        Process process;
        try {
            Files.createDirectories(dir);
            ProcessBuilder builder =
                    new ProcessBuilder(settings.workerCommand())
                            .directory(dir.toFile())
                            .redirectErrorStream(true)
                            .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
            builder.environment().putAll(settings.environment());
            builder.environment().put("TUNELINE_JOB_ID", run.jobId());
            builder.environment().put("TUNELINE_RUN_ID", id);
            builder.environment().put("TUNELINE_ATTEMPT", Integer.toString(run.attempt()));
            builder.environment().put("TUNELINE_GPUS", Integer.toString(run.gpus()));
            Files.deleteIfExists(dir.resolve(CAUSE_FILE));
            builder.environment()
                    .put(TrainingWorker.TERMINATION_LOG, dir.resolve(CAUSE_FILE).toString());
            builder.environment()
                    .put(
                            TrainingWorker.CONTROLLER_PID,
                            Long.toString(ProcessHandle.current().pid()));
            process = builder.start();
        } catch (IOException e) {
            finish(
                    id,
                    new RunState.Failed(
                            "cannot start the worker process ("
                                    + String.join(" ", settings.workerCommand())
                                    + "): "
                                    + e.getMessage(),
                            false));
            return;
        }
        synchronized (this) {
            running.put(id, process);
        }
        LOG.infof("run %s started as process %d (log %s)", id, process.pid(), log);
        publish(id, new RunState.Running());
        process.onExit().thenAccept(p -> exited(run, p, log));
    }

    private void exited(RunRequest run, Process process, Path log) {
        String id = run.runId();
        boolean wasCancelled;
        synchronized (this) {
            running.remove(id);
            wasCancelled = cancelling.remove(id);
        }
        int code = process.exitValue();
        RunState state;
        if (wasCancelled) {
            state = new RunState.Failed("cancelled", false);
        } else if (code == 0) {
            state = new RunState.Succeeded();
        } else if (code == TrainingWorker.EXIT_STOPPED) {
            // SIGTERM from outside (not a cancellation): the worker stored a checkpoint first.
            state =
                    new RunState.Preempted(
                            "the worker process was stopped (SIGTERM) after storing a checkpoint;"
                                    + " its log: "
                                    + log);
        } else {
            boolean retriable = code != TrainingWorker.EXIT_JOB_CANNOT_SUCCEED;
            String exit =
                    retriable
                            ? "the worker process exited with code " + code + describeSignal(code)
                            : "the job cannot be trained as given (another attempt would fail the"
                                    + " same way)";
            // The worker's own words first when it left them; the log's tail only when it could
            // not (a native crash, a kill), since its last lines are then the only clue.
            Optional<String> cause = cause(log.resolveSibling(CAUSE_FILE));
            state =
                    new RunState.Failed(
                            cause.map(c -> c + " (" + exit + "; the worker's log: " + log + ")")
                                    .orElseGet(
                                            () ->
                                                    exit
                                                            + "; last lines of "
                                                            + log
                                                            + ":\n"
                                                            + tail(log)),
                            retriable);
        }
        finish(id, state);
        drain();
    }

    private void finish(String id, RunState state) {
        synchronized (this) {
            finished.put(id, state);
        }
        LOG.infof("run %s ended: %s", id, state);
        publish(id, state);
    }

    /** Exit codes above 128 mean the process was killed by signal (code - 128). */
    private static String describeSignal(int code) {
        return switch (code) {
            case 137 -> " (killed: SIGKILL, e.g. out of memory or kill -9)";
            case 143 -> " (terminated: SIGTERM)";
            case 134 -> " (aborted: SIGABRT, e.g. a native crash)";
            default -> code > 128 ? " (killed by signal " + (code - 128) + ")" : "";
        };
    }

    private static Optional<String> cause(Path file) {
        try {
            return Files.exists(file)
                    ? Optional.of(Files.readString(file, StandardCharsets.UTF_8).strip())
                            .filter(c -> !c.isEmpty())
                    : Optional.empty();
        } catch (IOException e) {
            return Optional.empty();
        }
    }

    private static String tail(Path log) {
        try {
            Deque<String> last = new ArrayDeque<>();
            for (String line : Files.readAllLines(log, StandardCharsets.UTF_8)) {
                if (last.size() == TAIL_LINES) {
                    last.removeFirst();
                }
                last.addLast(line);
            }
            return String.join("\n", last);
        } catch (IOException e) {
            return "(log unreadable: " + e.getMessage() + ")";
        }
    }

    @Override
    public synchronized RunState state(RunRequest run) {
        String id = run.runId();
        if (running.containsKey(id)) {
            return new RunState.Running();
        }
        if (finished.containsKey(id)) {
            return finished.get(id);
        }
        long ahead =
                queue.stream()
                        .filter(q -> q.run().runId().equals(id))
                        .findFirst()
                        .map(
                                q ->
                                        queue.stream()
                                                .filter(o -> queue.comparator().compare(o, q) < 0)
                                                .count())
                        .orElse(-1L);
        if (ahead >= 0) {
            return new RunState.Pending(
                    "queued; " + ahead + " run(s) ahead, " + running.size() + " running");
        }
        return new RunState.Unknown();
    }

    /**
     * A queued run leaves the queue; a running worker gets SIGTERM so it can stop between two steps
     * and keep its last checkpoint, and is killed if it has not exited after the grace time.
     */
    @Override
    public boolean cancel(RunRequest run) {
        String id = run.runId();
        Process process;
        synchronized (this) {
            boolean wasQueued = queue.removeIf(q -> q.run().runId().equals(id));
            if (wasQueued) {
                finished.put(id, new RunState.Failed("cancelled", false));
            }
            process = running.get(id);
            if (process == null) {
                if (wasQueued) {
                    publish(id, new RunState.Failed("cancelled", false));
                }
                return wasQueued;
            }
            cancelling.add(id);
        }
        process.destroy();
        try {
            if (!process.waitFor(settings.stopGrace().toMillis(), TimeUnit.MILLISECONDS)) {
                LOG.warnf(
                        "run %s did not stop within %s after SIGTERM; killing it",
                        id, settings.stopGrace());
                process.destroyForcibly();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            process.destroyForcibly();
        }
        return true;
    }

    @Override
    public AutoCloseable watch(BiConsumer<RunKey, RunState> onChange) {
        listeners.add(onChange);
        return () -> listeners.remove(onChange);
    }

    private void publish(String runId, RunState state) {
        RunKey key = keys.get(runId);
        for (BiConsumer<RunKey, RunState> listener : listeners) {
            try {
                listener.accept(key, state);
            } catch (RuntimeException e) {
                LOG.errorf(e, "listener failed on %s -> %s", runId, state);
            }
        }
    }

    /** Stops every worker (SIGTERM, then SIGKILL after the grace time); queued runs stay unrun. */
    @Override
    public void close() {
        List<Process> processes;
        synchronized (this) {
            closed = true;
            processes = List.copyOf(running.values());
        }
        processes.forEach(Process::destroy);
        for (Process p : processes) {
            try {
                if (!p.waitFor(settings.stopGrace().toMillis(), TimeUnit.MILLISECONDS)) {
                    p.destroyForcibly();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                p.destroyForcibly();
            }
        }
    }
}
