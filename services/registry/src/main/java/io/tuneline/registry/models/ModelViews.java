package io.tuneline.registry.models;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Instant;
import java.util.List;
import java.util.Map;

/** What the API shows of models and versions. */
public final class ModelViews {
    private ModelViews() {}

    public record ModelView(
            String name,
            String task,
            String description,
            Map<String, String> tags,
            long versions,
            Long latestVersion,
            Long productionVersion,
            Map<String, Long> aliases,
            Instant createdAt,
            Instant updatedAt) {}

    public record VersionView(
            String model,
            long version,
            String stage,
            List<String> aliases,
            String jobId,
            String baseModel,
            String method,
            JsonNode methodParams,
            JsonNode hyperparameters,
            Dataset dataset,
            String primaryMetric,
            JsonNode metrics,
            Gate gate,
            List<Artifact> artifacts,
            String reportUri,
            Instant createdAt) {}

    public record Dataset(String rawSha256, String manifestSha256, JsonNode counts) {}

    public record Gate(boolean passed, List<String> reasons) {}

    /**
     * A stored file of a version. {@code url} is a presigned download link, filled only by the
     * downloads endpoint.
     */
    public record Artifact(
            String name,
            String uri,
            String sha256,
            long sizeBytes,
            String contentType,
            String url) {
        public Artifact withUrl(String presigned) {
            return new Artifact(name, uri, sha256, sizeBytes, contentType, presigned);
        }
    }

    public record TransitionView(
            long version,
            String kind,
            String alias,
            String from,
            String to,
            String actor,
            String reason,
            Instant at) {}

    /** Where a version came from, and what else came from the same places. */
    public record Lineage(
            VersionRef version,
            String jobId,
            String baseModel,
            Dataset dataset,
            String reportUri,
            List<VersionRef> sameDataset,
            List<VersionRef> sameBaseModel) {}

    public record VersionRef(String model, long version, String jobId, String stage) {}

    public record Comparison(
            VersionView a,
            VersionView b,
            Map<String, Double> metricDeltas,
            List<Difference> parameterDifferences) {}

    /** One parameter that differs, by its dotted path ({@code hyperparameters.learning_rate}). */
    public record Difference(String path, JsonNode a, JsonNode b) {}
}
