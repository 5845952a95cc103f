package io.tuneline.training.run;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.datatype.jsr310.JavaTimeModule;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.util.JsonFormat;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.S3Uri;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.TrainingCompleted;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Optional;

/**
 * The training controller's state in the object store, next to the run's checkpoints and model:
 *
 * <pre>
 * runs/{jobId}/controller.json   RunRecord: attempt, status, reason
 * runs/{jobId}/input.json        the DatasetPrepared event the run trains on (worker input)
 * runs/{jobId}/result.json       TrainingCompleted without job and dataset (worker output, last)
 * runs/{jobId}/comparison.json   of a method-comparison job: its methods' names, in order
 * </pre>
 *
 * <p>A method-comparison job trains one run per method, each under its own {@code
 * runs/{jobId}.{method}/} with the files above; "." cannot occur in a job id, so these never
 * collide with another job's.
 */
public final class RunStore {
    private static final String RECORD = "controller.json";
    private static final String COMPARISON = "comparison.json";
    private static final ObjectMapper JSON =
            new ObjectMapper()
                    .registerModule(new JavaTimeModule())
                    .disable(SerializationFeature.WRITE_DATES_AS_TIMESTAMPS);
    private static final JsonFormat.Printer PRINTER =
            JsonFormat.printer().preservingProtoFieldNames();
    private static final JsonFormat.Parser PARSER = JsonFormat.parser().ignoringUnknownFields();

    private final ArtifactStore store;

    public RunStore(ArtifactStore store) {
        this.store = store;
    }

    public static String runPrefix(String jobId) {
        return "runs/" + jobId + "/";
    }

    public Optional<RunRecord> record(String jobId) {
        S3Uri uri = store.uri(runPrefix(jobId) + RECORD);
        if (!store.exists(uri)) {
            return Optional.empty();
        }
        try (InputStream in = store.get(uri)) {
            return Optional.of(JSON.readValue(in, RunRecord.class));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + uri, e);
        }
    }

    public void save(RunRecord record) {
        try {
            store.put(
                    store.uri(runPrefix(record.jobId()) + RECORD),
                    JSON.writeValueAsBytes(record),
                    "application/json");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the run record of " + record.jobId(), e);
        }
    }

    /** Every run the controller knows, for recovery after a restart. */
    public List<RunRecord> all() {
        return store.list(store.uri("runs/")).stream()
                .filter(uri -> uri.key().endsWith("/" + RECORD))
                .map(uri -> uri.key().split("/")[1])
                .map(this::record)
                .flatMap(Optional::stream)
                .toList();
    }

    public void writeInput(DatasetPrepared prepared) {
        writeInput(prepared.getJobId(), prepared);
    }

    /** The input of run {@code runId}, which is the job's id or one comparison method's. */
    public void writeInput(String runId, DatasetPrepared prepared) {
        store.put(
                store.uri(runPrefix(runId) + "input.json"),
                print(prepared).getBytes(StandardCharsets.UTF_8),
                "application/json");
    }

    public DatasetPrepared input(String jobId) {
        return read(jobId, "input.json", DatasetPrepared.newBuilder())
                .map(b -> (DatasetPrepared) b)
                .orElseThrow(
                        () ->
                                new IllegalStateException(
                                        "runs/" + jobId + "/input.json is missing"));
    }

    /** The run id of method {@code method} of comparison job {@code jobId}. */
    public static String comparisonRunId(String jobId, String method) {
        return jobId + "." + method;
    }

    /** The methods of comparison job {@code jobId}, once all of its runs were queued. */
    public Optional<List<String>> comparison(String jobId) {
        S3Uri uri = store.uri(runPrefix(jobId) + COMPARISON);
        if (!store.exists(uri)) {
            return Optional.empty();
        }
        try (InputStream in = store.get(uri)) {
            return Optional.of(List.of(JSON.readValue(in, String[].class)));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + uri, e);
        }
    }

    public void writeComparison(String jobId, List<String> methods) {
        try {
            store.put(
                    store.uri(runPrefix(jobId) + COMPARISON),
                    JSON.writeValueAsBytes(methods),
                    "application/json");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the comparison of " + jobId, e);
        }
    }

    /** The worker's result, present only when it finished writing the model. */
    public Optional<TrainingCompleted> result(String jobId) {
        return read(jobId, "result.json", TrainingCompleted.newBuilder())
                .map(b -> (TrainingCompleted) b);
    }

    public void writeResult(TrainingCompleted result) {
        writeResult(result.getJobId(), result);
    }

    /** The result of run {@code runId}, which is the job's id or one comparison method's. */
    public void writeResult(String runId, TrainingCompleted result) {
        store.put(
                store.uri(runPrefix(runId) + "result.json"),
                print(result).getBytes(StandardCharsets.UTF_8),
                "application/json");
    }

    private Optional<Message> read(String jobId, String name, Message.Builder builder) {
        S3Uri uri = store.uri(runPrefix(jobId) + name);
        if (!store.exists(uri)) {
            return Optional.empty();
        }
        try (InputStream in = store.get(uri)) {
            PARSER.merge(new String(in.readAllBytes(), StandardCharsets.UTF_8), builder);
            return Optional.of(builder.build());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + uri, e);
        }
    }

    private static String print(Message m) {
        try {
            return PRINTER.print(m);
        } catch (InvalidProtocolBufferException e) {
            throw new IllegalStateException(e);
        }
    }
}
