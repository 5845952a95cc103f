package io.tuneline.common.topic;

import java.util.List;
import java.util.stream.Stream;

/**
 * Every Kafka topic of the platform, in one place. Names follow {@code
 * finetune.<entity>.<past-tense-event>}; each has a dead-letter twin {@code <topic>.dlq}. The
 * record key of every topic is the job id, so one job's events stay in order on one partition.
 */
public final class Topics {
    public static final String JOBS_REQUESTED = "finetune.jobs.requested";
    public static final String JOBS_CONTROL = "finetune.jobs.control";
    public static final String JOBS_STATUS = "finetune.jobs.status";
    public static final String DATASETS_INGESTED = "finetune.datasets.ingested";
    public static final String DATASETS_PREPARED = "finetune.datasets.prepared";
    public static final String TRAINING_PROGRESS = "finetune.training.progress";
    public static final String TRAINING_COMPLETED = "finetune.training.completed";
    public static final String EVALUATIONS_COMPLETED = "finetune.evaluations.completed";
    public static final String MODELS_REGISTERED = "finetune.models.registered";
    public static final String MODELS_CHANGED = "finetune.models.changed";

    public static final String DLQ_SUFFIX = ".dlq";

    private Topics() {}

    /** The event topics, without dead-letter topics. */
    public static List<String> events() {
        return List.of(
                JOBS_REQUESTED,
                JOBS_CONTROL,
                JOBS_STATUS,
                DATASETS_INGESTED,
                DATASETS_PREPARED,
                TRAINING_PROGRESS,
                TRAINING_COMPLETED,
                EVALUATIONS_COMPLETED,
                MODELS_REGISTERED,
                MODELS_CHANGED);
    }

    /** The dead-letter topic of {@code topic}. */
    public static String dlq(String topic) {
        return topic + DLQ_SUFFIX;
    }

    /** Every topic the platform uses, dead-letter topics included. */
    public static List<String> all() {
        return events().stream().flatMap(t -> Stream.of(t, dlq(t))).toList();
    }
}
