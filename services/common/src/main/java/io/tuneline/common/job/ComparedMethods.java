package io.tuneline.common.job;

import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.MethodSpec;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The methods of a method-comparison job ({@code JobRequested.compare_methods}), each with the name
 * its run, its evaluation and its row in the comparison report go by. Training, evaluation and the
 * registry name them the same way through this one class.
 */
public final class ComparedMethods {
    private ComparedMethods() {}

    /** One method of the comparison: its name ("lora", "lora-2") and its spec. */
    public record Member(String name, MethodSpec method) {}

    /** Whether {@code job} compares methods instead of training one. */
    public static boolean isComparison(JobRequested job) {
        return job.getCompareMethodsCount() > 0;
    }

    /**
     * Every method of {@code job} in its order, named by kind; a kind listed again gets "-2", "-3"
     * (with other parameters, or validation refuses it as a duplicate).
     */
    public static List<Member> of(JobRequested job) {
        Map<String, Integer> seen = new HashMap<>();
        List<Member> out = new ArrayList<>();
        for (MethodSpec m : job.getCompareMethodsList()) {
            String kind = kindName(m);
            int n = seen.merge(kind, 1, Integer::sum);
            out.add(new Member(n == 1 ? kind : kind + "-" + n, m));
        }
        return out;
    }

    /** The names of {@link #of}, in order. */
    public static List<String> names(JobRequested job) {
        return of(job).stream().map(Member::name).toList();
    }

    /**
     * The job one member trains: {@code method} set to the member's, {@code compare_methods}
     * cleared, the member's own learning rate (when it names one) as {@code
     * hyperparameters.learning_rate}, everything else (data, splits, seed, step budget, evaluation)
     * as the job has it.
     */
    public static JobRequested memberJob(JobRequested job, Member member) {
        JobRequested.Builder b =
                job.toBuilder()
                        .clearCompareMethods()
                        .setMethod(member.method().toBuilder().clearLearningRate());
        if (member.method().getLearningRate() > 0) {
            b.getHyperparametersBuilder().setLearningRate(member.method().getLearningRate());
        }
        return b.build();
    }

    /** "full" for an unset kind, "p-tuning" for P_TUNING: lower case, hyphenated. */
    public static String kindName(MethodSpec m) {
        return switch (m.getKindCase()) {
            case KIND_NOT_SET -> "full";
            default -> m.getKindCase().name().toLowerCase(Locale.ROOT).replace('_', '-');
        };
    }
}
