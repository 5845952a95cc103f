package io.tuneline.preprocessing.prepare;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.util.Timestamps;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.CountingInputStream;
import io.tuneline.engine.tokenize.ModelTokens;
import io.tuneline.engine.tokenize.SpecialToken;
import io.tuneline.preprocessing.prepare.Example.Shape;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.DatasetStats;
import io.tuneline.proto.v1.LabelCounts;
import io.tuneline.proto.v1.SplitCounts;
import io.tuneline.proto.v1.SplitSpec;
import it.unimi.dsi.fastutil.bytes.ByteArrayList;
import it.unimi.dsi.fastutil.ints.IntArrayList;
import it.unimi.dsi.fastutil.longs.Long2IntOpenHashMap;
import java.io.BufferedOutputStream;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Function;
import java.util.stream.Stream;
import org.jboss.logging.Logger;

/**
 * Turns an ingested dataset into tokenized train / validation / test splits in two streaming
 * passes, never holding the dataset: a few hundred bytes per record stay in memory (see {@link
 * NearDuplicates}), so a dataset many times the heap goes through.
 *
 * <ol>
 *   <li>Pass 1 reads the stored records once, normalises each (Unicode NFC, whitespace,
 *       lower-casing for an uncased model), tokenizes it with the base model's tokenizer (masking
 *       the prompt of instruction and chat examples: loss only on the answer) into a local file of
 *       every record's tokens ({@link EncodedSpill}), and removes empty records, exact duplicates
 *       (64-bit hash of the normalised record) and near-duplicates (MinHash/LSH). When the data
 *       names its own split, a record of the test split that also appears in train or validation
 *       stays in test and the other copy goes (leakage). Then a seeded split, stratified by label
 *       for classification, assigns every record without a split of its own.
 *   <li>Pass 2 reads that local file, truncates the kept records to max_seq_length (counting what
 *       was cut), packs causal training examples into blocks, and writes the three files and {@code
 *       manifest.json} with the sha256 of each.
 * </ol>
 *
 * The same data and seed give byte-identical files.
 */
