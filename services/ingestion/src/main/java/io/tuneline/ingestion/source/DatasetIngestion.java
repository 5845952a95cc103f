package io.tuneline.ingestion.source;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import com.google.protobuf.util.Timestamps;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.ArtifactStoreException;
import io.tuneline.common.store.ObjectChangedException;
import io.tuneline.common.store.S3Uri;
import io.tuneline.ingestion.config.IngestionConfig;
import io.tuneline.ingestion.metrics.IngestionMetrics;
import io.tuneline.ingestion.validate.DatasetInvalidException;
import io.tuneline.ingestion.validate.DatasetValidator;
import io.tuneline.ingestion.validate.RecordFormat;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.DatasetFormat;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.Task;
import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;
import org.jboss.logging.Logger;

/**
 * Fetches a job's dataset into {@code datasets/{jobId}/raw/} unchanged (with its sha256), then
 * validates it by streaming the stored copy (gzip detected by its magic bytes, the format taken
 * from the job or detected from the first line) and names the valid records in one canonical shape
 * for preprocessing: the raw copy itself when it is already those records byte for byte, else
 * {@code datasets/{jobId}/records.jsonl}, written with them. Supported today: inline records and
 * {@code s3://} objects (the platform's store or another endpoint) and {@code http(s)://} URLs;
 * JSON Lines, CSV and TSV for sequence classification, the same and plain text for causal LM
 * (instruction, chat or text records).
 */
public final class DatasetIngestion {
    private static final JsonFormat.Printer STRUCT =
            JsonFormat.printer().omittingInsignificantWhitespace();

    private static final Logger LOG = Logger.getLogger(DatasetIngestion.class);

    private final ArtifactStore store;
    private final IngestionConfig config;
    private final HttpSource http;
    private final ExternalS3Source external;

    private final IngestionMetrics metrics;

    public DatasetIngestion(ArtifactStore store, IngestionConfig config, IngestionMetrics metrics) {
        this.store = store;
        this.config = config;
        this.metrics = metrics;
        this.http = new HttpSource(config.http());
        this.external = new ExternalS3Source(config.s3Credentials(), http);
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
        return ingest(job, ProgressListener.NONE);
    }

    /**
     * Told how far validation has got: the percent of the stored (compressed) bytes read and the
     * records read so far; see {@code tuneline.ingestion.progress-interval}.
     */
    @FunctionalInterface
    public interface ProgressListener {
        ProgressListener NONE = (percent, records) -> {};

        void progress(double percent, long records);
    }

    /**
     * Fetches, stores and validates the job's dataset, telling {@code progress} how far validation
     * has got while it runs (on this thread).
     */
    public DatasetIngested ingest(JobRequested job, ProgressListener progress) throws IOException {
        if (job.getTask() != Task.TASK_SEQUENCE_CLASSIFICATION
                && job.getTask() != Task.TASK_CAUSAL_LM) {
            throw new DatasetInvalidException(
                    "TASK_UNSUPPORTED",
                    "ingestion handles TASK_SEQUENCE_CLASSIFICATION and TASK_CAUSAL_LM datasets,"
                            + " not "
                            + job.getTask(),
                    java.util.List.of());
        }
        try {
            return ingestOnce(job, progress);
        } catch (ObjectChangedException first) {
            // The source object was replaced between its stat and the copy or the read: once more,
            // from its new version.
            LOG.warnf("%s; ingesting it again from the start", first.getMessage());
            try {
                return ingestOnce(job, progress);
            } catch (ObjectChangedException again) {
                throw new DatasetInvalidException(
                        "SOURCE_CHANGED",
                        "dataset.uri "
                                + job.getDataset().getUri()
                                + " was replaced twice while it was being ingested; send the job"
                                + " again once it is written",
                        java.util.List.of());
            }
        }
    }

