package io.tuneline.ingestion.validate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.proto.v1.BadRecord;
import io.tuneline.proto.v1.BadRecordAction;
import io.tuneline.proto.v1.DatasetSpec;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeMap;

/**
 * Streams a JSON Lines classification file once ({@code {"text": ..., "label": ...}}, field names
 * from the job) and reports every bad line with its number and reason, without holding the file.
 */
public final class JsonlClassificationValidator {
    static final int MAX_SAMPLES = 100;
    private static final ObjectMapper JSON = new ObjectMapper();

    /** What validation found. */
    public record Result(
            long valid, long bad, List<BadRecord> samples, TreeMap<String, Long> labelCounts) {}

    private JsonlClassificationValidator() {}

    public static Result validate(InputStream in, DatasetSpec spec) throws IOException {
        String textField =
                spec.getFields().getText().isBlank() ? "text" : spec.getFields().getText();
        String labelField =
                spec.getFields().getLabel().isBlank() ? "label" : spec.getFields().getLabel();
        Set<String> declared = new HashSet<>(spec.getLabelsList());
        var decoder =
                StandardCharsets.UTF_8
                        .newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT);
        long valid = 0;
        long bad = 0;
        List<BadRecord> samples = new ArrayList<>();
        TreeMap<String, Long> labels = new TreeMap<>();
        try (BufferedReader reader = new BufferedReader(new InputStreamReader(in, decoder))) {
            long line = 0;
            while (true) {
                String text;
                try {
                    text = reader.readLine();
                } catch (CharacterCodingException e) {
                    line++;
                    bad++;
                    add(samples, line, "invalid UTF-8");
                    // The rest of the file cannot be decoded reliably either.
                    break;
                }
                if (text == null) {
                    break;
                }
                line++;
                if (text.isBlank()) {
                    continue;
                }
                String problem = check(text, textField, labelField, declared, labels);
                if (problem == null) {
                    valid++;
                } else {
                    bad++;
                    add(samples, line, problem);
                }
            }
        }
        return new Result(valid, bad, samples, labels);
    }

    private static String check(
            String line,
            String textField,
            String labelField,
            Set<String> declared,
            TreeMap<String, Long> labels) {
        JsonNode n;
        try {
            n = JSON.readTree(line);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            return "bad JSON: " + e.getOriginalMessage();
        } catch (IOException e) {
            return "bad JSON: " + e.getMessage();
        }
        if (n == null || !n.isObject()) {
            return "not a JSON object";
        }
        JsonNode text = n.get(textField);
        if (text == null) {
            return "missing field '" + textField + "'";
        }
        if (!text.isTextual()) {
            return "field '"
                    + textField
                    + "' is "
                    + text.getNodeType().name().toLowerCase(Locale.ROOT)
                    + ", not a string";
        }
        if (text.asText().isBlank()) {
            return "empty text";
        }
        JsonNode label = n.get(labelField);
        if (label == null) {
            return "missing field '" + labelField + "'";
        }
        if (!label.isTextual() && !label.isNumber() && !label.isBoolean()) {
            return "field '"
                    + labelField
                    + "' is "
                    + label.getNodeType().name().toLowerCase(Locale.ROOT)
                    + ", not a label";
        }
        String value = label.asText();
        if (!declared.isEmpty() && !declared.contains(value)) {
            return "label '"
                    + value
                    + "' is not in the declared set "
                    + declared.stream().sorted().toList();
        }
        labels.merge(value, 1L, Long::sum);
        return null;
    }

    private static void add(List<BadRecord> samples, long line, String reason) {
        if (samples.size() < MAX_SAMPLES) {
            samples.add(BadRecord.newBuilder().setLine(line).setReason(reason).build());
        }
    }

    /** Applies the job's policy; throws {@link DatasetInvalidException} when it is broken. */
    public static void enforce(Result r, DatasetSpec spec) {
        long total = r.valid() + r.bad();
        List<String> details =
                r.samples().stream()
                        .map(b -> "line " + b.getLine() + ": " + b.getReason())
                        .toList();
        if (total == 0) {
            throw new DatasetInvalidException(
                    "DATASET_EMPTY", "the dataset has no records", List.of());
        }
        if (r.bad() == 0) {
            if (r.labelCounts().size() < 2) {
                throw new DatasetInvalidException(
                        "DATASET_INVALID",
                        "classification needs at least two labels; found "
                                + r.labelCounts().keySet(),
                        List.of());
            }
            return;
        }
        boolean skip = spec.getBadRecords().getAction() == BadRecordAction.BAD_RECORD_ACTION_SKIP;
        double maxFraction =
                spec.getBadRecords().getMaxBadFraction() > 0
                        ? spec.getBadRecords().getMaxBadFraction()
                        : 0.01;
        double fraction = (double) r.bad() / total;
        if (!skip) {
            throw new DatasetInvalidException(
                    "DATASET_INVALID",
                    r.bad()
                            + " of "
                            + total
                            + " records are invalid, first at "
                            + details.get(0)
                            + "; fix them or set dataset.bad_records.action to BAD_RECORD_ACTION_SKIP",
                    details);
        }
        if (fraction > maxFraction) {
            throw new DatasetInvalidException(
                    "DATASET_INVALID",
                    String.format(
                            Locale.ROOT,
                            "%d of %d records (%.1f%%) are invalid, more than the allowed %.1f%% (dataset.bad_records.max_bad_fraction); first at %s",
                            r.bad(),
                            total,
                            100 * fraction,
                            100 * maxFraction,
                            details.get(0)),
                    details);
        }
        if (r.labelCounts().size() < 2) {
            throw new DatasetInvalidException(
                    "DATASET_INVALID",
                    "classification needs at least two labels; found " + r.labelCounts().keySet(),
                    List.of());
        }
    }
}
