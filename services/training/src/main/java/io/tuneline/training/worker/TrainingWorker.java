package io.tuneline.training.worker;

import io.tuneline.common.event.EventCodec;
import io.tuneline.common.event.OutgoingEvent;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.StoreSettings;
import io.tuneline.common.topic.Topics;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.TrainingStoppedException;
import io.tuneline.proto.v1.Task;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.training.run.RunStore;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The worker process of one training attempt (the local executor starts it; on Kubernetes it is the
 * worker pod's command). Configuration comes from the environment the controller sets: {@code
 * TUNELINE_JOB_ID}, {@code TUNELINE_ATTEMPT}, {@code KAFKA_BOOTSTRAP_SERVERS}, {@code S3_ENDPOINT},
 * {@code S3_ACCESS_KEY}, {@code S3_SECRET_KEY}, {@code S3_BUCKET} (and {@code S3_CA_FILE} for an
 * https store signed by a private CA). Exit code 0 means {@code result.json} was written; {@link
 * #EXIT_JOB_CANNOT_SUCCEED} that retrying is pointless.
 */
public final class TrainingWorker {
    private TrainingWorker() {}

    /**
     * How long a SIGTERM waits for the current step and its checkpoint before the JVM exits: {@code
     * TUNELINE_STOP_GRACE_SECONDS} (the chart sets it from the pod's termination grace period, less
     * time for the upload), else 60 s.
     */
    static final Duration STOP_GRACE =
            Duration.ofSeconds(
                    Long.parseLong(
                            System.getenv().getOrDefault("TUNELINE_STOP_GRACE_SECONDS", "60")));

    /**
     * The local executor's controller process. A worker whose controller died (SIGKILL, OOM) stops
     * as on SIGTERM: the restarted controller starts the next attempt from the last checkpoint, and
     * two workers must never train the same job side by side.
     */
    public static final String CONTROLLER_PID = "TUNELINE_CONTROLLER_PID";

    private static final AtomicBoolean stop = new AtomicBoolean();
    private static final CountDownLatch finished = new CountDownLatch(1);

    public static void main(String[] args) throws Exception {
        // SIGTERM (a cancellation, a pod eviction) runs this hook: ask the training loop to stop
        // after its current step and store a checkpoint, and let it finish before the JVM exits.
        Runtime.getRuntime()
                .addShutdownHook(
                        new Thread(
                                () -> {
                                    stop.set(true);
                                    try {
                                        finished.await(STOP_GRACE.toSeconds(), TimeUnit.SECONDS);
                                    } catch (InterruptedException e) {
                                        Thread.currentThread().interrupt();
                                    }
                                },
                                "stop-training"));
        StartupMarks.mark("main");
        loadEngineAhead();
        stopWithTheController(System.getenv(CONTROLLER_PID));
        int exit;
        try {
            exit = run();
        } catch (MissingSetting e) {
            System.err.println(e.getMessage());
            exit = 64;
        } finally {
            finished.countDown();
        }
        // During a SIGTERM the JVM is already shutting down (System.exit would block forever);
        // the signal sets the exit status.
        if (exit != 0 && !stop.get()) {
            System.exit(exit);
        }
    }

    /**
     * Loads libtorch on another thread while this one starts the Kafka and store clients and reads
     * the job's input, which need nothing from it: each is one thread's work (class loading, native
     * loading), about 1.1 s and 0.3 s (1.7 s from a cold disk) before a demo job's first step, so
     * on two cores they overlap. The run starts the engine itself as before and, when this has not
     * finished, waits for it ({@code EngineRuntime.start} is synchronized); a failure here is left
     * for the run to meet and report, with the job's own error handling.
     *
     * <p>Logging is set up on this thread first. Started from both threads at once, JBoss
     * LogManager and java.util.logging each took the lock the other's initialisation needed, and
     * the worker hung before its first step (found in {@code ./platform demo}).
     */
    private static void loadEngineAhead() {
        java.util.logging.LogManager.getLogManager();
        org.slf4j.LoggerFactory.getILoggerFactory();
        Thread t =
                new Thread(
                        () -> {
                            try {
                                EngineRuntime.start(0);
                            } catch (RuntimeException | LinkageError reportedByTheRun) {
                                // The run's own EngineRuntime.start fails the same way.
                            }
                        },
                        "load-libtorch");
        t.setDaemon(true);
        t.start();
    }

    private static void stopWithTheController(String pid) {
        if (pid == null || pid.isBlank()) {
            return; // Kubernetes: the pod outlives a controller restart by design
        }
        Optional<ProcessHandle> controller = ProcessHandle.of(Long.parseLong(pid.trim()));
        CompletableFuture<?> gone =
                controller.isPresent()
                        ? controller.get().onExit()
                        : CompletableFuture.completedFuture(null);
        gone.thenRun(
                () -> {
                    System.err.println(
                            "the training controller (pid "
                                    + pid.trim()
                                    + ") is gone; stopping after this step with a checkpoint");
                    // Runs the shutdown hook, as SIGTERM does.
                    System.exit(EXIT_STOPPED);
                });
    }

    /** Runs the attempt; returns the process exit code. */
    private static int run() throws Exception {
        String jobId = require("TUNELINE_JOB_ID");
        int attempt = Integer.parseInt(System.getenv().getOrDefault("TUNELINE_ATTEMPT", "1"));
        Properties props = kafkaProperties(System.getenv());
        props.put("bootstrap.servers", require("KAFKA_BOOTSTRAP_SERVERS"));
        props.put("key.serializer", StringSerializer.class.getName());
        props.put("value.serializer", ByteArraySerializer.class.getName());
        EventCodec codec = new EventCodec("/tuneline/training-worker");
        try (KafkaProducer<String, byte[]> producer = new KafkaProducer<>(props);
                ArtifactStore store =
                        new ArtifactStore(
                                new StoreSettings(
                                                require("S3_ENDPOINT"),
                                                require("S3_ACCESS_KEY"),
                                                require("S3_SECRET_KEY"),
                                                System.getenv()
                                                        .getOrDefault("S3_BUCKET", "tuneline"),
                                                "us-east-1",
                                                StoreSettings.DEFAULT_PART_SIZE)
                                        .withCaFile(
                                                Optional.ofNullable(System.getenv("S3_CA_FILE"))
                                                        .filter(f -> !f.isBlank())
                                                        .map(Path::of)))) {
            ProgressSink sink =
                    p -> {
                        OutgoingEvent e = codec.encode(p);
                        ProducerRecord<String, byte[]> record =
                                new ProducerRecord<>(Topics.TRAINING_PROGRESS, e.key(), e.value());
                        e.headers()
                                .forEach(
                                        (k, v) ->
                                                record.headers()
                                                        .add(
                                                                k,
                                                                v.getBytes(
                                                                        StandardCharsets.UTF_8)));
                        producer.send(record);
                    };
            TrainingCompleted result;
            try {
                result = runAttempt(store, sink, Path.of("scratch"), jobId, attempt);
            } catch (TrainingStoppedException e) {
                producer.flush();
                System.out.println("training of " + jobId + ": " + e.getMessage());
                return EXIT_STOPPED;
            }
            producer.flush();
            System.out.printf(
                    "training of %s finished: %d steps, loss %.4f, %d of %d parameters trained, model at %s%n",
                    jobId,
                    result.getSteps(),
                    result.getFinalLoss(),
                    result.getTrainableParameters(),
                    result.getTotalParameters(),
                    result.getModel().getUri());
        } catch (RuntimeException e) {
            System.err.println("training of " + jobId + " failed: " + e.getMessage());
            e.printStackTrace();
            reportCause(e);
            return isTheJobsFault(e) ? EXIT_JOB_CANNOT_SUCCEED : 2;
        }
        return 0;
    }

    /**
     * Where the worker writes why it failed, in one line and without a stack trace, for the
     * controller to use as the job's reason: Kubernetes' termination message file ({@code
     * /dev/termination-log}, which the pod status then carries), a file beside the log locally. The
     * log keeps everything else (native libraries' warnings, the stack trace).
     */
    public static final String TERMINATION_LOG = "TUNELINE_TERMINATION_LOG";

    private static void reportCause(Throwable e) {
        String file = System.getenv(TERMINATION_LOG);
        if (file == null || file.isBlank()) {
            return;
        }
        try {
            java.nio.file.Files.writeString(Path.of(file), cause(e));
        } catch (java.io.IOException | RuntimeException notWritten) {
            System.err.println("could not write " + file + ": " + notWritten.getMessage());
        }
    }

    /** The messages of {@code e} and its causes, each once: the cause in words. */
    static String cause(Throwable e) {
        StringBuilder b = new StringBuilder();
        for (Throwable t = e; t != null && t.getCause() != t; t = t.getCause()) {
            String m = t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
            if (b.indexOf(m) < 0) {
                b.append(b.length() == 0 ? "" : "; caused by: ").append(m);
            }
        }
        // Kubernetes keeps at most 4096 bytes of a termination message.
        return b.length() > 3000 ? b.substring(0, 3000) + " ..." : b.toString();
    }

    /**
     * The exit code of an attempt that failed for a reason another attempt would meet again (the
     * job's base model, method, data or settings; a diverging loss): the controller does not retry
     * it.
     */
    public static final int EXIT_JOB_CANNOT_SUCCEED = 3;

    /**
     * The exit code of an attempt stopped from outside (SIGTERM: 128 + 15) once its checkpoint was
     * stored: the controller resumes the run without counting a failure (a preemption).
     */
    public static final int EXIT_STOPPED = 143;

    /**
     * Failures that come from the job itself: bad arguments (what the worker cannot train, a base
     * model that does not fit), an unknown base model, a diverging run. Anything else (the store
     * unreachable, a native crash surfacing as an exception) may pass on another attempt.
     */
    static boolean isTheJobsFault(RuntimeException e) {
        return e instanceof IllegalArgumentException
                || e instanceof UnsupportedOperationException
                || e instanceof io.tuneline.engine.catalog.UnknownModelException
                || e instanceof io.tuneline.engine.train.TrainingDivergedException;
    }

    /** Trains the attempt with the run its task needs. */
    static TrainingCompleted runAttempt(
            ArtifactStore store, ProgressSink sink, Path scratch, String jobId, int attempt)
            throws java.io.IOException {
        Task task = new RunStore(store).input(jobId).getJob().getTask();
        if (task == Task.TASK_CAUSAL_LM) {
            return new CausalLmRun(store, sink, scratch, stop::get).run(jobId, attempt);
        }
        return new ClassificationRun(store, sink, scratch, stop::get).run(jobId, attempt);
    }

    /**
     * Kafka client settings from {@code KAFKA_*} variables, as the services read them: {@code
     * KAFKA_SECURITY_PROTOCOL} becomes {@code security.protocol}, so a worker pod reaches a TLS /
     * SCRAM cluster with the same environment the chart gives the services.
     */
    static Properties kafkaProperties(java.util.Map<String, String> env) {
        Properties props = new Properties();
        env.forEach(
                (name, value) -> {
                    if (name.startsWith("KAFKA_") && !value.isBlank()) {
                        props.put(
                                name.substring("KAFKA_".length())
                                        .toLowerCase(java.util.Locale.ROOT)
                                        .replace('_', '.'),
                                value);
                    }
                });
        return props;
    }

    private static String require(String name) {
        String value = System.getenv(name);
        if (value == null || value.isBlank()) {
            throw new MissingSetting(
                    "environment variable "
                            + name
                            + " is not set; the training controller sets it");
        }
        return value;
    }

    private static final class MissingSetting extends RuntimeException {
        MissingSetting(String message) {
            super(message);
        }
    }
}
