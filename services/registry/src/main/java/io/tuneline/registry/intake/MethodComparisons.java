package io.tuneline.registry.intake;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.S3Uri;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.EvaluationCompleted;
import io.tuneline.proto.v1.GateResult;
import io.tuneline.registry.comparison.ComparisonPage;
import io.tuneline.registry.comparison.MethodComparison;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Collects a method-comparison job's evaluations, one per method, in the object store ({@code
 * registry/comparisons/{jobId}/{method}.json}: they arrive as separate events, possibly across a
 * restart), and once all are in writes the comparison report and picks the method to register.
 * Every event of a job comes in order on one partition, so no two of them race here.
 */
@ApplicationScoped
public class MethodComparisons {
    private static final JsonFormat.Printer PRINTER =
            JsonFormat.printer().preservingProtoFieldNames();
    private static final JsonFormat.Parser PARSER = JsonFormat.parser().ignoringUnknownFields();

    private final ArtifactStore store;
    private final ObjectMapper json;

    @Inject
    public MethodComparisons(ArtifactStore store, ObjectMapper json) {
        this.store = store;
        this.json = json;
    }

    /** Where a comparison stands after one more method's evaluation. */
    public sealed interface Progress {
        /** Methods still to be evaluated. */
        record Waiting(int done, int total, List<String> missing) implements Progress {}

        /**
         * Every method is evaluated. {@code chosen} is the evaluation to register: the best
         * method's by the primary metric among those that passed the gate; when none passed, the
         * best of all with every method's gate reasons, so that registration refuses it (or
         * registers it when the job asks to register on gate failure).
         */
        record Complete(
                MethodComparison comparison,
                EvaluationCompleted chosen,
                ArtifactRef json,
                ArtifactRef html)
                implements Progress {}
    }

    public Progress record(EvaluationCompleted evaluation) {
        String jobId = evaluation.getJobId();
        List<String> methods = evaluation.getTraining().getComparedMethodsList();
        store.put(
                uri(jobId, evaluation.getTraining().getComparedMethod()),
                print(evaluation).getBytes(StandardCharsets.UTF_8),
                "application/json");
        List<String> missing = methods.stream().filter(m -> !store.exists(uri(jobId, m))).toList();
        if (!missing.isEmpty()) {
            return new Progress.Waiting(methods.size() - missing.size(), methods.size(), missing);
        }
        List<EvaluationCompleted> all = new ArrayList<>();
        for (String m : methods) {
            all.add(read(uri(jobId, m)));
        }
        MethodComparison comparison = MethodComparison.of(jobId, all);
        Optional<MethodComparison.Method> passing = comparison.best(true);
        Optional<MethodComparison.Method> best = passing.or(() -> comparison.best(false));
        EvaluationCompleted chosen =
                best.map(b -> all.get(methods.indexOf(b.name()))).orElse(all.get(0));
        if (passing.isEmpty()) {
            List<String> reasons = new ArrayList<>();
            for (MethodComparison.Method m : comparison.methods()) {
                m.gateReasons().forEach(r -> reasons.add(m.name() + ": " + r));
                if (m.gateReasons().isEmpty()) {
                    reasons.add(m.name() + ": no " + comparison.primaryMetric() + " measured");
                }
            }
            chosen =
                    chosen.toBuilder()
                            .setGate(
                                    GateResult.newBuilder().setPassed(false).addAllReasons(reasons))
                            .build();
        }
        String prefix = "reports/" + jobId + "/";
        ArtifactRef report;
        try {
            report =
                    store.put(
                            store.uri(prefix + "comparison.json"),
                            json.writerWithDefaultPrettyPrinter()
                                    .writeValueAsBytes(comparison.json(best)),
                            "application/json");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the comparison of " + jobId, e);
        }
        ArtifactRef page =
                store.put(
                        store.uri(prefix + "comparison.html"),
                        ComparisonPage.html(comparison, best).getBytes(StandardCharsets.UTF_8),
                        "text/html; charset=utf-8");
        return new Progress.Complete(comparison, chosen, report, page);
    }

    private S3Uri uri(String jobId, String method) {
        return store.uri("registry/comparisons/" + jobId + "/" + method + ".json");
    }

    private EvaluationCompleted read(S3Uri uri) {
        try (InputStream in = store.get(uri)) {
            EvaluationCompleted.Builder b = EvaluationCompleted.newBuilder();
            PARSER.merge(new String(in.readAllBytes(), StandardCharsets.UTF_8), b);
            return b.build();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + uri, e);
        }
    }

    private static String print(EvaluationCompleted e) {
        try {
            return PRINTER.print(e);
        } catch (InvalidProtocolBufferException ex) {
            throw new IllegalStateException(ex);
        }
    }
}
