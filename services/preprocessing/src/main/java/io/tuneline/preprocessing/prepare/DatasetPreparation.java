package io.tuneline.preprocessing.prepare;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.util.Timestamps;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.DatasetIngested;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.DatasetStats;
import io.tuneline.proto.v1.LabelCounts;
import io.tuneline.proto.v1.SplitCounts;
import io.tuneline.proto.v1.SplitSpec;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeSet;

/**
 * Turns an ingested classification dataset into train / validation / test splits: Unicode NFC and
 * whitespace normalisation, exact-duplicate removal on the normalised text (so no example of the
 * test split can also be in train), and a seeded split stratified by label. The same data and seed
 * give byte-identical files.
 */
public final class DatasetPreparation {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final ArtifactStore store;

    private final NearDuplicates.Settings nearDuplicates;

    public DatasetPreparation(ArtifactStore store) {
        this(store, NearDuplicates.Settings.DEFAULTS);
    }

    public DatasetPreparation(ArtifactStore store, NearDuplicates.Settings nearDuplicates) {
        this.store = store;
        this.nearDuplicates = nearDuplicates;
    }

    record Example(String text, String label) {}

    public DatasetPrepared prepare(DatasetIngested ingested) throws IOException {
        String jobId = ingested.getJobId();
        DatasetSpec spec = ingested.getJob().getDataset();
        // Ingestion's canonical records use "text" and "label" whatever the input's own names; an
        // older ingestion left only the raw JSON Lines with the job's field names.
        boolean canonical = ingested.hasRecords();
        String textField =
                canonical || spec.getFields().getText().isBlank()
                        ? "text"
                        : spec.getFields().getText();
        String labelField =
                canonical || spec.getFields().getLabel().isBlank()
                        ? "label"
                        : spec.getFields().getLabel();

        long input = 0;
        long empty = 0;
        long duplicates = 0;
        long near = 0;
        NearDuplicates similar = new NearDuplicates(nearDuplicates);
        Map<String, String> unique = new LinkedHashMap<>();
        try (InputStream in = store.get(canonical ? ingested.getRecords() : ingested.getRaw());
                BufferedReader r =
                        new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                if (line.isBlank()) {
                    continue;
                }
                JsonNode n;
                try {
                    n = JSON.readTree(line);
                } catch (IOException e) {
                    continue; // reported and skipped by ingestion under the job's policy
                }
                if (n == null || !n.path(textField).isTextual() || !n.has(labelField)) {
                    continue;
                }
                input++;
                String text = normalize(n.get(textField).asText());
                if (text.isEmpty()) {
                    empty++;
                } else if (unique.containsKey(text)) {
                    duplicates++;
                } else if (!similar.offer(text)) {
                    near++;
                } else {
                    unique.put(text, n.get(labelField).asText());
                }
            }
        }
        List<String> labels =
                spec.getLabelsCount() > 0
                        ? List.copyOf(spec.getLabelsList())
                        : List.copyOf(new TreeSet<>(unique.values()));
        Map<String, List<Example>> byLabel = new LinkedHashMap<>();
        labels.forEach(l -> byLabel.put(l, new ArrayList<>()));
        unique.forEach(
                (text, label) ->
                        byLabel.computeIfAbsent(label, k -> new ArrayList<>())
                                .add(new Example(text, label)));

        SplitSpec split = ingested.getJob().getSplit();
        double trainShare = split.getTrain() > 0 ? split.getTrain() : 0.8;
        double validationShare = split.getTrain() > 0 ? split.getValidation() : 0.1;
        double testShare = split.getTrain() > 0 ? split.getTest() : 0.1;
        long seed = split.getSeed() != 0 ? split.getSeed() : 42;
        List<Example> train = new ArrayList<>();
        List<Example> validation = new ArrayList<>();
        List<Example> test = new ArrayList<>();
        if (split.getDisableStratification()) {
            List<Example> all = new ArrayList<>();
            byLabel.values().forEach(all::addAll);
            assign(all, validationShare, testShare, new Random(seed), train, validation, test);
        } else {
            // One seeded generator per label, in label order: each label's share of every split
            // is within one example of exact.
            int i = 0;
            for (List<Example> group : byLabel.values()) {
                assign(
                        group,
                        validationShare,
                        testShare,
                        new Random(seed + 31L * i++),
                        train,
                        validation,
                        test);
            }
        }
        if (train.isEmpty()) {
            throw new IllegalArgumentException(
                    "no training examples left after cleaning ("
                            + input
                            + " read, "
                            + duplicates
                            + " duplicates, "
                            + near
                            + " near-duplicates, "
                            + empty
                            + " empty)");
        }

