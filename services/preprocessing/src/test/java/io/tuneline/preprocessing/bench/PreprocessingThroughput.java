package io.tuneline.preprocessing.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.util.JsonFormat;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.StoreSettings;
import io.tuneline.preprocessing.prepare.DatasetPreparation;
import io.tuneline.preprocessing.prepare.ModelTokenizer;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.BaseModel;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.testing.InMemoryS3Server;
import java.io.BufferedOutputStream;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Random;

/**
 * Prepares a synthetic review dataset of a given size end to end — an S3 server on local disk in
 * this same JVM, the records streamed from it twice, tokenized with MiniLM's tokenizer, the splits
 * stored back — and prints one JSON line: records/s and MB/s, the raw read speed of the same object
 * (read line by line through the same store, nothing parsed), their ratio, and the heap's peak. Run
 * with a small -Xmx to show a dataset larger than the heap goes through; {@code
 * bench/preprocessing-throughput.sh} runs it on 1 GB with 512 MB.
 *
 * <p>Arguments: working directory, megabytes of data, optionally the endpoint of an S3 server to
 * use (with {@link InMemoryS3Server}'s credentials; "-" for one in this JVM), and optionally the
 * review length in words as "min-max" (default 30-400).
 */
public final class PreprocessingThroughput {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Every 50th record repeats an earlier one exactly; every 97th as a casing variant. */
    public static final int EXACT_EVERY = 50;

    public static final int VARIANT_EVERY = 97;

