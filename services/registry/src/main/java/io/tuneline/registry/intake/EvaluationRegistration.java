package io.tuneline.registry.intake;

import com.google.protobuf.util.Timestamps;
import io.micrometer.core.instrument.MeterRegistry;
import io.tuneline.common.messaging.EventPublisher;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.EvaluationCompleted;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.JobStatus;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.proto.v1.ModelRegistered;
import io.tuneline.proto.v1.Stage;
import io.tuneline.registry.error.RegistryException;
import io.tuneline.registry.models.ModelRegistrar;
import io.tuneline.registry.models.ModelRegistrar.Outcome;
import io.tuneline.registry.models.VersionMetrics;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import org.eclipse.microprofile.reactive.messaging.Channel;
import org.eclipse.microprofile.reactive.messaging.Emitter;
import org.jboss.logging.Logger;

/**
 * The pipeline's last stage: an evaluated job becomes a model version ({@code REGISTERING} ->
 * {@code ModelRegistered} -> {@code SUCCEEDED}), is skipped on request, or fails on its quality
 * gate. Events leave only after the version is committed.
 */
@ApplicationScoped
public class EvaluationRegistration {
    public static final String GATE_FAILED = "QUALITY_GATE_FAILED";
    public static final String REJECTED = "REGISTRATION_REJECTED";
    // Micrometer names: Prometheus shows this as tuneline_registry_versions_registered_total.
    static final String VERSIONS_REGISTERED = "tuneline.registry.versions.registered";

    private static final Logger LOG = Logger.getLogger(EvaluationRegistration.class);

    private final ModelRegistrar registrar;
    private final EventPublisher publisher;
    private final Emitter<byte[]> status;
    private final Emitter<byte[]> registered;
    private final MeterRegistry metrics;
    private final VersionMetrics versionMetrics;
    private final MethodComparisons comparisons;

    @Inject
    public EvaluationRegistration(
            ModelRegistrar registrar,
            MethodComparisons comparisons,
            EventPublisher publisher,
            @Channel("job-status") Emitter<byte[]> status,
            @Channel("models-registered") Emitter<byte[]> registered,
            MeterRegistry metrics,
            VersionMetrics versionMetrics) {
        this.registrar = registrar;
        this.comparisons = comparisons;
        this.versionMetrics = versionMetrics;
        this.publisher = publisher;
        this.status = status;
        this.registered = registered;
        this.metrics = metrics;
        metrics.counter(VERSIONS_REGISTERED);
    }

    /**
     * @param firstDelivery false when this evaluation was already applied: then events are sent
     *     again only if the version did not exist yet (the earlier attempt failed before it)
     */
    public void handle(EvaluationCompleted evaluation, boolean firstDelivery) {
        if (evaluation.getTraining().getComparedMethod().isEmpty()) {
            register(evaluation, firstDelivery, Optional.empty());
            return;
        }
        // One method of a comparison: recorded until every method's evaluation is in, then the
        // best is registered with the comparison report.
        String jobId = evaluation.getJobId();
        MethodComparisons.Progress progress = comparisons.record(evaluation);
        if (progress instanceof MethodComparisons.Progress.Waiting w) {
            if (firstDelivery) {
                statusChanged(
                        jobId,
                        JobStatus.JOB_STATUS_EVALUATING,
                        evaluation.getTraining().getComparedMethod()
                                + " evaluated ("
                                + w.done()
                                + " of "
                                + w.total()
                                + " methods); waiting for "
                                + String.join(", ", w.missing()));
            }
            return;
        }
        MethodComparisons.Progress.Complete done = (MethodComparisons.Progress.Complete) progress;
        register(done.chosen(), firstDelivery, Optional.of(done));
    }

