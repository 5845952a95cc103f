package io.tuneline.ingestion.source;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import com.google.protobuf.util.Timestamps;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.S3Uri;
import io.tuneline.ingestion.validate.DatasetInvalidException;
import io.tuneline.ingestion.validate.JsonlClassificationValidator;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.DatasetFormat;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.Task;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Optional;

/**
 * Fetches a job's dataset into {@code datasets/{jobId}/raw/} unchanged (with its sha256), then
 * validates it by streaming the stored copy. Supported today: inline records and {@code s3://}
 * objects in the platform's store, as JSON Lines for sequence classification.
 */
public final class DatasetIngestion {
    private static final JsonFormat.Printer STRUCT =
            JsonFormat.printer().omittingInsignificantWhitespace();

    private final ArtifactStore store;

    public DatasetIngestion(ArtifactStore store) {
        this.store = store;
    }

    /** The marker of a finished ingestion, so a redelivered job is not ingested twice. */
    public static String marker(String jobId) {
        return "datasets/" + jobId + "/ingested.json";
    }

    public Optional<DatasetIngested> previous(String jobId) {
        S3Uri uri = store.uri(marker(jobId));
        if (!store.exists(uri)) {
            return Optional.empty();
        }
        try (InputStream in = store.get(uri)) {
            DatasetIngested.Builder b = DatasetIngested.newBuilder();
            JsonFormat.parser()
                    .ignoringUnknownFields()
                    .merge(new String(in.readAllBytes(), StandardCharsets.UTF_8), b);
            return Optional.of(b.build());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public DatasetIngested ingest(JobRequested job) throws IOException {
        DatasetSpec spec = job.getDataset();
        if (job.getTask() != Task.TASK_SEQUENCE_CLASSIFICATION) {
            throw new DatasetInvalidException(
                    "TASK_UNSUPPORTED",
                    "ingestion handles TASK_SEQUENCE_CLASSIFICATION datasets today, not "
                            + job.getTask(),
                    java.util.List.of());
        }
        if (spec.getFormat() != DatasetFormat.DATASET_FORMAT_UNSPECIFIED
                && spec.getFormat() != DatasetFormat.DATASET_FORMAT_JSONL) {
            throw new DatasetInvalidException(
                    "FORMAT_UNSUPPORTED",
                    "format " + spec.getFormat() + " is not read yet; JSON Lines is",
                    java.util.List.of());
        }
        ArtifactRef raw = fetch(job.getJobId(), spec);
        JsonlClassificationValidator.Result result;
        try (InputStream in = store.get(raw)) {
            result = JsonlClassificationValidator.validate(in, spec);
        }
        JsonlClassificationValidator.enforce(result, spec);
        DatasetIngested ingested =
                DatasetIngested.newBuilder()
                        .setJobId(job.getJobId())
                        .setJob(job)
                        .setRaw(raw)
                        .setFormat(DatasetFormat.DATASET_FORMAT_JSONL)
                        .setFormatDetected(
                                spec.getFormat() == DatasetFormat.DATASET_FORMAT_UNSPECIFIED)
                        .setValidRecords(result.valid())
                        .setBadRecords(result.bad())
                        .addAllBadRecordSamples(result.samples())
                        .putAllLabelCounts(result.labelCounts())
                        .setRecordShape("classification")
                        .setIngestedAt(Timestamps.now())
                        .build();
        store.put(
                store.uri(marker(job.getJobId())),
                JsonFormat.printer().print(ingested).getBytes(StandardCharsets.UTF_8),
                "application/json");
        return ingested;
    }

    private ArtifactRef fetch(String jobId, DatasetSpec spec) throws IOException {
        String prefix = "datasets/" + jobId + "/raw/";
        switch (spec.getSourceCase()) {
            case INLINE -> {
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                for (var record : spec.getInline().getRecordsList()) {
                    try {
                        out.write(STRUCT.print(record).getBytes(StandardCharsets.UTF_8));
                    } catch (InvalidProtocolBufferException e) {
                        throw new IOException("inline record cannot be written as JSON", e);
                    }
                    out.write('\n');
                }
                return store.put(
                        store.uri(prefix + "inline.jsonl"), out.toByteArray(), "application/jsonl");
            }
            case URI -> {
                String uri = spec.getUri();
                if (!uri.startsWith("s3://")) {
                    throw new DatasetInvalidException(
                            "SOURCE_UNSUPPORTED",
                            "dataset.uri "
                                    + uri
                                    + ": http(s) sources are not fetched yet; upload the file to the object store and use its s3:// URI",
                            java.util.List.of());
                }
                if (!spec.getS3Endpoint().isBlank()) {
                    throw new DatasetInvalidException(
                            "SOURCE_UNSUPPORTED",
                            "dataset.s3_endpoint: other S3 endpoints are not supported yet; copy the file into the platform's store",
                            java.util.List.of());
                }
                S3Uri source = S3Uri.parse(uri);
                long size =
                        store.size(source)
                                .orElseThrow(
                                        () ->
                                                new DatasetInvalidException(
                                                        "SOURCE_NOT_FOUND",
                                                        "dataset.uri "
                                                                + uri
                                                                + " does not exist in the object store",
                                                        java.util.List.of()));
                String file = source.key().substring(source.key().lastIndexOf('/') + 1);
                try (InputStream in = store.get(source)) {
                    return store.put(
                            store.uri(prefix + file), in, size, "application/octet-stream");
                }
            }
            default ->
                    throw new DatasetInvalidException(
                            "JOB_INVALID", "dataset has no source", java.util.List.of());
        }
    }
}
