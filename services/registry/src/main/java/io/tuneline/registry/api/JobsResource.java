package io.tuneline.registry.api;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import com.google.protobuf.util.Timestamps;
import io.smallrye.common.annotation.Blocking;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.infrastructure.Infrastructure;
import io.tuneline.common.job.JobSpecValidator;
import io.tuneline.common.messaging.EventPublisher;
import io.tuneline.proto.v1.CancelJob;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.registry.db.Page;
import io.tuneline.registry.error.RegistryException;
import io.tuneline.registry.jobs.JobEventBus;
import io.tuneline.registry.jobs.JobEventView;
import io.tuneline.registry.jobs.JobReadModel;
import io.tuneline.registry.jobs.JobState;
import io.tuneline.registry.jobs.JobView;
import io.tuneline.registry.planning.JobPlanner;
import jakarta.inject.Inject;
import jakarta.validation.constraints.Max;
import jakarta.validation.constraints.Min;
import jakarta.validation.constraints.Size;
import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.DefaultValue;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.HeaderParam;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.QueryParam;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.net.URI;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import org.eclipse.microprofile.openapi.annotations.Operation;
import org.eclipse.microprofile.reactive.messaging.Channel;
import org.eclipse.microprofile.reactive.messaging.Emitter;
import org.jboss.resteasy.reactive.RestStreamElementType;

/** Jobs: the read-model, a live event stream per job, submission and cancellation over HTTP. */
@Path("/api/v1/jobs")
@Produces(MediaType.APPLICATION_JSON)
public class JobsResource {
    private static final JsonFormat.Parser STRICT = JsonFormat.parser();

    private final JobReadModel jobs;
    private final JobEventBus bus;
    private final EventPublisher publisher;
    private final Emitter<byte[]> requested;
    private final Emitter<byte[]> control;
    private final JobPlanner planner;

    @Inject
    public JobsResource(
            JobReadModel jobs,
            JobEventBus bus,
            EventPublisher publisher,
            @Channel("jobs-requested") Emitter<byte[]> requested,
            @Channel("jobs-control") Emitter<byte[]> control,
            JobPlanner planner) {
        this.planner = planner;
        this.jobs = jobs;
        this.bus = bus;
        this.publisher = publisher;
        this.requested = requested;
        this.control = control;
    }

    @GET
    @Blocking
    @Operation(summary = "List jobs, most recently updated first")
    public Page<JobView> list(
            @QueryParam("status") String status,
            @QueryParam("model") String model,
            @QueryParam("page") @DefaultValue("0") @Min(0) int page,
            @QueryParam("size") @DefaultValue("20") @Min(1) @Max(200) int size) {
        Optional<JobState> state;
        try {
            state = Optional.ofNullable(status).filter(s -> !s.isBlank()).map(JobState::parse);
        } catch (IllegalArgumentException e) {
            throw new RegistryException.BadRequest(e.getMessage());
        }
        return jobs.list(state, Optional.ofNullable(model).filter(m -> !m.isBlank()), page, size);
    }

    @GET
    @Path("/{id}")
    @Blocking
    @Operation(summary = "A job with its stage times, progress, failure and full event timeline")
    public JobView get(@PathParam("id") String id) {
        return jobs.find(id).orElseThrow(() -> unknownJob(id));
    }

    /**
     * The job's stored events, then new ones as they arrive, as Server-Sent Events; the stream ends
     * after the job's final event. Replayed events carry the job's current status.
     */
    @GET
    @Path("/{id}/events")
    @Produces(MediaType.SERVER_SENT_EVENTS)
    @RestStreamElementType(MediaType.APPLICATION_JSON)
    @Operation(summary = "Live job events (Server-Sent Events); ?wait=true for a job not seen yet")
    public Multi<JobEventView> events(
            @PathParam("id") String id, @QueryParam("wait") @DefaultValue("false") boolean wait) {
        return Multi.createFrom()
                .<JobEventView>emitter(
                        emitter -> {
                            Object lock = new Object();
                            Set<String> seen = new HashSet<>();
                            List<JobEventView> early = new ArrayList<>();
                            boolean[] replayed = {false};
                            AutoCloseable handle =
                                    bus.watch(
                                            id,
                                            event -> {
                                                synchronized (lock) {
                                                    if (!replayed[0]) {
                                                        early.add(event);
                                                    } else if (seen.add(event.eventId())) {
                                                        emitter.emit(event);
                                                        if (event.terminal()) {
                                                            emitter.complete();
                                                        }
                                                    }
                                                }
                                            });
                            emitter.onTermination(() -> closeQuietly(handle));
                            Optional<JobView> job = jobs.find(id);
                            if (job.isEmpty() && !wait) {
                                emitter.fail(unknownJob(id));
                                return;
                            }
                            synchronized (lock) {
                                boolean done = false;
                                for (JobEventView e :
                                        job.map(JobView::timeline).orElse(List.of())) {
                                    seen.add(e.eventId());
                                    emitter.emit(e);
                                    done |= e.terminal();
                                }
                                for (JobEventView e : early) {
                                    if (seen.add(e.eventId())) {
                                        emitter.emit(e);
                                        done |= e.terminal();
                                    }
                                }
                                replayed[0] = true;
                                if (done) {
                                    emitter.complete();
                                }
                            }
                        })
                .runSubscriptionOn(Infrastructure.getDefaultWorkerPool());
    }

    /**
     * The largest job event published: Kafka's default message limit (1 MiB, {@code
     * max.request.size} and the broker's {@code message.max.bytes}) less room for the headers. The
     * event goes out as JSON, a little larger than the binary size checked here.
     */
    static final int MAX_JOB_EVENT_BYTES = 900 * 1024;