    private void register(
            EvaluationCompleted evaluation,
            boolean firstDelivery,
            Optional<MethodComparisons.Progress.Complete> comparison) {
        String jobId = evaluation.getJobId();
        if (firstDelivery) {
            statusChanged(
                    jobId,
                    JobStatus.JOB_STATUS_REGISTERING,
                    comparison
                            .map(
                                    c ->
                                            "registering "
                                                    + evaluation.getTraining().getComparedMethod()
                                                    + ", the best of "
                                                    + c.comparison().methods().size()
                                                    + " methods by "
                                                    + c.comparison().primaryMetric())
                            .orElse("registering the model"));
        }
        Map<String, ArtifactRef> extra = new LinkedHashMap<>();
        comparison.ifPresent(
                c -> {
                    extra.put("comparison.json", c.json());
                    extra.put("comparison.html", c.html());
                });
        Outcome outcome;
        try {
            outcome = registrar.register(evaluation, extra);
        } catch (RegistryException e) {
            LOG.warnf("registration of job %s refused: %s", jobId, e.getMessage());
            if (firstDelivery) {
                failed(jobId, REJECTED, e.getMessage());
            }
            return;
        }
        if (outcome instanceof Outcome.Registered r) {
            if (!r.created() && !firstDelivery) {
                return;
            }
            if (r.created()) {
                metrics.counter(VERSIONS_REGISTERED).increment();
                var headline = evaluation.getTunedMetricsMap().get(evaluation.getPrimaryMetric());
                if (headline != null) {
                    versionMetrics.record(
                            r.model(),
                            r.version(),
                            evaluation.getPrimaryMetric(),
                            headline.getValue());
                }
                LOG.infof("registered %s version %d", r.model(), r.version());
            }
            publisher.sendAndWait(
                    registered,
                    ModelRegistered.newBuilder()
                            .setJobId(jobId)
                            .setModelName(r.model())
                            .setVersion(r.version())
                            .setStage(r.stage())
                            .addAllAliases(r.aliases())
                            .setModel(r.primaryFile())
                            .setReport(r.report())
                            .setGatePassed(r.gatePassed())
                            .setComparisonReport(
                                    comparison
                                            .map(MethodComparisons.Progress.Complete::json)
                                            .orElse(ArtifactRef.getDefaultInstance()))
                            .setRegisteredAt(Timestamps.now())
                            .build());
            statusChanged(
                    jobId,
                    JobStatus.JOB_STATUS_SUCCEEDED,
                    "registered "
                            + r.model()
                            + " version "
                            + r.version()
                            + comparison
                                    .map(
                                            c ->
                                                    " ("
                                                            + evaluation
                                                                    .getTraining()
                                                                    .getComparedMethod()
                                                            + ", best of "
                                                            + c.comparison().methods().size()
                                                            + " methods compared)")
                                    .orElse("")
                            + (r.gatePassed()
                                    ? ""
                                    : " (quality gate failed; registered on request)"));
        } else if (outcome instanceof Outcome.Skipped s) {
            if (firstDelivery) {
                statusChanged(jobId, JobStatus.JOB_STATUS_SUCCEEDED, "evaluated; " + s.reason());
            }
        } else if (outcome instanceof Outcome.GateFailed g) {
            if (firstDelivery) {
                failed(
                        jobId,
                        GATE_FAILED,
                        "quality gate failed: "
                                + String.join("; ", g.reasons())
                                + ". Not registered; set registration.register_on_gate_failure"
                                + " to register such versions anyway");
            }
        }
    }

    private void statusChanged(String jobId, JobStatus to, String message) {
        publisher.sendAndWait(
                status,
                JobStatusChanged.newBuilder()
                        .setJobId(jobId)
                        .setStatus(to)
                        .setStage(Stage.STAGE_REGISTRY)
                        .setMessage(message)
                        .setChangedAt(Timestamps.now())
                        .build());
    }

    private void failed(String jobId, String code, String message) {
        publisher.sendAndWait(
                status,
                JobFailed.newBuilder()
                        .setJobId(jobId)
                        .setStage(Stage.STAGE_REGISTRY)
                        .setErrorCode(code)
                        .setMessage(message)
                        .setFailedAt(Timestamps.now())
                        .build());
    }
}