        String prefix = "datasets/" + jobId + "/prepared/";
        ArtifactRef trainRef = write(prefix + "train.jsonl", train);
        ArtifactRef validationRef = write(prefix + "validation.jsonl", validation);
        ArtifactRef testRef = write(prefix + "test.jsonl", test);
        DatasetStats stats =
                DatasetStats.newBuilder()
                        .setInputRecords(input)
                        .setExactDuplicatesRemoved(duplicates)
                        .setNearDuplicatesRemoved(near)
                        .setEmptyRemoved(empty)
                        .putLabelCountsBySplit("train", counts(train))
                        .putLabelCountsBySplit("validation", counts(validation))
                        .putLabelCountsBySplit("test", counts(test))
                        .build();
        ObjectNode manifest = JSON.createObjectNode();
        manifest.put("job_id", jobId);
        manifest.put("raw_sha256", ingested.getRaw().getSha256());
        manifest.put("seed", seed);
        manifest.put("stratified", !split.getDisableStratification());
        manifest.putPOJO("labels", labels);
        ObjectNode files = manifest.putObject("files");
        for (var e :
                Map.of("train", trainRef, "validation", validationRef, "test", testRef)
                        .entrySet()) {
            files.putObject(e.getKey())
                    .put("uri", e.getValue().getUri())
                    .put("sha256", e.getValue().getSha256())
                    .put("size_bytes", e.getValue().getSizeBytes());
        }
        manifest.putObject("counts")
                .put("train", train.size())
                .put("validation", validation.size())
                .put("test", test.size());
        manifest.putObject("removed")
                .put("exact_duplicates", duplicates)
                .put("near_duplicates", near)
                .put("empty", empty);
        manifest.putObject("near_duplicate_detection")
                .put("method", "minhash-lsh")
                .put("permutations", nearDuplicates.permutations())
                .put("bands", nearDuplicates.bands())
                .put("shingle_characters", nearDuplicates.shingleSize())
                .put("jaccard_threshold", nearDuplicates.threshold());
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
                .setTrain(trainRef)
                .setValidation(validationRef)
                .setTest(testRef)
                .setCounts(
                        SplitCounts.newBuilder()
                                .setTrain(train.size())
                                .setValidation(validation.size())
                                .setTest(test.size()))
                .setStats(stats)
                .addAllLabels(labels)
                .setTokenizerRef(ingested.getJob().getBaseModel().getRef())
                .setPreparedAt(Timestamps.now())
                .build();
    }

    /** NFC (Unicode TR #15), whitespace runs collapsed to one space, trimmed. */
    static String normalize(String text) {
        return Normalizer.normalize(text, Normalizer.Form.NFC).replaceAll("\\s+", " ").strip();
    }

    private static void assign(
            List<Example> group,
            double validationShare,
            double testShare,
            Random random,
            List<Example> train,
            List<Example> validation,
            List<Example> test) {
        List<Example> shuffled = new ArrayList<>(group);
        java.util.Collections.shuffle(shuffled, random);
        int n = shuffled.size();
        int nTest = (int) Math.round(n * testShare);
        int nValidation = (int) Math.round(n * validationShare);
        if (nTest + nValidation >= n && n > 0) {
            nValidation = Math.max(0, n - 1 - nTest);
        }
        test.addAll(shuffled.subList(0, nTest));
        validation.addAll(shuffled.subList(nTest, nTest + nValidation));
        train.addAll(shuffled.subList(nTest + nValidation, n));
    }

    private ArtifactRef write(String key, List<Example> examples) throws IOException {
        StringBuilder out = new StringBuilder();
        for (Example e : examples) {
            ObjectNode n = JSON.createObjectNode();
            n.put("text", e.text());
            n.put("label", e.label());
            out.append(JSON.writeValueAsString(n)).append('\n');
        }
        return store.put(
                store.uri(key),
                out.toString().getBytes(StandardCharsets.UTF_8),
                "application/jsonl");
    }

    private static LabelCounts counts(List<Example> examples) {
        LabelCounts.Builder b = LabelCounts.newBuilder();
        Map<String, Long> m = new java.util.TreeMap<>();
        examples.forEach(e -> m.merge(e.label(), 1L, Long::sum));
        b.putAllCounts(m);
        return b.build();
    }
}
