package io.tuneline.ingestion.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.S3Uri;
import io.tuneline.common.store.StoreSettings;
import io.tuneline.ingestion.config.IngestionConfig;
import io.tuneline.ingestion.metrics.IngestionMetrics;
import io.tuneline.ingestion.source.DatasetIngestion;
import io.tuneline.proto.v1.DatasetFormat;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.Task;
import io.tuneline.testing.InMemoryS3Server;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SplittableRandom;

/**
 * Ingestion of one large JSON Lines object from the platform's store ({@code s3://} source,
 * classification records) against a raw read of the same object from the same store, in pairs in
 * one JVM so that a load change of the shared machine hits both halves of a pair. Prints one JSON
 * line: each pair's MB/s and ratio, their median, and as a breakdown one server-side copy of the
 * object alone (S3 CopyObject, which ingestion makes at least once, for raw/; its ratio to the raw
 * read bounds ingestion's) and the validation alone (local file to nowhere). The store is an S3
 * server on local disk in this JVM, like {@code PreprocessingThroughput}'s; {@code
 * bench/ingestion-throughput.sh} runs it.
 *
 * <p>Arguments: working directory, megabytes of data, pairs (default 3).
 */
public final class IngestionThroughput {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String KEY = "uploads/bench/reviews.jsonl";

