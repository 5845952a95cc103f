package io.tuneline.common.event;

import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Message;
import io.tuneline.common.topic.Topics;
import io.tuneline.proto.v1.CancelJob;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.EvaluationCompleted;
import io.tuneline.proto.v1.JobFailed;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.JobStatusChanged;
import io.tuneline.proto.v1.ModelChanged;
import io.tuneline.proto.v1.ModelRegistered;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.proto.v1.TrainingProgress;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Function;
import java.util.stream.Collectors;

/**
 * The event types of the platform. The CloudEvents {@code ce_type} of an event is the protobuf full
 * name of its message, e.g. {@code tuneline.v1.JobRequested}.
 */
public final class EventTypes {
    private static final List<Message> DEFAULTS =
            List.of(
                    JobRequested.getDefaultInstance(),
                    CancelJob.getDefaultInstance(),
                    JobStatusChanged.getDefaultInstance(),
                    JobFailed.getDefaultInstance(),
                    DatasetIngested.getDefaultInstance(),
                    DatasetPrepared.getDefaultInstance(),
                    TrainingProgress.getDefaultInstance(),
                    TrainingCompleted.getDefaultInstance(),
                    EvaluationCompleted.getDefaultInstance(),
                    ModelRegistered.getDefaultInstance(),
                    ModelChanged.getDefaultInstance());

    private static final Map<String, Message> BY_TYPE =
            DEFAULTS.stream()
                    .collect(
                            Collectors.toUnmodifiableMap(
                                    m -> m.getDescriptorForType().getFullName(),
                                    Function.identity()));

    /**
     * Types written by people (job files, kcat) rather than by services. Their JSON is parsed
     * strictly: a misspelt field is an error, not silently ignored. Events written by services are
     * parsed leniently so an older consumer tolerates fields added by a newer producer.
     */
    private static final Set<String> USER_AUTHORED =
            Set.of(
                    JobRequested.getDescriptor().getFullName(),
                    CancelJob.getDescriptor().getFullName());

    /** The event types each topic carries; dead-letter topics carry their source topic's. */
    private static final Map<String, List<Message>> BY_TOPIC =
            Map.of(
                    Topics.JOBS_REQUESTED, List.of(JobRequested.getDefaultInstance()),
                    Topics.JOBS_CONTROL, List.of(CancelJob.getDefaultInstance()),
                    Topics.JOBS_STATUS,
                            List.of(
                                    JobStatusChanged.getDefaultInstance(),
                                    JobFailed.getDefaultInstance()),
                    Topics.DATASETS_INGESTED, List.of(DatasetIngested.getDefaultInstance()),
                    Topics.DATASETS_PREPARED, List.of(DatasetPrepared.getDefaultInstance()),
                    Topics.TRAINING_PROGRESS, List.of(TrainingProgress.getDefaultInstance()),
                    Topics.TRAINING_COMPLETED, List.of(TrainingCompleted.getDefaultInstance()),
                    Topics.EVALUATIONS_COMPLETED, List.of(EvaluationCompleted.getDefaultInstance()),
                    Topics.MODELS_REGISTERED, List.of(ModelRegistered.getDefaultInstance()),
                    Topics.MODELS_CHANGED, List.of(ModelChanged.getDefaultInstance()));

    private EventTypes() {}

    /** The event types {@code topic} carries, the first being the default; empty if unknown. */
    public static List<Message> forTopic(String topic) {
        String source =
                topic.endsWith(Topics.DLQ_SUFFIX)
                        ? topic.substring(0, topic.length() - Topics.DLQ_SUFFIX.length())
                        : topic;
        return BY_TOPIC.getOrDefault(source, List.of());
    }

    /** The {@code ce_type} of a message. */
    public static String typeOf(Message message) {
        return message.getDescriptorForType().getFullName();
    }

    /** The default instance of the message named by {@code ceType}, if it is a platform event. */
    public static Optional<Message> forType(String ceType) {
        return Optional.ofNullable(BY_TYPE.get(ceType));
    }

    public static boolean isUserAuthored(Descriptor descriptor) {
        return USER_AUTHORED.contains(descriptor.getFullName());
    }

    /** Every platform event type. */
    public static Set<String> all() {
        return BY_TYPE.keySet();
    }
}