public final class DatasetPreparation implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(DatasetPreparation.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> SPLITS = List.of("train", "validation", "test");
    private static final byte NONE = -1;
    private static final byte TRAIN = 0;
    private static final byte VALIDATION = 1;
    private static final byte TEST = 2;

    /** What happened to a record in pass 1. */
    private static final byte KEPT = 0;

    private static final byte EMPTY = 1;
    private static final byte EXACT = 2;
    private static final byte NEAR = 3;
    private static final byte LEAKAGE = 4;
    private static final byte UNREADABLE = 5;

    /** Bytes held per record, to refuse a dataset the heap cannot take before starting it. */
    static final long BYTES_PER_RECORD = 40;

    static final long BYTES_PER_RECORD_NEAR = 330;

    /** Told how far a dataset has got, 0 to 100. */
    @FunctionalInterface
    public interface Progress {
        Progress NONE = (percent, message) -> {};

        void at(double percent, String message);
    }

    /**
     * @param packing pack causal LM training examples into full blocks
     * @param batchSize records tokenized per call into the tokenizer (which uses every core)
     */
    public record Settings(NearDuplicates.Settings nearDuplicates, boolean packing, int batchSize) {
        public static final Settings DEFAULTS =
                new Settings(NearDuplicates.Settings.DEFAULTS, true, 256);

        boolean nearDuplicatesEnabled() {
            return nearDuplicates.threshold() <= 1.0;
        }
    }

    private final ArtifactStore store;
    private final Settings settings;
    private final Function<String, ModelTokenizer> tokenizers;
    private final Map<String, ModelTokenizer> loaded = new ConcurrentHashMap<>();

    public DatasetPreparation(ArtifactStore store) {
        this(store, Settings.DEFAULTS);
    }

    public DatasetPreparation(ArtifactStore store, Settings settings) {
        this.store = store;
        this.settings = settings;
        this.tokenizers =
                ref ->
                        loaded.computeIfAbsent(
                                ref,
                                r -> {
                                    try {
                                        return ModelTokenizer.of(r, store::download);
                                    } catch (IOException e) {
                                        throw new UncheckedIOException(e);
                                    }
                                });
    }

    public DatasetPrepared prepare(DatasetIngested ingested) throws IOException {
        return prepare(ingested, Progress.NONE);
    }

    public DatasetPrepared prepare(DatasetIngested ingested, Progress progress) throws IOException {
        String jobId = ingested.getJobId();
        DatasetSpec spec = ingested.getJob().getDataset();
        Shape shape = Shape.of(ingested.getRecordShape());
        ModelTokenizer tokenizer = tokenizers.apply(ingested.getJob().getBaseModel().getRef());
        Example.Normalization norm = new Example.Normalization(tokenizer.lowercase());
        // Ingestion's canonical records use "text" and "label" whatever the input's own names; an
        // older ingestion left only the raw JSON Lines with the job's field names.
        boolean canonical = ingested.hasRecords();
        String textField = canonical ? "text" : field(spec.getFields().getText(), "text");
        String labelField = canonical ? "label" : field(spec.getFields().getLabel(), "label");
        ArtifactRef source = canonical ? ingested.getRecords() : ingested.getRaw();
        long expected = Math.max(16, ingested.getValidRecords());
        checkMemory(expected);
        Reader reader = new Reader(source, shape, textField, labelField, norm, expected, progress);
        int maxLength = maxLength(ingested);
        Optional<String> override = Optional.of(spec.getChatTemplate()).filter(t -> !t.isBlank());
        CausalEncoder causal =
                new CausalEncoder(
                        tokenizer,
                        shape == Shape.CHAT || shape == Shape.INSTRUCTION
                                ? tokenizer.tokens().chatTemplateFor(override)
                                : Optional.empty());
        Tokenization tokenization = new Tokenization(tokenizer, shape, causal);
        Path dir = Files.createTempDirectory("tuneline-prepared-");
        try {
            // Pass 1: what to keep, and the split each kept record goes to; every record's tokens
            // into a local file on the way, so the dataset is read and parsed once.
            long started = System.nanoTime();
            Pass1 p1 = new Pass1(expected, settings);
            Path spill = dir.resolve("encoded.bin");
            try (OutputStream out =
                    new BufferedOutputStream(Files.newOutputStream(spill), 1 << 16)) {
                // Parsing, normalising, the MinHash signature and tokenizing on every core; the
                // decisions, which depend on every earlier record, in record order. Records that
                // turn out to be duplicates are tokenized too, as the tokenizer alone would (3% of
                // the benchmark's; data that is mostly duplicates pays more): deciding first would
                // hold each batch back from the workers.
                reader.read(
                        0,
                        90,
                        "cleaning, deduplicating and tokenizing",
                        (first, examples) -> {
                            List<Pass1.Judged> judged =
                                    new ArrayList<>(examples.stream().map(p1::judge).toList());
                            List<Example> wanted =
                                    examples.stream()
                                            .filter(e -> e != null && !e.isEmpty())
                                            .toList();
                            List<Tokenization.Encoded> encoded = tokenization.encode(wanted);
                            int k = 0;
                            for (int i = 0; i < judged.size(); i++) {
                                Example e = examples.get(i);
                                if (e != null && !e.isEmpty()) {
                                    judged.set(
                                            i,
                                            judged.get(i)
                                                    .withEncoded(
                                                            EncodedSpill.entry(
                                                                    encoded.get(k++), maxLength)));
                                }
                            }
                            return judged;
                        },
                        (index, judged) -> {
                            p1.offer(index, judged);
                            out.write(
                                    judged.encoded() == null
                                            ? EncodedSpill.NOTHING
                                            : judged.encoded());
                        });
            }
            long judgedAt = System.nanoTime();
            List<String> labels =
                    spec.getLabelsCount() > 0
                            ? List.copyOf(spec.getLabelsList())
                            : List.copyOf(new TreeSet<>(p1.labelIds.keySet()));
            SplitSpec split = ingested.getJob().getSplit();
            long seed = split.getSeed() != 0 ? split.getSeed() : 42;
            byte[] assigned = p1.assign(split, seed, shape, labels);
            p1.release();

            // Pass 2: the kept records' tokens from the local file into their splits' files.
            List<SplitFile> files = new ArrayList<>();
            for (String name : SPLITS) {
                files.add(
                        new SplitFile(
                                name,
                                dir,
                                maxLength,
                                shape.causal() && settings.packing() && name.equals("train")));
            }
            try (EncodedSpill.Input in = new EncodedSpill.Input(Files.newInputStream(spill))) {
                progress.at(90, "writing splits");
                for (int index = 0; index < assigned.length; index++) {
                    EncodedSpill.Entry e = EncodedSpill.read(in, shape, maxLength);
                    if (assigned[index] == NONE) {
                        continue;
                    }
                    if (e == null) {
                        throw new IllegalStateException(
                                "record " + (index + 1) + " is kept but has no tokens");
                    }
                    files.get(assigned[index]).add(e.example(), e.length(), e.ids(), e.labels());
                    if (((index + 1) & 0x3FFF) == 0) {
                        progress.at(
                                90 + 8.0 * (index + 1) / assigned.length,
                                String.format(
                                        Locale.ROOT,
                                        "writing splits: %,d of %,d records",
                                        index + 1,
                                        assigned.length));
                    }
                }
                LOG.infof(
                        "pass 1 (normalise, deduplicate, tokenize) %.1f s, pass 2 (split, write)"
                                + " %.1f s",
                        (judgedAt - started) / 1e9, (System.nanoTime() - judgedAt) / 1e9);
            } finally {
                for (SplitFile f : files) {
                    f.close();
                }
            }
            Files.delete(spill);
            SplitFile train = files.get(TRAIN);
            if (train.examples == 0) {
                throw new IllegalArgumentException(
                        "no training examples left after cleaning ("
                                + p1.read
                                + " read, "
                                + p1.removed[EXACT]
                                + " duplicates, "
                                + p1.removed[NEAR]
                                + " near-duplicates, "
                                + p1.removed[LEAKAGE]
                                + " removed as test leakage, "
                                + p1.removed[EMPTY]
                                + " empty)");
            }
            progress.at(98, "storing splits");
            return publish(
                    ingested, shape, tokenizer, causal, labels, seed, maxLength, p1, files, reader);
        } finally {
            try (Stream<Path> s = Files.list(dir)) {
                for (Path p : s.toList()) {
                    Files.deleteIfExists(p);
                }
            }
            Files.deleteIfExists(dir);
        }
    }

    private DatasetPrepared publish(
            DatasetIngested ingested,
            Shape shape,
            ModelTokenizer tokenizer,
            CausalEncoder causal,
            List<String> labels,
            long seed,
            int maxLength,
            Pass1 p1,
            List<SplitFile> files,
            Reader reader)
            throws IOException {
        String jobId = ingested.getJobId();
        SplitSpec split = ingested.getJob().getSplit();
        String prefix = "datasets/" + jobId + "/prepared/";
        Map<String, ArtifactRef> refs = new LinkedHashMap<>();
        // Validation and test are stored on another thread while train is: each upload reads its
        // file twice (its sha256, then the request) on one thread, so one after the other they
        // left a core idle for the end of the job.
        ExecutorService uploader =
                Executors.newSingleThreadExecutor(
                        r -> {
                            Thread t = new Thread(r, "tuneline-preprocessing-upload");
                            t.setDaemon(true);
                            return t;
                        });
        try {
            Future<List<ArtifactRef>> others =
                    uploader.submit(
                            () ->
                                    files.subList(VALIDATION, TEST + 1).stream()
                                            .map(f -> storeSplit(prefix, f))
                                            .toList());
            ArtifactRef train = storeSplit(prefix, files.get(TRAIN));
            List<ArtifactRef> rest;
            try {
                rest = others.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while storing the splits");
            } catch (ExecutionException e) {
                if (e.getCause() instanceof RuntimeException re) {
                    throw re;
                }
                throw new IllegalStateException(e.getCause());
            }
            refs.put(files.get(TRAIN).name, train);
            refs.put(files.get(VALIDATION).name, rest.get(0));
            refs.put(files.get(TEST).name, rest.get(1));
        } finally {
            uploader.shutdownNow();
        }
        long truncated = files.stream().mapToLong(f -> f.truncated).sum();
        DatasetStats.Builder stats =
                DatasetStats.newBuilder()
                        .setInputRecords(p1.read)
                        .setExactDuplicatesRemoved(p1.removed[EXACT])
                        .setNearDuplicatesRemoved(p1.removed[NEAR])
                        .setLeakageRemoved(p1.removed[LEAKAGE])
                        .setEmptyRemoved(p1.removed[EMPTY])
                        .setTokenLengths(files.get(TRAIN).lengths.proto())
                        .setTruncatedExamples(truncated);
        if (shape == Shape.CLASSIFICATION) {
            for (SplitFile f : files) {
                stats.putLabelCountsBySplit(
                        f.name, LabelCounts.newBuilder().putAllCounts(f.labels).build());
            }
        }

        ObjectNode manifest = JSON.createObjectNode();
        manifest.put("job_id", jobId);
        manifest.put("raw_sha256", ingested.getRaw().getSha256());
        manifest.put("record_shape", shape.name().toLowerCase(Locale.ROOT));
        manifest.put("seed", seed);
        manifest.put(
                "stratified", shape == Shape.CLASSIFICATION && !split.getDisableStratification());
        manifest.put("split_from_data", p1.givenSplits > 0);
        manifest.putPOJO("labels", labels);
        ObjectNode tok = manifest.putObject("tokenizer");
        tok.put("base_model", tokenizer.ref());
        tok.put("sha256", tokenizer.sha256());
        tok.put("lowercase", tokenizer.lowercase());
        tok.put("eos_token", tokenizer.eosToken());
        ModelTokens special = tokenizer.tokens();
        tok.put("bos_token", special.bos().map(SpecialToken::content).orElse(null));
        tok.put("pad_token", special.pad().map(SpecialToken::content).orElse(null));
        tok.put("special_tokens_from", special.source().name().toLowerCase(Locale.ROOT));
        if (causal.templated()) {
            boolean fromJob = !ingested.getJob().getDataset().getChatTemplate().isBlank();
            tok.putObject("chat_template")
                    .put("from", fromJob ? "job" : "model")
                    .put(
                            "sha256",
                            sha256(causal.template().source().getBytes(StandardCharsets.UTF_8)));
        }
        manifest.put("max_seq_length", maxLength);
        ObjectNode filesNode = manifest.putObject("files");
        ObjectNode counts = manifest.putObject("counts");
        ObjectNode lengths = manifest.putObject("token_lengths");
        ObjectNode truncatedNode = manifest.putObject("truncated");
        ObjectNode labelCounts = manifest.putObject("label_counts");
        for (SplitFile f : files) {
            ArtifactRef ref = refs.get(f.name);
            filesNode
                    .putObject(f.name)
                    .put("uri", ref.getUri())
                    .put("sha256", ref.getSha256())
                    .put("size_bytes", ref.getSizeBytes());
            counts.put(f.name, f.examples);
            lengths.set(f.name, f.lengths.json());
            truncatedNode.put(f.name, f.truncated);
            if (shape == Shape.CLASSIFICATION) {
                labelCounts.putPOJO(f.name, f.labels);
            }
        }
        if (files.get(TRAIN).blocks > 0) {
            manifest.putObject("packing")
                    .put("split", "train")
                    .put("blocks", files.get(TRAIN).blocks)
                    .put("block_tokens_max", maxLength);
        }
        manifest.putObject("removed")
                .put("exact_duplicates", p1.removed[EXACT])
                .put("near_duplicates", p1.removed[NEAR])
                .put("test_leakage", p1.removed[LEAKAGE])
                .put("empty", p1.removed[EMPTY])
                .put("unreadable", p1.removed[UNREADABLE]);
        NearDuplicates.Settings nd = settings.nearDuplicates();
        ObjectNode ndNode = manifest.putObject("near_duplicate_detection");
        ndNode.put("enabled", settings.nearDuplicatesEnabled());
        if (settings.nearDuplicatesEnabled()) {
            ndNode.put("method", "minhash-lsh")
                    .put("permutations", nd.permutations())
                    .put("bands", nd.bands())
                    .put("shingle_characters", nd.shingleSize())
                    .put("jaccard_threshold", nd.threshold());
        }
        manifest.putObject("input").put("bytes", reader.bytes).put("records", p1.read);
        ArtifactRef manifestRef =
                store.put(
                        store.uri(prefix + "manifest.json"),
                        JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(manifest),
                        "application/json");
        return DatasetPrepared.newBuilder()
                .setJobId(jobId)
                .setJob(ingested.getJob())
                .setRaw(ingested.getRaw())
                .setManifest(manifestRef)
                .setTrain(refs.get("train"))
                .setValidation(refs.get("validation"))
                .setTest(refs.get("test"))
                .setCounts(
                        SplitCounts.newBuilder()
                                .setTrain(files.get(TRAIN).examples)
                                .setValidation(files.get(VALIDATION).examples)
                                .setTest(files.get(TEST).examples))
                .setStats(stats)
                .addAllLabels(shape == Shape.CLASSIFICATION ? labels : List.of())
                .setTokenizerRef(tokenizer.ref())
                .setPreparedAt(Timestamps.now())
                .build();
    }

    private ArtifactRef storeSplit(String prefix, SplitFile f) {
        return store.put(store.uri(prefix + f.name + ".jsonl"), f.file, "application/jsonl");
    }

    /** Refuses, before reading anything, a dataset whose tables would not fit in the heap. */
    private void checkMemory(long records) {
        long perRecord =
                settings.nearDuplicatesEnabled() ? BYTES_PER_RECORD_NEAR : BYTES_PER_RECORD;
        long needed = records * perRecord;
        long heap = Runtime.getRuntime().maxMemory();
        if (needed > heap * 0.8) {
            throw new IllegalArgumentException(
                    String.format(
                            Locale.ROOT,
                            "the dataset has %,d records; preparing it needs about %,d MB of heap"
                                    + " (%d bytes per record%s) and the service has %,d MB: give"
                                    + " it more (-Xmx)%s",
                            records,
                            needed >> 20,
                            perRecord,
                            settings.nearDuplicatesEnabled() ? " with near-duplicate removal" : "",
                            heap >> 20,
                            settings.nearDuplicatesEnabled()
                                    ? " or set tuneline.preprocessing.near-duplicates.enabled=false"
                                            + " ("
                                            + BYTES_PER_RECORD
                                            + " bytes per record)"
                                    : ""));
        }
    }

    private static int maxLength(DatasetIngested ingested) {
        int m = ingested.getJob().getHyperparameters().getMaxSeqLength();
        return m > 0 ? m : 128;
    }

    private static String field(String configured, String fallback) {
        return configured.isBlank() ? fallback : configured;
    }

    private static byte splitOf(String name, long index) {
        if (name == null) {
            return NONE;
        }
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "train" -> TRAIN;
            case "validation", "valid", "val", "dev" -> VALIDATION;
            case "test" -> TEST;
            default ->
                    throw new IllegalArgumentException(
                            "record "
                                    + (index + 1)
                                    + " names the split '"
                                    + name
                                    + "'; use train, validation or test");
        };
    }

    private static String sha256(byte[] bytes) {
        try {
            return java.util.HexFormat.of()
                    .formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** 64-bit FNV-1a of the chars, finished with SplitMix64's mixer. */
    static long hash(String s) {
        long h = 0xcbf29ce484222325L;
        for (int i = 0; i < s.length(); i++) {
            h = (h ^ s.charAt(i)) * 0x100000001b3L;
        }
        return NearDuplicates.mix(h);
    }

    @Override
    public void close() {
        loaded.values().forEach(ModelTokenizer::close);
        loaded.clear();
    }

    /** Streams the records in order, numbering every non-blank line, and reports progress. */
    private final class Reader {
        final ArtifactRef source;
        final Shape shape;
        final String textField;
        final String labelField;
        final Example.Normalization norm;
        final long expected;
        final Progress progress;

        /** Bytes read in the last pass, for the manifest and throughput. */
        long bytes;

        Reader(
                ArtifactRef source,
                Shape shape,
                String textField,
                String labelField,
                Example.Normalization norm,
                long expected,
                Progress progress) {
            this.source = source;
            this.shape = shape;
            this.textField = textField;
            this.labelField = labelField;
            this.norm = norm;
            this.expected = expected;
            this.progress = progress;
        }

        /** Work on one batch of records, done on the reader's worker threads. */
        interface Work<T> {
            List<T> apply(int first, List<Example> examples) throws IOException;
        }

        /** What is done with each record's result, on the reading thread, in record order. */
        interface Visitor<T> {
            void visit(int index, T result) throws IOException;
        }

        /**
         * Streams the records and hands each one's {@code work} result to {@code visitor} in order.
         * Lines are parsed and worked on in batches of {@code batchSize} on as many threads as
         * there are cores, a few batches ahead of the visitor, so memory stays bounded whatever the
         * dataset's size.
         */
        <T> void read(double from, double to, String what, Work<T> work, Visitor<T> visitor)
                throws IOException {
            bytes = 0;
            // One worker per core, and per 256 MB of heap: each holds a batch's lines, records
            // and tokens at once, and a small heap (the 48 MB test) runs one batch at a time.
            int threads =
                    (int)
                            Math.max(
                                    1,
                                    Math.min(
                                            Runtime.getRuntime().availableProcessors(),
                                            Runtime.getRuntime().maxMemory() / (256L << 20)));
            int maxAhead = threads == 1 ? 0 : 2 * threads;
            ExecutorService workers =
                    Executors.newFixedThreadPool(
                            threads,
                            r -> {
                                Thread t = new Thread(r, "tuneline-preprocessing-worker");
                                t.setDaemon(true);
                                return t;
                            });
            Deque<Future<List<T>>> ahead = new ArrayDeque<>();
            int[] visited = {0};
            progress.at(from, what);
            try (CountingInputStream in = new CountingInputStream(store.get(source));
                    BufferedReader r =
                            new BufferedReader(
                                    new InputStreamReader(in, StandardCharsets.UTF_8), 1 << 16)) {
                int index = 0;
                long chars = 0;
                Deque<Long> aheadChars = new ArrayDeque<>();
                long inFlight = 0;
                List<String> lines = new ArrayList<>(settings.batchSize());
                for (String line; (line = r.readLine()) != null; ) {
                    if (line.isBlank()) {
                        continue;
                    }
                    lines.add(line);
                    chars += line.length();
                    index++;
                    if (lines.size() == settings.batchSize() || chars >= maxCharsInFlight()) {
                        ahead.add(submit(workers, index - lines.size(), lines, work));
                        aheadChars.add(chars);
                        inFlight += chars;
                        lines = new ArrayList<>(settings.batchSize());
                        chars = 0;
                        // A few batches per core ahead of the visitor, and no more text in
                        // flight than a small share of the heap: a batch's parsed records and
                        // tokens take several times its text, on every worker at once.
                        while (ahead.size() > maxAhead
                                || (ahead.size() > 1 && inFlight > maxCharsInFlight())) {
                            deliver(ahead.removeFirst(), visitor, visited, from, to, what);
                            inFlight -= aheadChars.removeFirst();
                        }
                    }
                }
                if (!lines.isEmpty()) {
                    ahead.add(submit(workers, index - lines.size(), lines, work));
                }
                while (!ahead.isEmpty()) {
                    deliver(ahead.removeFirst(), visitor, visited, from, to, what);
                }
                bytes = in.count();
            } finally {
                ahead.forEach(f -> f.cancel(true));
                workers.shutdownNow();
            }
        }

        /** Text characters in batches not yet delivered: a 64th of the heap. */
        private static long maxCharsInFlight() {
            return Runtime.getRuntime().maxMemory() / 64;
        }

        private <T> Future<List<T>> submit(
                ExecutorService workers, int first, List<String> lines, Work<T> work) {
            return workers.submit(
                    () -> {
                        List<Example> examples = new ArrayList<>(lines.size());
                        for (String line : lines) {
                            Example example;
                            try {
                                example =
                                        Example.parse(
                                                JSON.readTree(line),
                                                shape,
                                                textField,
                                                labelField,
                                                norm);
                            } catch (IOException e) {
                                // Reported and skipped by ingestion under the job's policy.
                                example = null;
                            }
                            examples.add(example);
                        }
                        return work.apply(first, examples);
                    });
        }

        private <T> void deliver(
                Future<List<T>> batch,
                Visitor<T> visitor,
                int[] visited,
                double from,
                double to,
                String what)
                throws IOException {
            List<T> results;
            try {
                results = batch.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while " + what);
            } catch (ExecutionException e) {
                if (e.getCause() instanceof IOException io) {
                    throw io;
                }
                if (e.getCause() instanceof RuntimeException re) {
                    throw re;
                }
                throw new IllegalStateException(e.getCause());
            }
            for (T result : results) {
                visitor.visit(visited[0], result);
                visited[0]++;
                if ((visited[0] & 0x3FFF) == 0) {
                    double done = Math.min(1.0, (double) visited[0] / expected);
                    progress.at(
                            from + (to - from) * done,
                            String.format(
                                    Locale.ROOT,
                                    "%s: %,d of %,d records",
                                    what,
                                    visited[0],
                                    expected));
                }
            }
        }
    }

    /** Pass 1's state: a status, a label and a given split per record, and the dedup tables. */
    private static final class Pass1 {
        final ByteArrayList status;
        final ByteArrayList given;
        final IntArrayList label;
        final Map<String, Integer> labelIds = new LinkedHashMap<>();
        Long2IntOpenHashMap exact;
        NearDuplicates near;
        final long[] removed = new long[6];
        long read;
        long givenSplits;

        Pass1(long expected, Settings settings) {
            int n = (int) Math.min(expected, Integer.MAX_VALUE - 8);
            status = new ByteArrayList(n);
            given = new ByteArrayList(n);
            label = new IntArrayList(n);
            exact = new Long2IntOpenHashMap(n);
            exact.defaultReturnValue(-1);
            near =
                    settings.nearDuplicatesEnabled()
                            ? new NearDuplicates(settings.nearDuplicates(), n)
                            : null;
        }

        /** A record with what judging it needs computed beforehand (on any thread). */
        record Judged(Example example, long hash, int[] signature, byte[] encoded) {
            Judged withEncoded(byte[] entry) {
                return new Judged(example, hash, signature, entry);
            }
        }

        /**
         * The hash of the record's dedup key and its MinHash signature: the costly, independent
         * part of judging a record, safe to run on several threads at once.
         */
        Judged judge(Example example) {
            if (example == null || example.isEmpty()) {
                return new Judged(example, 0, null, null);
            }
            String key = example.key();
            return new Judged(example, hash(key), near == null ? null : near.signature(key), null);
        }

        /** Decides the record's status; called in record order. */
        void offer(int index, Judged judged) {
            Example example = judged.example();
            read++;
            if (example == null) {
                status.add(UNREADABLE);
                given.add(NONE);
                label.add(-1);
                removed[UNREADABLE]++;
                return;
            }
            byte split = splitOf(example.split(), index);
            if (split != NONE) {
                givenSplits++;
            }
            given.add(split);
            label.add(
                    example instanceof Example.Classification c
                            ? labelIds.computeIfAbsent(c.label(), k -> labelIds.size())
                            : -1);
            if (example.isEmpty()) {
                status.add(EMPTY);
                removed[EMPTY]++;
                return;
            }
            long h = judged.hash();
            int same = exact.get(h);
            if (same >= 0) {
                status.add(resolve(index, same, EXACT));
                if (status.getByte(index) == KEPT) {
                    exact.put(h, index);
                }
                return;
            }
            int[] signature = judged.signature();
            if (near != null) {
                int similar = near.match(signature);
                if (similar >= 0) {
                    status.add(resolve(index, similar, NEAR));
                    if (status.getByte(index) == KEPT) {
                        exact.put(h, index);
                        near.keep(index, signature);
                    }
                    return;
                }
                near.keep(index, signature);
            }
            exact.put(h, index);
            status.add(KEPT);
        }

        /**
         * The status of a record that repeats an earlier one: a duplicate, unless the data names
         * the splits and exactly one of the two is in test. Then the test copy stays and the other
         * goes, so nothing the model trains on is also what it is tested on.
         */
        private byte resolve(int index, int earlier, byte kind) {
            byte mine = given.getByte(index);
            byte theirs = given.getByte(earlier);
            if (mine != NONE && theirs != NONE && (mine == TEST) != (theirs == TEST)) {
                if (mine == TEST) {
                    if (status.getByte(earlier) == KEPT) {
                        status.set(earlier, LEAKAGE);
                        removed[LEAKAGE]++;
                    }
                    return KEPT;
                }
                removed[LEAKAGE]++;
                return LEAKAGE;
            }
            removed[kind]++;
            return kind;
        }

        /** Frees the deduplication tables, the largest thing held, once every record is judged. */
        void release() {
            exact = null;
            near = null;
            status.clear();
            status.trim();
            given.clear();
            given.trim();
            label.clear();
            label.trim();
        }

        /** The split of every kept record; NONE for the removed ones. */
        byte[] assign(SplitSpec split, long seed, Shape shape, List<String> labels) {
            double validationShare = split.getTrain() > 0 ? split.getValidation() : 0.1;
            double testShare = split.getTrain() > 0 ? split.getTest() : 0.1;
            int n = status.size();
            byte[] assigned = new byte[n];
            boolean stratify = shape == Shape.CLASSIFICATION && !split.getDisableStratification();
            // Groups in label order (declared, else sorted), so the split does not depend on which
            // label the file happens to start with.
            int[] groupOf = new int[labelIds.size()];
            labelIds.forEach((name, id) -> groupOf[id] = Math.max(0, labels.indexOf(name)));
            List<IntArrayList> groups = new ArrayList<>();
            for (int g = 0; g < (stratify ? Math.max(1, labels.size()) : 1); g++) {
                groups.add(new IntArrayList());
            }
            for (int i = 0; i < n; i++) {
                if (status.getByte(i) != KEPT) {
                    assigned[i] = NONE;
                } else if (given.getByte(i) != NONE) {
                    assigned[i] = given.getByte(i);
                } else {
                    int l = label.getInt(i);
                    groups.get(stratify && l >= 0 ? groupOf[l] : 0).add(i);
                }
            }
            // One seeded generator per group, in group order: each label's share of every split
            // is within one example of exact.
            for (int g = 0; g < groups.size(); g++) {
                int[] ids = groups.get(g).toIntArray();
                Random random = new Random(seed + 31L * g);
                for (int i = ids.length - 1; i > 0; i--) {
                    int j = random.nextInt(i + 1);
                    int t = ids[i];
                    ids[i] = ids[j];
                    ids[j] = t;
                }
                int size = ids.length;
                int nTest = (int) Math.round(size * testShare);
                int nValidation = (int) Math.round(size * validationShare);
                if (nTest + nValidation >= size && size > 0) {
                    nValidation = Math.max(0, size - 1 - nTest);
                }
                for (int i = 0; i < size; i++) {
                    assigned[ids[i]] =
                            i < nTest ? TEST : i < nTest + nValidation ? VALIDATION : TRAIN;
                }
            }
            return assigned;
        }
    }
}
