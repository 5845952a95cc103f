package io.tuneline.registry.jobs;

import com.google.protobuf.Message;
import io.tuneline.common.job.ComparedMethods;
import io.tuneline.proto.v1.CancelJob;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.EvaluationCompleted;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.proto.v1.MethodSpec;
import io.tuneline.proto.v1.MetricValue;
import io.tuneline.proto.v1.ModelRegistered;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.proto.v1.TrainingProgress;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * What a timeline shows of each event: the fields a person follows a job by. Never the whole
 * payload: a JobRequested may carry an inline dataset and later events embed the job again.
 */
public final class EventSummaries {
    private EventSummaries() {}

    public static Map<String, Object> of(Message payload) {
        Map<String, Object> m = new LinkedHashMap<>();
        if (payload instanceof JobRequested e) {
            m.put("display_name", e.getDisplayName());
            m.put("base_model", e.getBaseModel().getRef());
            m.put("task", shortName(e.getTask().name(), "TASK_"));
            m.put("method", methodName(e));
            if (e.getCompareMethodsCount() > 0) {
                m.put("compared_methods", ComparedMethods.names(e));
            }
            m.put("requested_by", e.getRequestedBy());
            // The pre-flight estimate and what auto-fit chose, when the registry admitted the job
            // (api.JobsResource, planning.JobPlanner).
            String estimate = e.getLabelsOrDefault("tuneline.estimate", "");
            if (!estimate.isEmpty()) {
                m.put("estimate", estimate);
            }
            String autoFit = e.getLabelsOrDefault("tuneline.auto_fit", "");
            if (!autoFit.isEmpty()) {
                m.put("auto_fit", autoFit);
            }
        } else if (payload instanceof JobStatusChanged e) {
            m.put("status", shortName(e.getStatus().name(), "JOB_STATUS_"));
            m.put("stage", shortName(e.getStage().name(), "STAGE_"));
            m.put("message", e.getMessage());
            if (e.getPercentDone() > 0) {
                m.put("percent_done", Math.round(e.getPercentDone() * 10) / 10.0);
            }
        } else if (payload instanceof JobFailed e) {
            m.put("stage", shortName(e.getStage().name(), "STAGE_"));
            m.put("error_code", e.getErrorCode());
            m.put("message", e.getMessage());
            m.put("details", e.getDetailsList().stream().limit(10).toList());
            m.put("retriable", e.getRetriable());
        } else if (payload instanceof CancelJob e) {
            m.put("reason", e.getReason());
            m.put("requested_by", e.getRequestedBy());
        } else if (payload instanceof DatasetIngested e) {
            m.put("raw_uri", e.getRaw().getUri());
            m.put("raw_sha256", e.getRaw().getSha256());
            m.put("format", shortName(e.getFormat().name(), "DATASET_FORMAT_"));
            m.put("valid_records", e.getValidRecords());
            m.put("bad_records", e.getBadRecords());
        } else if (payload instanceof DatasetPrepared e) {
            m.put("train", e.getCounts().getTrain());
            m.put("validation", e.getCounts().getValidation());
            m.put("test", e.getCounts().getTest());
            m.put("exact_duplicates_removed", e.getStats().getExactDuplicatesRemoved());
            m.put("near_duplicates_removed", e.getStats().getNearDuplicatesRemoved());
            m.put("manifest_sha256", e.getManifest().getSha256());
        } else if (payload instanceof TrainingProgress e) {
            m.put("step", e.getStep());
            m.put("total_steps", e.getTotalSteps());
            m.put("epoch", e.getEpoch());
            m.put("loss", e.getLoss());
            if (e.hasValidationLoss()) {
                m.put("validation_loss", e.getValidationLoss());
            }
            m.put("learning_rate", e.getLearningRate());
            m.put("tokens_per_second", e.getTokensPerSecond());
            m.put("eta_seconds", e.getEtaSeconds());
            m.put("device", e.getDevice());
        } else if (payload instanceof TrainingCompleted e) {
            if (!e.getComparedMethod().isEmpty()) {
                m.put("method", e.getComparedMethod());
            }
            m.put("steps", e.getSteps());
            m.put("skipped_steps", e.getSkippedSteps());
            m.put("final_loss", e.getFinalLoss());
            m.put("duration_seconds", e.getDurationSeconds());
            m.put("device", e.getDevice());
            m.put("trainable_parameters", e.getTrainableParameters());
            m.put("total_parameters", e.getTotalParameters());
            m.put("peak_memory_bytes", e.getPeakMemoryBytes());
            m.put("tokens_per_second", e.getTokensPerSecond());
            m.put("model_uri", e.getModel().getUri());
        } else if (payload instanceof EvaluationCompleted e) {
            if (!e.getTraining().getComparedMethod().isEmpty()) {
                m.put("method", e.getTraining().getComparedMethod());
            }
            String primary = e.getPrimaryMetric();
            m.put("primary_metric", primary);
            m.put("tuned", metric(e.getTunedMetricsMap().get(primary)));
            m.put("base", metric(e.getBaseMetricsMap().get(primary)));
            m.put("gate_passed", e.getGate().getPassed());
            m.put("gate_reasons", e.getGate().getReasonsList());
            m.put("report_uri", e.getReportHtml().getUri());
        } else if (payload instanceof ModelRegistered e) {
            m.put("model_name", e.getModelName());
            m.put("version", e.getVersion());
            m.put("stage", e.getStage());
            m.put("aliases", e.getAliasesList());
        }
        return m;
    }

    /** The job's method's short name, or {@code COMPARISON} for a method-comparison job. */
    public static String methodName(JobRequested job) {
        return job.getCompareMethodsCount() > 0 ? "COMPARISON" : methodName(job.getMethod());
    }

    /** {@code FULL}, {@code FREEZE}, {@code LORA}, ...: the method's short name. */
    public static String methodName(MethodSpec method) {
        return method.getKindCase() == MethodSpec.KindCase.KIND_NOT_SET
                ? "UNSPECIFIED"
                : method.getKindCase().name().toUpperCase(Locale.ROOT);
    }

    /** {@code SEQUENCE_CLASSIFICATION}, {@code CAUSAL_LM}. */
    public static String shortNameOf(io.tuneline.proto.v1.Task task) {
        return shortName(task.name(), "TASK_");
    }

    static String shortName(String enumName, String prefix) {
        return enumName.startsWith(prefix) ? enumName.substring(prefix.length()) : enumName;
    }

    private static Object metric(MetricValue v) {
        if (v == null) {
            return null;
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("value", v.getValue());
        m.put("ci_lower", v.getCiLower());
        m.put("ci_upper", v.getCiUpper());
        return m;
    }
}