    private IngestionThroughput() {}

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]);
        long megabytes = Long.parseLong(args[1]);
        int pairs = args.length > 2 ? Integer.parseInt(args[2]) : 3;
        Files.createDirectories(dir.resolve("s3"));
        Path data = dir.resolve("ingestion-" + megabytes + "mb.jsonl");
        long lines = Files.exists(data) ? countLines(data) : generate(data, megabytes << 20);

        try (InMemoryS3Server server = InMemoryS3Server.onDisk(dir.resolve("s3"));
                ArtifactStore store =
                        server.newStore("tuneline", StoreSettings.DEFAULT_PART_SIZE)) {
            S3Uri source = store.uri(KEY);
            store.put(source, data, "application/jsonl");
            double mb = Files.size(data) / 1e6;
            DatasetIngestion ingestion =
                    new DatasetIngestion(
                            store, config(), new IngestionMetrics(new SimpleMeterRegistry()));

            // One untimed round warms the JIT and the store's caches for both sides alike.
            rawRead(store, source);
            ingestion.ingest(job("warm-up", source));

            ArrayNode rows = JSON.createArrayNode();
            List<Double> ratios = new ArrayList<>();
            String records = "";
            for (int i = 0; i < pairs; i++) {
                long cpu0 = cpuNanos();
                double raw = rawRead(store, source);
                long cpu1 = cpuNanos();
                long started = System.nanoTime();
                DatasetIngested ingested = ingestion.ingest(job("bench-" + i, source));
                double seconds = (System.nanoTime() - started) / 1e9;
                long cpu2 = cpuNanos();
                // What ingestion cannot go below on this store: it must make one server-side copy
                // (raw/) of the whole object, and S3Proxy's copy reads, hashes (MD5) and writes it.
                long copyStarted = System.nanoTime();
                long cpu3 = cpuNanos();
                store.copy(source, store.uri("copies/" + i));
                long cpu4 = cpuNanos();
                double copy = (System.nanoTime() - copyStarted) / 1e9;
                double validation = validateLocally(data);
                if (ingested.getValidRecords() != lines || ingested.getBadRecords() != 0) {
                    throw new IllegalStateException(
                            "ingestion kept "
                                    + ingested.getValidRecords()
                                    + " valid and "
                                    + ingested.getBadRecords()
                                    + " bad records of "
                                    + lines
                                    + " lines in "
                                    + data);
                }
                // Which object preprocessing is pointed at: the raw copy itself (the data is
                // canonical as generated) or a records.jsonl beside it.
                records =
                        ingested.getRecords().getUri().equals(ingested.getRaw().getUri())
                                ? "raw copy"
                                : ingested.getRecords().getUri();
                ObjectNode row = rows.addObject();
                row.put("raw_read_mb_per_second", round(mb / raw));
                row.put("ingestion_mb_per_second", round(mb / seconds));
                row.put("server_copy_mb_per_second", round(mb / copy));
                row.put("server_copy_ratio", round(raw / copy));
                row.put("validation_alone_mb_per_second", round(mb / validation));
                row.put("ratio", round(raw / seconds));
                // CPU time of the whole JVM (client and S3 server alike): the work each side does,
                // which the load of a shared machine changes less than the wall time.
                row.put("raw_read_cpu_seconds", round((cpu1 - cpu0) / 1e9));
                row.put("ingestion_cpu_seconds", round((cpu2 - cpu1) / 1e9));
                row.put("server_copy_cpu_seconds", round((cpu4 - cpu3) / 1e9));
                ratios.add(raw / seconds);
            }
            ObjectNode out = JSON.createObjectNode();
            out.put("bytes", Files.size(data));
            out.put("records", lines);
            out.put("records_object", records);
            out.put("cores", Runtime.getRuntime().availableProcessors());
            out.put("max_heap_mb", Runtime.getRuntime().maxMemory() >> 20);
            out.put("ratio_median", round(median(ratios)));
            out.put("ratio_min", round(ratios.stream().mapToDouble(d -> d).min().orElse(0)));
            out.put("ratio_max", round(ratios.stream().mapToDouble(d -> d).max().orElse(0)));
            out.put("ingestion_mb_per_second", median(rows, "ingestion_mb_per_second"));
            out.put("raw_read_mb_per_second", median(rows, "raw_read_mb_per_second"));
            out.put("server_copy_mb_per_second", median(rows, "server_copy_mb_per_second"));
            out.put("server_copy_ratio_median", median(rows, "server_copy_ratio"));
            out.put(
                    "validation_alone_mb_per_second",
                    median(rows, "validation_alone_mb_per_second"));
            out.put("raw_read_cpu_seconds", median(rows, "raw_read_cpu_seconds"));
            out.put("ingestion_cpu_seconds", median(rows, "ingestion_cpu_seconds"));
            out.put("server_copy_cpu_seconds", median(rows, "server_copy_cpu_seconds"));
            out.set("pairs", rows);
            System.out.println(JSON.writeValueAsString(out));
        }
    }

    /** CPU time this JVM has used so far, every thread. */
    static long cpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean)
                        java.lang.management.ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime();
    }

    /** Seconds to read the whole object through the store client, bytes only. */
    static double rawRead(ArtifactStore store, S3Uri uri) throws IOException {
        long started = System.nanoTime();
        try (InputStream in = store.get(uri)) {
            in.transferTo(OutputStream.nullOutputStream());
        }
        return (System.nanoTime() - started) / 1e9;
    }

    /**
     * Seconds for the validation pass alone, from the local file to a discarding output: what
     * ingestion costs beyond moving bytes through the store.
     */
    static double validateLocally(Path data) throws IOException {
        long started = System.nanoTime();
        try (InputStream in = Files.newInputStream(data)) {
            io.tuneline.ingestion.validate.DatasetValidator.validate(
                    in,
                    io.tuneline.ingestion.validate.RecordFormat.of(
                            DatasetFormat.DATASET_FORMAT_JSONL),
                    Task.TASK_SEQUENCE_CLASSIFICATION,
                    DatasetSpec.getDefaultInstance(),
                    OutputStream.nullOutputStream(),
                    io.tuneline.ingestion.validate.DatasetValidator.Limits.NONE,
                    io.tuneline.ingestion.validate.DatasetValidator.Progress.NONE);
        }
        return (System.nanoTime() - started) / 1e9;
    }

    static JobRequested job(String id, S3Uri source) {
        return JobRequested.newBuilder()
                .setJobId(id)
                .setTask(Task.TASK_SEQUENCE_CLASSIFICATION)
                .setDataset(
                        DatasetSpec.newBuilder()
                                .setUri(source.toString())
                                .setFormat(DatasetFormat.DATASET_FORMAT_JSONL))
                .build();
    }

    /** The service's defaults, as a job without overrides gets them. */
    public static IngestionConfig config() {
        IngestionConfig.Http http =
                new IngestionConfig.Http() {
                    @Override
                    public Optional<List<String>> allowedHosts() {
                        return Optional.empty();
                    }

                    @Override
                    public boolean allowPrivateAddresses() {
                        return false;
                    }

                    @Override
                    public Duration timeout() {
                        return Duration.ofSeconds(30);
                    }
                };
        return new IngestionConfig() {
            @Override
            public long maxBytes() {
                return 10L << 30;
            }

            @Override
            public long maxRecords() {
                return 50_000_000L;
            }

            @Override
            public int maxLineBytes() {
                return 1 << 20;
            }

            @Override
            public Duration progressInterval() {
                return Duration.ofSeconds(2);
            }

            @Override
            public Optional<String> uploadToken() {
                return Optional.empty();
            }

            @Override
            public Http http() {
                return http;
            }

            @Override
            public Map<String, S3Credentials> s3Credentials() {
                return Map.of();
            }
        };
    }

    /**
     * Classification records of 20-300 random lowercase words (about 1 kB on average), labelled pos
     * or neg; returns the number written.
     */
    static long generate(Path file, long bytes) throws IOException {
        SplittableRandom random = new SplittableRandom(7);
        long written = 0;
        long n = 0;
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(tmp), 1 << 16)) {
            StringBuilder text = new StringBuilder();
            while (written < bytes) {
                text.setLength(0);
                int words = 20 + random.nextInt(281);
                for (int w = 0; w < words; w++) {
                    if (w > 0) {
                        text.append(' ');
                    }
                    for (int c = 2 + random.nextInt(7); c > 0; c--) {
                        text.append((char) ('a' + random.nextInt(26)));
                    }
                }
                ObjectNode r = JSON.createObjectNode();
                r.put("text", text.toString());
                r.put("label", random.nextBoolean() ? "pos" : "neg");
                byte[] line = (JSON.writeValueAsString(r) + "\n").getBytes(StandardCharsets.UTF_8);
                out.write(line);
                written += line.length;
                n++;
            }
        }
        Files.move(tmp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        return n;
    }

    private static long countLines(Path file) throws IOException {
        try (var l = Files.lines(file)) {
            return l.count();
        }
    }

    private static double median(List<Double> xs) {
        List<Double> s = new ArrayList<>(xs);
        s.sort(null);
        int n = s.size();
        return n % 2 == 1 ? s.get(n / 2) : (s.get(n / 2 - 1) + s.get(n / 2)) / 2;
    }

    private static double median(ArrayNode rows, String field) {
        List<Double> xs = new ArrayList<>();
        rows.forEach(r -> xs.add(r.get(field).asDouble()));
        return round(median(xs));
    }

    private static double round(double x) {
        return Math.round(x * 100) / 100.0;
    }
}