    private DatasetIngested ingestOnce(JobRequested job, ProgressListener progress)
            throws IOException {
        DatasetSpec spec = job.getDataset();
        long started = System.nanoTime();
        Fetched fetched = fetch(job.getJobId(), spec);
        ArtifactRef raw = fetched.raw();
        S3Uri recordsUri = store.uri("datasets/" + job.getJobId() + "/records.jsonl");
        Path canonical = Files.createTempFile("tuneline-records-", ".jsonl");
        try {
            metrics.stored(raw.getSizeBytes());
            boolean gzip;
            RecordFormat format;
            // Only the head is fetched: closing a whole object's stream early leaves the server
            // sending the rest for nothing. A range of an empty object is refused, so not then.
            long head = raw.getSizeBytes() > 0 ? Math.min(raw.getSizeBytes(), PEEK_RANGE) : -1;
            try (InputStream in = fetched.open(store, head)) {
                BufferedInputStream peek = new BufferedInputStream(in, PEEK_BYTES);
                gzip = isGzip(peek);
                InputStream decoded =
                        gzip
                                ? new BufferedInputStream(new GZIPInputStream(peek), PEEK_BYTES)
                                : peek;
                String first = firstLine(decoded);
                if (first.isEmpty()
                        && (raw.getSizeBytes() == 0
                                || (!gzip && raw.getSizeBytes() <= PEEK_BYTES))) {
                    // Said before any format is guessed: detecting one from nothing would blame the
                    // format ("plain text has no labels") for what is an empty file.
                    throw new DatasetInvalidException(
                            "DATASET_EMPTY",
                            "the dataset is empty: "
                                    + (spec.getSourceCase() == DatasetSpec.SourceCase.URI
                                            ? spec.getUri()
                                            : raw.getUri())
                                    + (raw.getSizeBytes() == 0
                                            ? " has 0 bytes"
                                            : " has only blank lines"),
                            java.util.List.of());
                }
                format =
                        spec.getFormat() == DatasetFormat.DATASET_FORMAT_UNSPECIFIED
                                ? RecordFormat.detect(first)
                                : RecordFormat.of(spec.getFormat());
            }
            LOG.infof(
                    "dataset is %s%s (%s)",
                    format.proto(),
                    gzip ? ", gzip-compressed" : "",
                    spec.getFormat() == DatasetFormat.DATASET_FORMAT_UNSPECIFIED
                            ? "detected from its first line"
                            : "as the job says");
            DatasetValidator.Result result;
            ArtifactRef records;
            MessageDigest rawDigest = ArtifactStore.sha256();
            boolean hashWhileValidating = raw.getSha256().isEmpty();
            try (CanonicalOutput out =
                    new CanonicalOutput(
                            canonical,
                            n -> fetched.open(store, n),
                            config.maxLineBytes() + (2L << 20))) {
                try (io.tuneline.common.store.CountingInputStream in =
                                new io.tuneline.common.store.CountingInputStream(
                                        hashWhileValidating
                                                ? new DigestInputStream(
                                                        fetched.open(store, -1), rawDigest)
                                                : fetched.open(store, -1));
                        // The limit holds for what the data expands to as well: a small gzip
                        // stream can inflate to terabytes.
                        // The CSV parser closes what it reads; the stored copy must stay open for
                        // the rest of its bytes to reach the digest below.
                        InputStream open = new KeptOpen(in);
                        InputStream decoded =
                                gzip
                                        ? new SizeLimitedInputStream(
                                                new GZIPInputStream(open),
                                                config.maxBytes(),
                                                "the decompressed dataset")
                                        // Compared with the records on the way: a canonical
                                        // dataset's records are its own bytes.
                                        : out.tap(open)) {
                    result =
                            DatasetValidator.validate(
                                    decoded,
                                    format,
                                    job.getTask(),
                                    spec,
                                    out,
                                    new DatasetValidator.Limits(
                                            config.maxRecords(), config.maxLineBytes()),
                                    new ProgressReporter(
                                            in,
                                            raw.getSizeBytes(),
                                            config.progressInterval(),
                                            System::nanoTime,
                                            progress));
                    // The digest must see every byte, also those a decoder leaves unread (a gzip
                    // trailer's padding).
                    in.transferTo(OutputStream.nullOutputStream());
                } catch (ZipException e) {
                    throw new DatasetInvalidException(
                            "DATASET_INVALID",
                            "the dataset starts like gzip but is not valid gzip: " + e.getMessage(),
                            java.util.List.of());
                }
                // The raw copy must be there before anything names it.
                fetched.awaitCopy();
                if (hashWhileValidating) {
                    raw =
                            raw.toBuilder()
                                    .setSha256(HexFormat.of().formatHex(rawDigest.digest()))
                                    .build();
                }
                metrics.validated(result.valid(), result.rejected());
                metrics.took(java.time.Duration.ofNanos(System.nanoTime() - started));
                DatasetValidator.enforce(result, spec);
                if (!gzip && out.finish(raw.getSizeBytes())) {
                    // Already canonical byte for byte (every record valid, written as this service
                    // writes them): the records are the raw copy, named with its sha256 and size.
                    // A second object of the same bytes would be a second full copy, which on a
                    // store that rewrites what it copies is most of ingestion's time.
                    records = raw;
                } else {
                    out.finish(-1);
                    records = store.put(recordsUri, canonical, "application/jsonl");
                }
            }
            DatasetIngested ingested =
                    DatasetIngested.newBuilder()
                            .setJobId(job.getJobId())
                            .setJob(job)
                            .setRaw(raw)
                            .setRecords(records)
                            .setFormat(format.proto())
                            .setGzip(gzip)
                            .setFormatDetected(
                                    spec.getFormat() == DatasetFormat.DATASET_FORMAT_UNSPECIFIED)
                            .setValidRecords(result.valid())
                            .setBadRecords(result.bad())
                            .addAllBadRecordSamples(result.samples())
                            .putAllLabelCounts(result.labelCounts())
                            .setRecordShape(result.shape().value())
                            .setIngestedAt(Timestamps.now())
                            .build();
            store.put(
                    store.uri(marker(job.getJobId())),
                    JsonFormat.printer().print(ingested).getBytes(StandardCharsets.UTF_8),
                    "application/json");
            return ingested;
        } catch (IOException | RuntimeException | Error e) {
            // A copy still in flight is waited for, so nothing of a failed ingestion is still being
            // written after it has failed; records.jsonl is only written once validation passed.
            fetched.awaitCopyQuietly();
            throw e;
        } finally {
            Files.deleteIfExists(canonical);
        }
    }

