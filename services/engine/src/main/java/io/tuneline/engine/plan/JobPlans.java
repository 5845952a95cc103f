package io.tuneline.engine.plan;

import io.tuneline.engine.method.JobMethods;
import io.tuneline.proto.v1.Hyperparameters;
import io.tuneline.proto.v1.JobRequested;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalLong;
import java.util.Set;

/**
 * A job ({@code JobRequested}) as the run the estimate plans: the method as the worker builds it
 * ({@link JobMethods}), and the micro-batch, sequence length and accumulation with the defaults
 * {@code job.proto} promises (16, 128, 1: the worker's {@code JobSettings}).
 */
public final class JobPlans {
    /** Labels assumed for a classifier whose labels are known only once the data is read. */
    public static final int DEFAULT_LABELS = 2;

    private JobPlans() {}

    /** The run {@code job} asks for on {@code shape}'s model. */
    public static TrainingPlan of(JobRequested job, ModelShape shape) {
        Hyperparameters h = job.getHyperparameters();
        int batch = h.getBatchSize() > 0 ? h.getBatchSize() : 16;
        int accumulation = Math.max(1, h.getGradientAccumulationSteps());
        return new TrainingPlan(
                shape,
                // The estimate counts prompt tuning's virtual tokens, not their init text's ids.
                JobMethods.of(
                        job.getMethod(),
                        ParameterLayout.of(shape).defaultLoraTargets(),
                        text -> List.of(0)),
                batch,
                h.getMaxSeqLength() > 0 ? h.getMaxSeqLength() : 128,
                accumulation,
                steps(job, (long) batch * accumulation),
                TrainingPlan.Precision.of(h.getPrecision()),
                h.hasModelDropout()
                        ? OptionalDouble.of(h.getModelDropout())
                        : OptionalDouble.empty(),
                h.hasActivationCheckpointing()
                        ? Optional.of(h.getActivationCheckpointing())
                        : Optional.empty());
    }

    /**
     * Optimizer steps of the run: {@code max_steps} when set, else for an inline dataset its
     * training share (default 0.8) in steps of the effective batch times the epochs (default 3);
     * unknown for a dataset that is not read yet.
     */
    static OptionalLong steps(JobRequested job, long effectiveBatch) {
        Hyperparameters h = job.getHyperparameters();
        if (h.getMaxSteps() > 0) {
            return OptionalLong.of(h.getMaxSteps());
        }
        if (!job.getDataset().hasInline()) {
            return OptionalLong.empty();
        }
        int records = job.getDataset().getInline().getRecordsCount();
        double share = job.getSplit().getTrain() > 0 ? job.getSplit().getTrain() : 0.8;
        long train = Math.max(1, Math.round(records * share));
        long perEpoch = (train + effectiveBatch - 1) / effectiveBatch;
        return OptionalLong.of(perEpoch * (h.getEpochs() > 0 ? h.getEpochs() : 3));
    }

    /**
     * A classifier's number of labels: the job's label set, else the distinct labels of an inline
     * dataset, else {@link #DEFAULT_LABELS} (the head is a small part of any model).
     */
    public static int labels(JobRequested job) {
        if (job.getDataset().getLabelsCount() > 0) {
            return job.getDataset().getLabelsCount();
        }
        String field =
                job.getDataset().getFields().getLabel().isEmpty()
                        ? "label"
                        : job.getDataset().getFields().getLabel();
        Set<String> seen = new HashSet<>();
        job.getDataset()
                .getInline()
                .getRecordsList()
                .forEach(
                        r -> {
                            var v = r.getFieldsMap().get(field);
                            if (v != null) {
                                seen.add(v.toString());
                            }
                        });
        return seen.isEmpty() ? DEFAULT_LABELS : seen.size();
    }

    /** Whether the job's classifier head reads BERT's pooler, when it names a head. */
    public static Optional<Boolean> pooler(JobRequested job) {
        String head = job.getHyperparameters().getClassifierHead().toLowerCase(Locale.ROOT);
        return head.isEmpty() ? Optional.empty() : Optional.of(head.equals("cls_pooler"));
    }

    /** {@code job} with another micro-batch and accumulation, as auto-fit records it. */
    public static JobRequested withBatch(JobRequested job, TrainingPlan plan) {
        JobRequested.Builder b = job.toBuilder();
        b.getHyperparametersBuilder()
                .setBatchSize(plan.microBatch())
                .setGradientAccumulationSteps(plan.accumulation());
        return b.build();
    }
}