    private PreprocessingThroughput() {}

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]);
        long megabytes = Long.parseLong(args[1]);
        Files.createDirectories(dir.resolve("s3"));
        String words = args.length > 3 ? args[3] : "30-400";
        Path data = dataset(dir, megabytes, words);
        long records = countLines(data);

        InMemoryS3Server server =
                args.length > 2 ? null : InMemoryS3Server.onDisk(dir.resolve("s3"));
        try (ArtifactStore store = store(server != null ? server.endpoint() : args[2]);
                DatasetPreparation preparation = new DatasetPreparation(store)) {
            ArtifactRef ref = upload(store, data);
            long rawStarted = System.nanoTime();
            long rawLines;
            try (BufferedReader r =
                    new BufferedReader(
                            new InputStreamReader(store.get(ref), StandardCharsets.UTF_8),
                            1 << 16)) {
                rawLines = r.lines().count();
            }
            double rawSeconds = (System.nanoTime() - rawStarted) / 1e9;

            DatasetIngested ingested =
                    DatasetIngested.newBuilder()
                            .setJobId("bench")
                            .setJob(
                                    JobRequested.newBuilder()
                                            .setJobId("bench")
                                            .setBaseModel(
                                                    BaseModel.newBuilder().setRef("minilm-l6"))
                                            .setDataset(
                                                    DatasetSpec.newBuilder().setUri("s3://x/y")))
                            .setRaw(ref)
                            .setRecords(ref)
                            .setRecordShape("classification")
                            .setValidRecords(records)
                            .build();
            // The peer runs before and after preparation and the ratio is taken against the mean
            // of the two: on a shared machine the load moves during a run, and one peer measured
            // at one end would compare preparation with a different machine.
            boolean peer = Runtime.getRuntime().maxMemory() >= (256L << 20);
            double[] tokenizerBefore = peer ? tokenizerAlone(data) : new double[] {Double.NaN, 0};
            long cpuStarted = cpuNanos();
            long started = System.nanoTime();
            long[] secondPass = {0, 0};
            DatasetPrepared p =
                    preparation.prepare(
                            ingested,
                            (percent, message) -> {
                                if (message.contains("writing splits") && secondPass[0] == 0) {
                                    secondPass[0] = System.nanoTime();
                                }
                                if (message.equals("storing splits")) {
                                    secondPass[1] = System.nanoTime();
                                }
                            });
            long ended = System.nanoTime();
            double cpuSeconds = (cpuNanos() - cpuStarted) / 1e9;
            double seconds = (ended - started) / 1e9;
            // The peer runs batches on every core at once: it needs the benchmark's heap, not the
            // 48 MB one LargerThanHeapTest gives preparation.
            double[] tokenizerAfter = peer ? tokenizerAlone(data) : new double[] {Double.NaN, 0};
            double tokenizerSeconds = (tokenizerBefore[0] + tokenizerAfter[0]) / 2;
            double tokenizerCpu = (tokenizerBefore[1] + tokenizerAfter[1]) / 2;

            double mb = ref.getSizeBytes() / 1e6;
            ObjectNode out = JSON.createObjectNode();
            out.put("bytes", ref.getSizeBytes());
            out.put("records", rawLines);
            out.put("max_heap_mb", Runtime.getRuntime().maxMemory() >> 20);
            out.put("cores", Runtime.getRuntime().availableProcessors());
            out.put("seconds", round(seconds));
            out.put("records_per_second", Math.round(rawLines / seconds));
            out.put("mb_per_second", round(mb / seconds));
            out.put("pass1_seconds", round((secondPass[0] - started) / 1e9));
            out.put("pass2_seconds", round((ended - secondPass[0]) / 1e9));
            // Pass 2 is writing the splits' files, then storing them (and the manifest).
            out.put("pass2_write_seconds", round((secondPass[1] - secondPass[0]) / 1e9));
            out.put("pass2_store_seconds", round((ended - secondPass[1]) / 1e9));
            out.put("raw_read_seconds", round(rawSeconds));
            out.put("raw_read_mb_per_second", round(mb / rawSeconds));
            out.put("ratio_to_raw_read", Math.round(rawSeconds / seconds * 10000) / 10000.0);
            if (peer) {
                out.put("tokenizer_seconds", round(tokenizerSeconds));
                out.put("tokenizer_seconds_before", round(tokenizerBefore[0]));
                out.put("tokenizer_seconds_after", round(tokenizerAfter[0]));
                // CPU seconds of the whole process (the tokenizer's native threads included):
                // what other programs on a shared machine disturb least.
                out.put("cpu_seconds", round(cpuSeconds));
                out.put("tokenizer_cpu_seconds", round(tokenizerCpu));
                out.put(
                        "cpu_ratio_to_tokenizer",
                        Math.round(tokenizerCpu / cpuSeconds * 10000) / 10000.0);
                out.put("tokenizer_mb_per_second", round(mb / tokenizerSeconds));
                out.put(
                        "ratio_to_tokenizer",
                        Math.round(tokenizerSeconds / seconds * 10000) / 10000.0);
            }
            out.set(
                    "prepared",
                    JSON.readTree(JsonFormat.printer().omittingInsignificantWhitespace().print(p)));
            System.out.println(JSON.writeValueAsString(out));
        } finally {
            if (server != null) {
                server.close();
            }
        }
    }

    /**
     * The peer of preprocessing: MiniLM's tokenizer alone over the same records' texts, read from
     * the local file, in batches of 256 on every core (as many threads as there are cores, each
     * encoding its batch one text at a time as preprocessing does; the library's own parallel batch
     * encode fed the same way measured about the same, 4.7-5.2 MB/s against 4.9-5.4 on 2 cores),
     * ids only, nothing written.
     */
    static double[] tokenizerAlone(Path data) throws Exception {
        int threads = Runtime.getRuntime().availableProcessors();
        java.util.concurrent.ExecutorService pool =
                java.util.concurrent.Executors.newFixedThreadPool(threads);
        try (ModelTokenizer tokenizer = ModelTokenizer.of("minilm-l6");
                BufferedReader r = Files.newBufferedReader(data, StandardCharsets.UTF_8)) {
            long cpuStarted = cpuNanos();
            long started = System.nanoTime();
            java.util.ArrayDeque<java.util.concurrent.Future<?>> ahead =
                    new java.util.ArrayDeque<>();
            java.util.List<String> texts = new java.util.ArrayList<>(256);
            for (String line; (line = r.readLine()) != null; ) {
                texts.add(JSON.readTree(line).path("text").asText());
                if (texts.size() == 256) {
                    java.util.List<String> batch = texts;
                    ahead.add(pool.submit(() -> tokenizer.encode(batch, true)));
                    texts = new java.util.ArrayList<>(256);
                    while (ahead.size() > 2 * threads) {
                        ahead.removeFirst().get();
                    }
                }
            }
            tokenizer.encode(texts, true);
            while (!ahead.isEmpty()) {
                ahead.removeFirst().get();
            }
            return new double[] {
                (System.nanoTime() - started) / 1e9, (cpuNanos() - cpuStarted) / 1e9
            };
        } finally {
            pool.shutdownNow();
        }
    }

    private static long cpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean)
                        java.lang.management.ManagementFactory.getOperatingSystemMXBean())
                .getProcessCpuTime();
    }

    /** Where the dataset is stored. */
    public static final String KEY = "datasets/bench/records.jsonl";

    /**
     * Stores the dataset file, unless an object of its size is there already (a caller with more
     * heap, such as a test, may have put it there, so this JVM's heap goes to preparing it).
     */
    public static ArtifactRef upload(ArtifactStore store, Path data) throws IOException {
        var uri = store.uri(KEY);
        long size = Files.size(data);
        if (store.size(uri).orElse(-1L) == size) {
            java.security.MessageDigest digest;
            try {
                digest = java.security.MessageDigest.getInstance("SHA-256");
            } catch (java.security.NoSuchAlgorithmException e) {
                throw new IllegalStateException(e);
            }
            try (InputStream in =
                    new java.security.DigestInputStream(Files.newInputStream(data), digest)) {
                in.transferTo(OutputStream.nullOutputStream());
            }
            return ArtifactRef.newBuilder()
                    .setUri(uri.toString())
                    .setSha256(java.util.HexFormat.of().formatHex(digest.digest()))
                    .setSizeBytes(size)
                    .build();
        }
        try (InputStream in = Files.newInputStream(data)) {
            return store.put(uri, in, size, "application/jsonl");
        }
    }

    /** The dataset file for these arguments ("min-max" words per review), generated once. */
    public static Path dataset(Path dir, long megabytes, String words) throws IOException {
        int minWords = Integer.parseInt(words.substring(0, words.indexOf('-')));
        int maxWords = Integer.parseInt(words.substring(words.indexOf('-') + 1));
        Path data =
                dir.resolve(
                        "reviews-"
                                + megabytes
                                + "mb"
                                + (words.equals("30-400") ? "" : "-" + words + "words")
                                + ".jsonl");
        if (!Files.exists(data)) {
            generate(data, megabytes << 20, minWords, maxWords);
        }
        return data;
    }

    /**
     * The store as a service is configured: the services' part size and upload concurrency (-D
     * tuneline.store.upload-concurrency=N compares another).
     */
    private static ArtifactStore store(String endpoint) {
        ArtifactStore store =
                new ArtifactStore(
                        InMemoryS3Server.settings(
                                        endpoint, "tuneline", StoreSettings.DEFAULT_PART_SIZE)
                                .withUploadConcurrency(
                                        Integer.getInteger(
                                                "tuneline.store.upload-concurrency",
                                                StoreSettings.DEFAULT_UPLOAD_CONCURRENCY)));
        store.ensureBucket();
        return store;
    }

    private static double round(double x) {
        return Math.round(x * 100) / 100.0;
    }

    private static long countLines(Path file) throws IOException {
        try (var lines = Files.lines(file)) {
            return lines.count();
        }
    }

    /**
     * Reviews of {@code minWords} to {@code maxWords} words (30-400: about 1.5 kB on average, like
     * IMDB's) from a 4,000-word vocabulary, labelled by their sentiment words, with planted
     * duplicates.
     */
    static long generate(Path file, long bytes, int minWords, int maxWords) throws IOException {
        Random random = new Random(1);
        String[] vocabulary = new String[4000];
        String syllables = "ka lo mi re tu sa ne vi po da ge zu fi ra mo le ti bu ho ja";
        String[] s = syllables.split(" ");
        for (int i = 0; i < vocabulary.length; i++) {
            StringBuilder w = new StringBuilder();
            for (int k = 0; k < 2 + random.nextInt(3); k++) {
                w.append(s[random.nextInt(s.length)]);
            }
            vocabulary[i] = w.toString();
        }
        String[] positive = {"great", "wonderful", "moving", "brilliant", "loved"};
        String[] negative = {"awful", "boring", "dull", "terrible", "hated"};
        long written = 0;
        long n = 0;
        String previous = null;
        String older = null;
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(tmp), 1 << 16)) {
            while (written < bytes) {
                boolean pos = random.nextBoolean();
                String text;
                if (n > 0 && n % EXACT_EVERY == 0) {
                    text = older;
                } else if (n > 0 && n % VARIANT_EVERY == 0) {
                    text = previous.toUpperCase(Locale.ROOT) + "!";
                } else {
                    int words = minWords + random.nextInt(maxWords - minWords + 1);
                    StringBuilder b = new StringBuilder();
                    for (int i = 0; i < words; i++) {
                        if (i > 0) {
                            b.append(i % 17 == 0 ? ". " : " ");
                        }
                        b.append(
                                i % 11 == 5
                                        ? (pos ? positive : negative)[random.nextInt(5)]
                                        : vocabulary[random.nextInt(vocabulary.length)]);
                    }
                    text = b.append('.').toString();
                    if (n % 1000 == 1 || older == null) {
                        older = text;
                    }
                }
                ObjectNode r = JSON.createObjectNode();
                r.put("text", text);
                r.put("label", pos ? "pos" : "neg");
                byte[] line = JSON.writeValueAsBytes(r);
                out.write(line);
                out.write('\n');
                written += line.length + 1;
                n++;
                previous = text;
            }
        }
        Files.move(tmp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        return n;
    }
}