    /** Server-side copies run on these, alongside the validation pass that reads the source. */
    private static final ExecutorService COPIES =
            Executors.newCachedThreadPool(
                    r -> {
                        Thread t = new Thread(r, "ingestion-copy");
                        t.setDaemon(true);
                        return t;
                    });

    /**
     * The stored raw copy and where validation reads it from: the copy itself, or — while a
     * server-side copy of an object in the platform's store is under way — the source object, on
     * the condition that it still has the ETag the copy was made from (so both see the same bytes).
     */
    private record Fetched(ArtifactRef raw, S3Uri source, String etag, Future<?> copying) {
        static Fetched stored(ArtifactRef raw) {
            return new Fetched(raw, null, null, null);
        }

        /** The bytes to validate, or their first {@code length} when that is not -1. */
        InputStream open(ArtifactStore store, long length) throws IOException {
            if (etag != null) {
                return store.get(source, etag, length);
            }
            if (length >= 0) {
                return store.get(S3Uri.parse(raw.getUri()), null, length);
            }
            return raw.getSha256().isEmpty()
                    ? store.get(S3Uri.parse(raw.getUri()))
                    : store.get(raw);
        }

        void awaitCopy() throws IOException {
            if (copying == null) {
                return;
            }
            try {
                copying.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new java.io.InterruptedIOException("interrupted copying " + source);
            } catch (ExecutionException e) {
                if (e.getCause() instanceof RuntimeException r) {
                    throw r;
                }
                throw new IOException(e.getCause());
            }
        }

        void awaitCopyQuietly() {
            if (copying != null) {
                try {
                    copying.get();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                } catch (ExecutionException e) {
                    // The failure the caller is handling comes first.
                }
            }
        }
    }

    /** Streams a body of unknown size into the store, keeping the limit's own error. */
    private ArtifactRef storeLimited(InputStream in, String key) {
        try {
            return store.put(store.uri(key), in, -1, "application/octet-stream");
        } catch (ArtifactStoreException e) {
            throw SizeLimitedInputStream.limitBehind(e).orElseThrow(() -> e);
        }
    }

    /** A stream whose {@code close} leaves the stream below open for its owner to close. */
    private static final class KeptOpen extends java.io.FilterInputStream {
        KeptOpen(InputStream in) {
            super(in);
        }

        @Override
        public void close() {}
    }

    /** Enough to see the first line of any sane dataset, and gzip's header. */
    static final int PEEK_BYTES = 64 * 1024;

    /** Stored bytes fetched for that: more than gzip can need for {@link #PEEK_BYTES} decoded. */
    static final long PEEK_RANGE = 1 << 20;

    static boolean isGzip(BufferedInputStream in) throws IOException {
        in.mark(2);
        int b1 = in.read();
        int b2 = in.read();
        in.reset();
        // RFC 1952: every gzip member starts with 0x1f 0x8b.
        return b1 == 0x1f && b2 == 0x8b;
    }

