package io.tuneline.training.local;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.tuneline.training.run.RunRequest;
import io.tuneline.training.run.RunState;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LocalRunLauncherTest {
    private static final Duration WAIT = Duration.ofSeconds(30);

    @TempDir Path work;
    private LocalRunLauncher launcher;
    private final List<String> events = new CopyOnWriteArrayList<>();

    private LocalRunLauncher launcher(int slots, Duration grace) {
        String java = ProcessHandle.current().info().command().orElse("java");
        launcher =
                new LocalRunLauncher(
                        new LocalExecutorSettings(
                                List.of(
                                        java,
                                        "-cp",
                                        System.getProperty("java.class.path"),
                                        FakeWorker.class.getName()),
                                slots,
                                work,
                                grace,
                                Map.of()));
        launcher.watch((run, state) -> events.add(run + " " + state.getClass().getSimpleName()));
        return launcher;
    }

    @AfterEach
    void stop() {
        if (launcher != null) {
            launcher.close();
        }
    }

    private static RunRequest run(String jobId, int priority) {
        return new RunRequest(
                jobId, 1, 0, Optional.empty(), Optional.empty(), Map.of(), 0, priority);
    }

    @Test
    void aWorkerThatFinishesSucceedsAndGetsItsIdentity() throws Exception {
        launcher(1, Duration.ofSeconds(5)).start(run("ok-1", 0));
        await().atMost(WAIT)
                .until(() -> launcher.state(run("ok-1", 0)) instanceof RunState.Succeeded);
        assertThat(Files.readString(work.resolve("ok-1-a1/worker.log")))
                .contains("worker for ok-1 run ok-1-a1")
                .contains("step 3");
        assertThat(events)
                .containsSubsequence("ok-1-a1 Pending", "ok-1-a1 Running", "ok-1-a1 Succeeded");
    }

    @Test
    void aCrashedWorkerFailsItsRunWithTheExitCodeAndLastLines() {
        launcher(1, Duration.ofSeconds(5)).start(run("crash-1", 0));
        await().atMost(WAIT)
                .until(() -> launcher.state(run("crash-1", 0)) instanceof RunState.Failed);
        RunState.Failed failed = (RunState.Failed) launcher.state(run("crash-1", 0));
        assertThat(failed.reason())
                .startsWith("the worker process exited with code 1")
                .contains("CUDA error: an illegal memory access");
        assertThat(failed.retriable()).isTrue();
    }

    @Test
    void aJobThatCannotSucceedIsNotRetried() {
        launcher(1, Duration.ofSeconds(5)).start(run("diverge-1", 0));
        await().atMost(WAIT)
                .until(() -> launcher.state(run("diverge-1", 0)) instanceof RunState.Failed);
        RunState.Failed failed = (RunState.Failed) launcher.state(run("diverge-1", 0));
        // The cause first, without the native warning in front or the stack trace after.
        assertThat(failed.reason())
                .startsWith("training diverged at step 7 (the job cannot be trained as given")
                .contains("worker.log")
                .doesNotContain("NNPACK", "\tat ");
        assertThat(failed.retriable()).isFalse();
    }

    @Test
    void aWorkerKilledWithSigkillIsReportedAsKilledAndRetriable() throws Exception {
        launcher(1, Duration.ofSeconds(5)).start(run("hang-kill", 0));
        Path running = work.resolve("hang-kill-a1/running");
        await().atMost(WAIT).until(() -> Files.exists(running));
        long pid = Long.parseLong(Files.readString(work.resolve("hang-kill-a1/pid")));
        ProcessHandle.of(pid).orElseThrow().destroyForcibly();

        await().atMost(WAIT)
                .until(() -> launcher.state(run("hang-kill", 0)) instanceof RunState.Failed);
        RunState.Failed failed = (RunState.Failed) launcher.state(run("hang-kill", 0));
        assertThat(failed.reason()).contains("code 137 (killed: SIGKILL");
        assertThat(failed.retriable()).isTrue();
    }

    @Test
    void runsWaitForASlotAndStartByPriorityThenArrival() {
        launcher(1, Duration.ofSeconds(5));
        launcher.start(run("hang-first", 0));
        await().atMost(WAIT).until(() -> Files.exists(work.resolve("hang-first-a1/running")));
        launcher.start(run("ok-low", 0));
        launcher.start(run("ok-high", 5));
        launcher.start(run("ok-low-later", 0));

        assertThat(launcher.state(run("ok-high", 5)))
                .isEqualTo(new RunState.Pending("queued; 0 run(s) ahead, 1 running"));
        assertThat(launcher.state(run("ok-low-later", 0)))
                .isEqualTo(new RunState.Pending("queued; 2 run(s) ahead, 1 running"));

        launcher.cancel(run("hang-first", 0));
        await().atMost(WAIT)
                .until(() -> launcher.state(run("ok-low-later", 0)) instanceof RunState.Succeeded);
        assertThat(events.stream().filter(e -> e.endsWith("Running")).toList())
                .containsExactly(
                        "hang-first-a1 Running",
                        "ok-high-a1 Running",
                        "ok-low-a1 Running",
                        "ok-low-later-a1 Running");
    }

    @Test
    void cancellingARunningWorkerLetsItStopBetweenStepsAndKeepItsCheckpoint() throws Exception {
        launcher(1, Duration.ofSeconds(10)).start(run("hang-cancel", 0));
        await().atMost(WAIT).until(() -> Files.exists(work.resolve("hang-cancel-a1/running")));

        assertThat(launcher.cancel(run("hang-cancel", 0))).isTrue();

        await().atMost(WAIT)
                .until(() -> launcher.state(run("hang-cancel", 0)) instanceof RunState.Failed);
        assertThat(launcher.state(run("hang-cancel", 0)))
                .isEqualTo(new RunState.Failed("cancelled", false));
        assertThat(Files.readString(work.resolve("hang-cancel-a1/worker.log")))
                .contains("stopping between steps; checkpoint kept");
    }

    @Test
    void aWorkerThatIgnoresTheStopIsKilledAfterTheGraceTime() throws Exception {
        launcher(1, Duration.ofMillis(500)).start(run("stubborn-1", 0));
        await().atMost(WAIT).until(() -> Files.exists(work.resolve("stubborn-1-a1/running")));
        long pid = Long.parseLong(Files.readString(work.resolve("stubborn-1-a1/pid")));

        launcher.cancel(run("stubborn-1", 0));

        await().atMost(WAIT)
                .until(() -> !ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false));
        await().atMost(WAIT)
                .until(() -> launcher.state(run("stubborn-1", 0)) instanceof RunState.Failed);
    }

    @Test
    void aQueuedRunCanBeCancelledAndAStartedRunIsNotStartedTwice() {
        launcher(1, Duration.ofSeconds(5));
        launcher.start(run("hang-busy", 0));
        launcher.start(run("hang-busy", 0));
        launcher.start(run("ok-queued", 0));
        assertThat(launcher.cancel(run("ok-queued", 0))).isTrue();
        assertThat(launcher.state(run("ok-queued", 0)))
                .isEqualTo(new RunState.Failed("cancelled", false));
        assertThat(events.stream().filter(e -> e.startsWith("hang-busy") && e.endsWith("Running")))
                .hasSize(1);
        assertThat(launcher.state(run("never-started", 0))).isEqualTo(new RunState.Unknown());
    }
}
