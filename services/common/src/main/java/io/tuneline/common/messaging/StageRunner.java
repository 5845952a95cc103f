package io.tuneline.common.messaging;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import com.google.protobuf.util.JsonFormat;
import com.google.protobuf.util.Timestamps;
import io.tuneline.common.event.IncomingEvent;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.ArtifactStoreException;
import io.tuneline.common.store.S3Uri;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.Stage;
import jakarta.annotation.PreDestroy;
import jakarta.inject.Inject;
import jakarta.inject.Singleton;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.Locale;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.eclipse.microprofile.reactive.messaging.Emitter;
import org.jboss.logging.Logger;

/**
 * Runs the work of one pipeline stage for one job, counting its starts in the object store ({@code
 * stages/{jobId}/{service}.json}) so that a job whose stage keeps killing the service (the record
 * is delivered again after each restart, since its offset was never committed) ends FAILED with the
 * reason after {@code tuneline.stages.max-attempts} starts, instead of a crash loop that stops
 * every later job.
 *
 * <p>Stage consumers run on the {@value #POOL} worker pool with {@code ordered = false}: a stage
 * that takes an hour holds only its own record (whose offset is committed once its outcome is
 * durable, by SmallRye's throttled strategy) and never the jobs behind it.
 *
 * <p>The same record reaches a second instance when its partition moves while the stage runs (an
 * instance added to the group, an autoscaler, a rebalance after a slow poll): the first instance
 * cannot commit an offset it no longer owns. So the stage record is also a lease: the instance at
 * work writes a heartbeat into it every {@code lease / 3}, and another instance that is handed the
 * same event waits for that stage instead of doing it a second time beside it, then skips the event
 * once the record says it finished. A heartbeat older than {@code tuneline.stages.lease} (the
 * instance died: SIGKILL, out of memory, a lost node), or one written by an earlier life of this
 * very instance (same host and port, another process), means nobody is at work: the stage starts
 * again, counted as above.
 */
@Singleton
public class StageRunner {
    /** The worker pool stage consumers run on: {@code @Blocking(value = POOL, ordered = false)}. */
    public static final String POOL = "tuneline-stages";

    public static final String ERROR_STAGE_CRASHED = "STAGE_CRASHED";
    public static final String ERROR_STORE_UNAVAILABLE = "STORE_UNAVAILABLE";

    private static final Logger LOG = Logger.getLogger(StageRunner.class);

    private final ArtifactStore store;
    private final EventPublisher publisher;
    private final StageConfig config;
    private final Optional<Pattern> delayed;
    private final Optional<Pattern> halting;

    /** This instance across restarts (host and HTTP port): a lease it held in an earlier life. */
    private final String instance;

    /** This process: a lease it holds is live work, whoever asks. */
    private final String process;

    private final ScheduledExecutorService heartbeats =
            Executors.newSingleThreadScheduledExecutor(
                    r -> {
                        Thread t = new Thread(r, "tuneline-stage-heartbeats");
                        t.setDaemon(true);
                        return t;
                    });

    @Inject
    public StageRunner(
            ArtifactStore store,
            EventPublisher publisher,
            StageConfig config,
            @ConfigProperty(name = "quarkus.http.port", defaultValue = "8080") int httpPort) {
        this(store, publisher, config, hostName() + ":" + httpPort);
    }

    /**
     * @param instance the name this instance has across restarts; two instances at work at once
     *     must have different ones
     */
    public StageRunner(
            ArtifactStore store, EventPublisher publisher, StageConfig config, String instance) {
        this.store = store;
        this.publisher = publisher;
        this.config = config;
        this.instance = instance;
        this.process = instance + "/" + ProcessHandle.current().pid() + "/" + UUID.randomUUID();
        StageConfig.Faults faults = config.faults();
        this.delayed = faults.delayJobs().filter(s -> !s.isBlank()).map(Pattern::compile);
        this.halting = faults.haltJobs().filter(s -> !s.isBlank()).map(Pattern::compile);
        delayed.ifPresent(
                p ->
                        LOG.warnf(
                                "fault injection: stages of jobs matching %s take %s more (in %s)",
                                p, faults.delay(), faults.delayIn().orElse("every service")));
        halting.ifPresent(
                p ->
                        LOG.warnf(
                                "fault injection: %s halts at the stage of jobs matching %s",
                                faults.haltIn().orElse("every service"), p));
    }