    /** The first non-empty line within the first {@link #PEEK_BYTES}, as UTF-8. */
    static String firstLine(InputStream in) throws IOException {
        byte[] head = in.readNBytes(PEEK_BYTES);
        for (String line : new String(head, StandardCharsets.UTF_8).split("\\R")) {
            if (!line.isBlank()) {
                return line;
            }
        }
        return "";
    }

    private Fetched fetch(String jobId, DatasetSpec spec) throws IOException {
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
                return Fetched.stored(
                        store.put(
                                store.uri(prefix + "inline.jsonl"),
                                out.toByteArray(),
                                "application/jsonl"));
            }
            case URI -> {
                String uri = spec.getUri();
                if (uri.startsWith("http://") || uri.startsWith("https://")) {
                    URI source = URI.create(uri);
                    String path = source.getPath() == null ? "" : source.getPath();
                    String file = path.substring(path.lastIndexOf('/') + 1);
                    try (InputStream in = http.open(source)) {
                        return Fetched.stored(
                                storeLimited(
                                        new SizeLimitedInputStream(
                                                in, config.maxBytes(), "dataset.uri " + uri),
                                        prefix + (file.isBlank() ? "dataset" : file)));
                    }
                }
                if (!uri.startsWith("s3://")) {
                    throw new DatasetInvalidException(
                            "SOURCE_UNSUPPORTED",
                            "dataset.uri "
                                    + uri
                                    + ": use an s3:// URI in the platform's store or an http(s):// URL",
                            java.util.List.of());
                }
                S3Uri source = S3Uri.parse(uri);
                if (!spec.getS3Endpoint().isBlank()) {
                    String file = source.key().substring(source.key().lastIndexOf('/') + 1);
                    try (ExternalS3Source.Opened o =
                            external.open(
                                    spec.getS3Endpoint(),
                                    spec.getCredentialsRef(),
                                    source,
                                    size -> {
                                        if (size > config.maxBytes()) {
                                            throw SizeLimitedInputStream.tooLarge(
                                                    "dataset.uri " + uri + " (" + size + " bytes)",
                                                    config.maxBytes());
                                        }
                                    })) {
                        return Fetched.stored(
                                store.put(
                                        store.uri(prefix + (file.isBlank() ? "dataset" : file)),
                                        o.in(),
                                        o.size(),
                                        "application/octet-stream"));
                    }
                }
                ArtifactStore.Stat stat =
                        store.stat(source)
                                .orElseThrow(
                                        () ->
                                                new DatasetInvalidException(
                                                        "SOURCE_NOT_FOUND",
                                                        "dataset.uri "
                                                                + uri
                                                                + " does not exist in the object store",
                                                        java.util.List.of()));
                long size = stat.size();
                if (size > config.maxBytes()) {
                    throw SizeLimitedInputStream.tooLarge(
                            "dataset.uri " + uri + " (" + size + " bytes)", config.maxBytes());
                }
                String file = source.key().substring(source.key().lastIndexOf('/') + 1);
                S3Uri target = store.uri(prefix + file);
                if (size <= ArtifactStore.MAX_COPY_BYTES
                        && (stat.etag() == null || stat.etag().isBlank())) {
                    // No ETag to hold the source to: copy first, then validate the copy.
                    store.copy(source, target);
                    return Fetched.stored(
                            ArtifactRef.newBuilder()
                                    .setUri(target.toString())
                                    .setSizeBytes(size)
                                    .setContentType("application/octet-stream")
                                    .build());
                }
                if (size <= ArtifactStore.MAX_COPY_BYTES) {
                    // Server-side: the bytes never pass through this process. The copy runs while
                    // validation reads the source itself, both on the condition that it still has
                    // this ETag, so they see the same bytes; the sha256 is taken on that read.
                    Future<?> copying =
                            COPIES.submit(() -> store.copy(source, target, stat.etag()));
                    return new Fetched(
                            ArtifactRef.newBuilder()
                                    .setUri(target.toString())
                                    .setSizeBytes(size)
                                    .setContentType("application/octet-stream")
                                    .build(),
                            source,
                            stat.etag(),
                            copying);
                }
                try (InputStream in = store.get(source)) {
                    return Fetched.stored(store.put(target, in, size, "application/octet-stream"));
                }
            }
            default ->
                    throw new DatasetInvalidException(
                            "JOB_INVALID", "dataset has no source", java.util.List.of());
        }
    }
}
