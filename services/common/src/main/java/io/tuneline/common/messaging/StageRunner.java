package io.tuneline.common.messaging;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import com.google.protobuf.util.JsonFormat;
import com.google.protobuf.util.Timestamps;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.ArtifactStoreException;
import io.tuneline.common.store.S3Uri;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.Stage;
import jakarta.inject.Inject;
import jakarta.inject.Singleton;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Locale;
import java.util.Optional;
import java.util.regex.Pattern;
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

    @Inject
    public StageRunner(ArtifactStore store, EventPublisher publisher, StageConfig config) {
        this.store = store;
        this.publisher = publisher;
        this.config = config;
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
     * Runs {@code work} as attempt n of {@code service}'s stage for {@code jobId}, or fails the job
     * through {@code status} when it has been started {@code max-attempts} times already.
     */
    public void run(
            String service, Stage stage, String jobId, Emitter<byte[]> status, Runnable work) {
        S3Uri uri = store.uri("stages/" + jobId + "/" + service + ".json");
        Optional<Struct> previous;
        try {
            previous = read(uri);
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
            write(uri, started, "failed", Instant.now());
            return;
        }
        if (started > 0) {
            LOG.warnf(
                    "%s stage started %d time(s) before without finishing; attempt %d of %d",
                    service, started, started + 1, config.maxAttempts());
        }
        Instant start = Instant.now();
        write(uri, started + 1, "running", start);
        injectFaults(service, jobId, started);
        work.run();
        write(uri, 0, "finished", start);
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

    private void write(S3Uri uri, int unfinished, String state, Instant start) {
        Struct record =
                Struct.newBuilder()
                        .putFields("unfinished_starts", number(unfinished))
                        .putFields("state", text(state))
                        .putFields("last_start", text(start.toString()))
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

    private static Value number(double n) {
        return Value.newBuilder().setNumberValue(n).build();
    }

    private static Value text(String s) {
        return Value.newBuilder().setStringValue(s).build();
    }
}