    /**
     * Runs {@code work} as attempt n of {@code service}'s stage for {@code event}'s job, or fails
     * the job through {@code status} when it has been started {@code max-attempts} times already.
     * When another live instance is doing this stage, waits for it; when the stage finished for
     * this very event already (the record came again after a rebalance), does nothing.
     */
    public void run(
            String service,
            Stage stage,
            IncomingEvent<?> event,
            Emitter<byte[]> status,
            Runnable work) {
        String jobId = event.jobId();
        S3Uri uri = store.uri("stages/" + jobId + "/" + service + ".json");
        Optional<Struct> previous;
        try {
            previous = awaitOtherInstance(service, uri, read(uri));
        } catch (ArtifactStoreException e) {
            // The store stayed out of reach for all of tuneline.store.retry-for: the stage
            // cannot run without it, and the job must end with the reason rather than its event
            // in a dead-letter topic.
            fail(
                    status,
                    jobId,
                    stage,
                    ERROR_STORE_UNAVAILABLE,
                    "the " + service + " stage cannot start: " + e.getMessage());
            return;
        }
        if (previous.isPresent()
                && "finished".equals(field(previous.get(), "state"))
                && event.id().equals(field(previous.get(), "event_id"))) {
            LOG.infof(
                    "the %s stage of event %s (%s) was finished by %s already; not doing it"
                            + " again",
                    service, event.id(), event.position(), field(previous.get(), "process"));
            return;
        }
        // Starts that never reached the end; a finished stage (a later redelivery is a duplicate
        // the stage itself skips) counts from zero.
        int started =
                previous.map(
                                s ->
                                        (int)
                                                s.getFieldsOrDefault("unfinished_starts", number(0))
                                                        .getNumberValue())
                        .orElse(0);
        if (started >= config.maxAttempts()) {
            String message =
                    String.format(
                            Locale.ROOT,
                            "the %s service stopped %d times while working on this job (last start"
                                    + " %s) and does not try it again; its log for job %s says"
                                    + " what it was doing",
                            service,
                            started,
                            previous.get()
                                    .getFieldsOrDefault("last_start", text("?"))
                                    .getStringValue(),
                            jobId);
            fail(status, jobId, stage, ERROR_STAGE_CRASHED, message);
            write(uri, started, "failed", Instant.now(), event.id());
            return;
        }
        if (started > 0) {
            LOG.warnf(
                    "%s stage started %d time(s) before without finishing; attempt %d of %d",
                    service, started, started + 1, config.maxAttempts());
        }
        Instant start = Instant.now();
        write(uri, started + 1, "running", start, event.id());
        Lease lease = new Lease(uri, started + 1, start, event.id());
        long beat = Math.max(1, config.lease().toMillis() / 3);
        lease.heartbeat =
                heartbeats.scheduleAtFixedRate(lease::beat, beat, beat, TimeUnit.MILLISECONDS);
        try {
            injectFaults(service, jobId, started);
            work.run();
        } catch (RuntimeException | Error e) {
            // Not at work any more: a redelivery need not wait out the lease. The start still
            // counts, as it does when the service dies.
            lease.end("stopped", started + 1, false);
            throw e;
        }
        lease.end("finished", 0, true);
    }

    /**
     * The stage record while this process works on it. Beats and the final write are serialised, so
     * that no late heartbeat can turn a finished record back into a running one.
     */
    private final class Lease {
        private final S3Uri uri;
        private final int unfinished;
        private final Instant start;
        private final String eventId;
        private ScheduledFuture<?> heartbeat;
        private boolean ended;

        Lease(S3Uri uri, int unfinished, Instant start, String eventId) {
            this.uri = uri;
            this.unfinished = unfinished;
            this.start = start;
            this.eventId = eventId;
        }

        synchronized void beat() {
            if (!ended) {
                // A missed beat (the store briefly away) is harmless as long as a later one lands
                // within the lease; an exception must not end the schedule.
                tryWrite(uri, unfinished, "running", start, eventId);
            }
        }

        synchronized void end(String state, int unfinishedNow, boolean mustLand) {
            ended = true;
            heartbeat.cancel(false);
            if (mustLand) {
                write(uri, unfinishedNow, state, start, eventId);
            } else {
                tryWrite(uri, unfinishedNow, state, start, eventId);
            }
        }
    }

    /**
     * While {@code previous} says another live instance (or a thread of this process) is doing this
     * stage, waits for it and reads the record again; returns the record to act on.
     */
    private Optional<Struct> awaitOtherInstance(
            String service, S3Uri uri, Optional<Struct> previous) {
        long poll = Math.max(50, Math.min(2000, config.lease().toMillis() / 4));
        boolean said = false;
        while (previous.isPresent() && atWork(previous.get())) {
            if (!said) {
                LOG.infof(
                        "%s is doing this job's %s stage (heartbeat %s); waiting for it instead"
                                + " of doing it a second time",
                        field(previous.get(), "process"),
                        service,
                        field(previous.get(), "heartbeat"));
                said = true;
            }
            try {
                Thread.sleep(poll);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted waiting for another instance", e);
            }
            previous = read(uri);
        }
        if (said) {
            LOG.infof(
                    "the other instance is no longer at work on it (state %s)",
                    previous.map(p -> field(p, "state")).orElse("none"));
        }
        return previous;
    }