    /**
     * Submits a job: the body is the same JSON as a job file ({@code examples/*.json}). A missing
     * {@code job_id} is generated. The job is validated and its run estimated (docs/planning.md):
     * one that does not fit its device is refused (422) with the numbers and the ways out, or
     * auto-fitted when it says {@code resources.auto_fit}; then it is published as {@code
     * JobRequested} with the estimate in its labels. With {@code dry_run=true} the same checks run
     * and the estimate comes back (200), and nothing is published.
     */
    @POST
    @Consumes(MediaType.APPLICATION_JSON)
    @Blocking
    @Operation(
            summary =
                    "Submit a job (validated, estimated, then published to"
                            + " finetune.jobs.requested); ?dry_run=true returns the estimate only")
    public Response submit(
            @Size(max = 64 * 1024 * 1024) String body,
            @HeaderParam("X-Tuneline-Actor") String actor,
            @QueryParam("dry_run") @DefaultValue("false") boolean dryRun) {
        if (body == null || body.isBlank()) {
            throw new RegistryException.BadRequest("the request body must be a job as JSON");
        }
        JobRequested.Builder job = JobRequested.newBuilder();
        try {
            STRICT.merge(body, job);
        } catch (InvalidProtocolBufferException e) {
            throw new RegistryException.BadRequest(
                    "the job is not valid JSON for JobRequested: " + e.getMessage());
        }
        if (job.getJobId().isBlank()) {
            job.setJobId(
                    "job-" + UUID.randomUUID().toString().substring(0, 8).toLowerCase(Locale.ROOT));
        }
        if (job.getRequestedBy().isBlank()) {
            job.setRequestedBy(actor == null || actor.isBlank() ? "api" : actor);
        }
        if (!job.hasRequestedAt()) {
            job.setRequestedAt(Timestamps.now());
        }
        JobRequested built = job.build();
        JobSpecValidator.requireValid(built);
        int eventBytes = built.getSerializedSize();
        if (eventBytes > MAX_JOB_EVENT_BYTES) {
            // Said here rather than by the broker, which would refuse the record with a bare
            // RecordTooLargeException after the job was accepted.
            throw new RegistryException.TooLarge(
                    "the job is "
                            + eventBytes
                            + " bytes as an event, more than the "
                            + MAX_JOB_EVENT_BYTES
                            + " a Kafka message carries here; put the dataset in the store or"
                            + " behind http(s):// and give dataset.uri instead of inline records");
        }
        if (jobs.find(built.getJobId()).isPresent()) {
            throw new RegistryException.Conflict(
                    "job '"
                            + built.getJobId()
                            + "' already exists; give the job another job_id or leave it out");
        }
        Optional<JobPlanner.Admission> admission =
                planner.enabled() ? Optional.of(planner.admit(built, dryRun)) : Optional.empty();
        if (dryRun) {
            Map<String, Object> answer = new java.util.LinkedHashMap<>();
            answer.put("job_id", built.getJobId());
            answer.put("dry_run", true);
            answer.put("admitted", true);
            admission.ifPresent(
                    a -> {
                        answer.put("estimate", a.estimate());
                        answer.put("summary", a.estimate().summary());
                        a.autoFit().ifPresent(f -> answer.put("auto_fit", f));
                    });
            return Response.ok(answer).build();
        }
        if (admission.isPresent()) {
            built = admission.get().job();
        }
        publisher.sendAndWait(requested, built);
        Map<String, Object> accepted = new java.util.LinkedHashMap<>();
        accepted.put("job_id", built.getJobId());
        accepted.put("status", JobState.QUEUED.name());
        accepted.put("events", "/api/v1/jobs/" + built.getJobId() + "/events");
        admission.ifPresent(
                a -> {
                    accepted.put("estimate", a.estimate().summary());
                    a.autoFit().ifPresent(f -> accepted.put("auto_fit", f));
                });
        return Response.accepted(accepted)
                .location(URI.create("/api/v1/jobs/" + built.getJobId()))
                .build();
    }

    /** Asks the platform to cancel a job; the job reads CANCELLED once its stage has stopped. */
    @POST
    @Path("/{id}/cancel")
    @Blocking
    @Operation(summary = "Cancel a job (publishes CancelJob to finetune.jobs.control)")
    public Response cancel(
            @PathParam("id") String id,
            @QueryParam("reason") String reason,
            @HeaderParam("X-Tuneline-Actor") String actor) {
        JobView job = jobs.find(id).orElseThrow(() -> unknownJob(id));
        if (JobState.valueOf(job.status()).terminal()) {
            throw new RegistryException.Conflict(
                    "job '" + id + "' already ended with " + job.status() + "; nothing to cancel");
        }
        publisher.sendAndWait(
                control,
                CancelJob.newBuilder()
                        .setJobId(id)
                        .setReason(reason == null ? "cancelled through the registry API" : reason)
                        .setRequestedBy(actor == null || actor.isBlank() ? "api" : actor)
                        .setRequestedAt(Timestamps.now())
                        .build());
        return Response.accepted(Map.of("job_id", id, "cancel_requested", true)).build();
    }

    private static RegistryException unknownJob(String id) {
        return new RegistryException.NotFound(
                "no job '" + id + "' in the registry; list jobs with GET /api/v1/jobs");
    }

    private static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception ignored) {
            // Unregistering a watcher cannot fail in a way the client could act on.
        }
    }
}
