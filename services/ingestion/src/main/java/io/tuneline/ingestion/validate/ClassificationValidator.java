package io.tuneline.ingestion.validate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.proto.v1.BadRecord;
import io.tuneline.proto.v1.BadRecordAction;
import io.tuneline.proto.v1.DatasetSpec;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.commons.csv.CSVFormat;
import org.apache.commons.csv.CSVParser;
import org.apache.commons.csv.CSVRecord;

/**
 * Streams a classification dataset once — JSON Lines ({@code {"text": ..., "label": ...}}) or
 * CSV/TSV with a header row, field names from the job — reports every bad record with its line
 * number and reason, and writes the valid ones in the canonical shape ({@code {"text", "label"}}
 * JSON Lines) to {@code canonical}, without holding the file.
 */
public final class ClassificationValidator {
    static final int MAX_SAMPLES = 100;
    private static final ObjectMapper JSON = new ObjectMapper();

    /** What validation found. */
    public record Result(
            long valid,
            long bad,
            List<BadRecord> samples,
            TreeMap<String, Long> labelCounts,
            Map<RejectionReason, Long> rejected) {}

    private ClassificationValidator() {}

    /** Validates JSON Lines, discarding the canonical records. */
    public static Result validate(InputStream in, DatasetSpec spec) throws IOException {
        return validate(
                in,
                RecordFormat.JSONL,
                spec,
                OutputStream.nullOutputStream(),
                Long.MAX_VALUE,
                1 << 20);
    }

    /**
     * @param maxRecords more records than this (valid or not) fail the dataset at once
     */
    public static Result validate(
            InputStream in,
            RecordFormat format,
            DatasetSpec spec,
            OutputStream canonical,
            long maxRecords,
            int maxLineBytes)
            throws IOException {
        if (format instanceof RecordFormat.PlainText) {
            throw new DatasetInvalidException(
                    "FORMAT_UNSUITABLE",
                    "plain text has no labels: sequence classification needs JSON Lines"
                            + " ({\"text\", \"label\"}) or CSV/TSV with a header row",
                    List.of());
        }
        if (format instanceof RecordFormat.Delimited d) {
            return validateDelimited(in, d.separator(), spec, canonical, maxRecords);
        }
        return validateJsonLines(in, spec, canonical, maxRecords, maxLineBytes);
    }

    private static void checkCount(long records, long maxRecords) {
        if (records > maxRecords) {
            throw new DatasetInvalidException(
                    "DATASET_TOO_LARGE",
                    "the dataset has more than tuneline.ingestion.max-records ("
                            + maxRecords
                            + ") records",
                    List.of());
        }
    }

    private static Result validateJsonLines(
            InputStream in,
            DatasetSpec spec,
            OutputStream canonical,
            long maxRecords,
            int maxLineBytes)
            throws IOException {
        String textField =
                spec.getFields().getText().isBlank() ? "text" : spec.getFields().getText();
        String labelField =
                spec.getFields().getLabel().isBlank() ? "label" : spec.getFields().getLabel();
        Set<String> declared = new HashSet<>(spec.getLabelsList());
        long valid = 0;
        long bad = 0;
        List<BadRecord> samples = new ArrayList<>();
        Map<RejectionReason, Long> rejected = new EnumMap<>(RejectionReason.class);
        TreeMap<String, Long> labels = new TreeMap<>();
        LineReader reader = new LineReader(in, maxLineBytes);
        for (LineReader.Line l = reader.next(); l != null; l = reader.next()) {
            if (l.problem() != null) {
                checkCount(valid + bad + 1, maxRecords);
                bad++;
                add(samples, rejected, l.number(), l.problem());
                continue;
            }
            if (l.text().isBlank()) {
                continue;
            }
            checkCount(valid + bad + 1, maxRecords);
            Checked c = check(l.text(), textField, labelField, declared, labels);
            if (c.problem() == null) {
                valid++;
                writeCanonical(canonical, c.text(), c.label());
            } else {
                bad++;
                add(samples, rejected, l.number(), c.problem());
            }
        }
        return new Result(valid, bad, samples, labels, rejected);
    }