    /** Whether the record is a live lease of another process (or of this one). */
    private boolean atWork(Struct record) {
        if (!"running".equals(field(record, "state"))) {
            return false;
        }
        String holder = field(record, "process");
        if (holder.isEmpty()) {
            return false; // written before leases existed
        }
        if (!holder.equals(process) && holder.startsWith(instance + "/")) {
            return false; // an earlier life of this instance: it is dead
        }
        try {
            Instant beat = Instant.parse(field(record, "heartbeat"));
            return Duration.between(beat, Instant.now()).compareTo(config.lease()) < 0;
        } catch (DateTimeParseException e) {
            return false;
        }
    }

    private void tryWrite(S3Uri uri, int unfinished, String state, Instant start, String eventId) {
        try {
            write(uri, unfinished, state, start, eventId);
        } catch (RuntimeException e) {
            LOG.debugf("could not write %s: %s", uri, e.getMessage());
        }
    }

    @PreDestroy
    void stopHeartbeats() {
        heartbeats.shutdownNow();
    }

    private void fail(
            Emitter<byte[]> status, String jobId, Stage stage, String code, String message) {
        LOG.errorf("%s", message);
        publisher.sendAndWait(
                status,
                JobFailed.newBuilder()
                        .setJobId(jobId)
                        .setStage(stage)
                        .setErrorCode(code)
                        .setMessage(message)
                        .setRetriable(!ERROR_STAGE_CRASHED.equals(code))
                        .setFailedAt(Timestamps.now())
                        .build());
    }

    private void injectFaults(String service, String jobId, int earlierStarts) {
        StageConfig.Faults faults = config.faults();
        if (applies(halting, faults.haltIn(), service, jobId)) {
            LOG.errorf("fault injection: halting the service while it works on %s", jobId);
            Runtime.getRuntime().halt(137);
        }
        // The first start only: a restarted stage redoes the work at its normal pace, and the
        // reliability test that kills a slowed stage does not wait out the delay twice.
        if (earlierStarts == 0 && applies(delayed, faults.delayIn(), service, jobId)) {
            LOG.warnf("fault injection: the stage takes %s more", faults.delay());
            try {
                Thread.sleep(faults.delay().toMillis());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted during an injected delay", e);
            }
        }
    }

    private static boolean applies(
            Optional<Pattern> jobs, Optional<String> in, String service, String jobId) {
        return jobs.isPresent()
                && jobs.get().matcher(jobId).matches()
                && in.map(service::equals).orElse(true);
    }

    private Optional<Struct> read(S3Uri uri) {
        if (!store.exists(uri)) {
            return Optional.empty();
        }
        try (InputStream in = store.get(uri)) {
            Struct.Builder b = Struct.newBuilder();
            JsonFormat.parser().merge(new String(in.readAllBytes(), StandardCharsets.UTF_8), b);
            return Optional.of(b.build());
        } catch (InvalidProtocolBufferException e) {
            // A record we cannot read must not stop the job: count from zero again.
            LOG.warnf("unreadable %s (%s); counting starts anew", uri, e.getMessage());
            return Optional.empty();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + uri, e);
        }
    }

    private void write(S3Uri uri, int unfinished, String state, Instant start, String eventId) {
        Struct record =
                Struct.newBuilder()
                        .putFields("unfinished_starts", number(unfinished))
                        .putFields("state", text(state))
                        .putFields("last_start", text(start.toString()))
                        .putFields("event_id", text(eventId))
                        .putFields("process", text(process))
                        .putFields("heartbeat", text(Instant.now().toString()))
                        .build();
        try {
            store.put(
                    uri,
                    JsonFormat.printer().print(record).getBytes(StandardCharsets.UTF_8),
                    "application/json");
        } catch (InvalidProtocolBufferException e) {
            throw new IllegalStateException(e);
        }
    }

    private static String field(Struct record, String name) {
        return record.getFieldsOrDefault(name, text("")).getStringValue();
    }

    private static String hostName() {
        String pod = System.getenv("HOSTNAME");
        if (pod != null && !pod.isBlank()) {
            return pod;
        }
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (UnknownHostException e) {
            return "localhost";
        }
    }

    private static Value number(double n) {
        return Value.newBuilder().setNumberValue(n).build();
    }

    private static Value text(String s) {
        return Value.newBuilder().setStringValue(s).build();
    }
}
