package io.tuneline.training.local;

import io.tuneline.training.worker.TrainingWorker;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A stand-in worker process for the executor's tests: what it does depends on the job id's prefix,
 * so each test can choose a behaviour (succeed, crash, run until stopped, ignore SIGTERM).
 */
public final class FakeWorker {
    private FakeWorker() {}

    public static void main(String[] args) throws Exception {
        String jobId = System.getenv("TUNELINE_JOB_ID");
        Files.writeString(Path.of("pid"), Long.toString(ProcessHandle.current().pid()));
        System.out.println("worker for " + jobId + " run " + System.getenv("TUNELINE_RUN_ID"));
        int attempt = Integer.parseInt(System.getenv("TUNELINE_ATTEMPT"));
        if (jobId.startsWith("preempt-")
                && (jobId.startsWith("preempt-forever-") || attempt <= 3)) {
            // As the real worker after SIGTERM: the step ends, the checkpoint is stored, 143.
            System.out.println("step 1");
            System.out.println("stopped on request after step 1; its checkpoint is saved");
            System.out.flush();
            Runtime.getRuntime().halt(TrainingWorker.EXIT_STOPPED);
        }
        boolean failingMethod = jobId.startsWith("cmpfail-") && jobId.endsWith(".lora");
        if (jobId.startsWith("ok-")
                || (jobId.startsWith("flaky-") && attempt > 1)
                || jobId.startsWith("preempt-")) {
            for (int step = 1; step <= 3; step++) {
                System.out.println("step " + step);
            }
            if (System.getenv("S3_ENDPOINT") != null) {
                PlatformSide.reportProgressAndResult(jobId, attempt);
            }
            return;
        }
        if (jobId.startsWith("flaky-")) {
            System.out.println("step 1");
            System.out.println("the node went away");
            System.out.flush();
            Runtime.getRuntime().halt(137);
        }
        if (jobId.startsWith("crash-")) {
            System.out.println("step 1");
            System.out.println("CUDA error: an illegal memory access was encountered");
            System.out.flush();
            Runtime.getRuntime().halt(1);
        }
        if (jobId.startsWith("diverge-") || failingMethod) {
            System.out.println("step 1");
            // The native library's noise and the stack trace go to the log; the cause, alone, to
            // the termination file, as the real worker does.
            System.out.println(
                    "[W NNPACK.cpp:64] Could not initialize NNPACK! Reason: Unsupported hardware.");
            System.out.println("training of " + jobId + " failed: training diverged at step 7");
            System.out.println("\tat io.tuneline.engine.train.Trainer.step(Trainer.java:1)");
            System.out.flush();
            String cause = System.getenv(TrainingWorker.TERMINATION_LOG);
            if (cause != null) {
                Files.writeString(Path.of(cause), "training diverged at step 7\n");
            }
            Runtime.getRuntime().halt(TrainingWorker.EXIT_JOB_CANNOT_SUCCEED);
        }
        if (jobId.startsWith("stubborn-")) {
            Runtime.getRuntime()
                    .addShutdownHook(
                            new Thread(
                                    () -> {
                                        while (true) {
                                            Thread.onSpinWait();
                                        }
                                    }));
        } else {
            Runtime.getRuntime()
                    .addShutdownHook(
                            new Thread(
                                    () ->
                                            System.out.println(
                                                    "stopping between steps; checkpoint kept")));
        }
        Files.writeString(Path.of("running"), "yes");
        // Simulated training steps until the process is stopped.
        for (long step = 1; ; step++) {
            Thread.sleep(50);
        }
    }
}