    private static Result validateDelimited(
            InputStream in,
            char separator,
            DatasetSpec spec,
            OutputStream canonical,
            long maxRecords)
            throws IOException {
        String textField = field(spec.getFields().getText(), "text");
        String labelField = field(spec.getFields().getLabel(), "label");
        Set<String> declared = new HashSet<>(spec.getLabelsList());
        CSVFormat format =
                CSVFormat.RFC4180
                        .builder()
                        .setDelimiter(separator)
                        .setHeader()
                        .setSkipHeaderRecord(true)
                        .setIgnoreEmptyLines(true)
                        .get();
        long valid = 0;
        long bad = 0;
        List<BadRecord> samples = new ArrayList<>();
        Map<RejectionReason, Long> rejected = new EnumMap<>(RejectionReason.class);
        TreeMap<String, Long> labels = new TreeMap<>();
        try (Reader reader = new InputStreamReader(in, strictUtf8());
                CSVParser parser = CSVParser.parse(reader, format)) {
            List<String> header = parser.getHeaderNames();
            for (String wanted : List.of(textField, labelField)) {
                if (!header.contains(wanted)) {
                    throw new DatasetInvalidException(
                            "DATASET_INVALID",
                            "the header row has no column '"
                                    + wanted
                                    + "' (columns: "
                                    + String.join(", ", header)
                                    + "); name the columns in dataset.fields.text and"
                                    + " dataset.fields.label",
                            List.of());
                }
            }
            var rows = parser.iterator();
            while (true) {
                CSVRecord row;
                try {
                    if (!rows.hasNext()) {
                        break;
                    }
                    row = rows.next();
                } catch (UncheckedIOException e) {
                    bad++;
                    add(
                            samples,
                            rejected,
                            parser.getCurrentLineNumber() + 1,
                            e.getCause() instanceof CharacterCodingException
                                    ? "invalid UTF-8"
                                    : "unreadable row: " + e.getCause().getMessage());
                    break;
                }
                long line = parser.getCurrentLineNumber();
                checkCount(valid + bad + 1, maxRecords);
                String problem = null;
                String text = row.isSet(textField) ? row.get(textField) : null;
                String label = row.isSet(labelField) ? row.get(labelField) : null;
                if (text == null) {
                    problem = "missing field '" + textField + "'";
                } else if (text.isBlank()) {
                    problem = "empty text";
                } else if (label == null || label.isBlank()) {
                    problem = "missing field '" + labelField + "'";
                } else if (!declared.isEmpty() && !declared.contains(label)) {
                    problem =
                            "label '"
                                    + label
                                    + "' is not in the declared set "
                                    + declared.stream().sorted().toList();
                }
                if (problem == null) {
                    valid++;
                    labels.merge(label, 1L, Long::sum);
                    writeCanonical(canonical, text, label);
                } else {
                    bad++;
                    add(samples, rejected, line, problem);
                }
            }
        }
        return new Result(valid, bad, samples, labels, rejected);
    }

    private static java.nio.charset.CharsetDecoder strictUtf8() {
        return StandardCharsets.UTF_8
                .newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
    }

    private static String field(String configured, String fallback) {
        return configured.isBlank() ? fallback : configured;
    }

    private static void writeCanonical(OutputStream out, String text, String label)
            throws IOException {
        ObjectNode n = JSON.createObjectNode();
        n.put("text", text);
        n.put("label", label);
        out.write(JSON.writeValueAsBytes(n));
        out.write('\n');
    }

    /** One checked JSON line: its text and label, or the problem. */
    private record Checked(String text, String label, String problem) {
        static Checked problem(String problem) {
            return new Checked(null, null, problem);
        }
    }

    private static Checked check(
            String line,
            String textField,
            String labelField,
            Set<String> declared,
            TreeMap<String, Long> labels) {
        JsonNode n;
        try {
            n = JSON.readTree(line);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            return Checked.problem("bad JSON: " + e.getOriginalMessage());
        } catch (IOException e) {
            return Checked.problem("bad JSON: " + e.getMessage());
        }
        if (n == null || !n.isObject()) {
            return Checked.problem("not a JSON object");
        }
        JsonNode text = n.get(textField);
        if (text == null) {
            return Checked.problem("missing field '" + textField + "'");
        }
        if (!text.isTextual()) {
            return Checked.problem(
                    "field '"
                            + textField
                            + "' is "
                            + text.getNodeType().name().toLowerCase(Locale.ROOT)
                            + ", not a string");
        }
        if (text.asText().isBlank()) {
            return Checked.problem("empty text");
        }
        JsonNode label = n.get(labelField);
        if (label == null) {
            return Checked.problem("missing field '" + labelField + "'");
        }
        if (!label.isTextual() && !label.isNumber() && !label.isBoolean()) {
            return Checked.problem(
                    "field '"
                            + labelField
                            + "' is "
                            + label.getNodeType().name().toLowerCase(Locale.ROOT)
                            + ", not a label");
        }
        String value = label.asText();
        if (!declared.isEmpty() && !declared.contains(value)) {
            return Checked.problem(
                    "label '"
                            + value
                            + "' is not in the declared set "
                            + declared.stream().sorted().toList());
        }
        labels.merge(value, 1L, Long::sum);
        return new Checked(text.asText(), value, null);
    }

    private static void add(
            List<BadRecord> samples,
            Map<RejectionReason, Long> rejected,
            long line,
            String reason) {
        rejected.merge(RejectionReason.of(reason), 1L, Long::sum);
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
