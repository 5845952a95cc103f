package io.tuneline.ingestion.validate;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.proto.v1.BadRecord;
import io.tuneline.proto.v1.BadRecordAction;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.Task;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.CharacterCodingException;
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
 * Streams a dataset once — JSON Lines, CSV/TSV with a header row, or (causal LM) plain text —
 * reports every bad record with its line number and reason, and writes the valid ones in the
 * canonical shape of their {@link RecordShape} as JSON Lines to {@code canonical}, without holding
 * the file. Sequence classification reads {@code {"text", "label"}}; causal LM reads instruction,
 * chat or text records, the shape chosen from the first record that has one.
 */
public final class DatasetValidator {
    static final int MAX_SAMPLES = 100;
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Set<String> ROLES = Set.of("system", "user", "assistant");

    /** What validation found. */
    public record Result(
            long valid,
            long bad,
            List<BadRecord> samples,
            TreeMap<String, Long> labelCounts,
            Map<RejectionReason, Long> rejected,
            RecordShape shape) {}

    /** Told the number of records read so far, after each one; for progress reports. */
    @FunctionalInterface
    public interface Progress {
        Progress NONE = records -> {};

        void records(long seen);
    }

    /** Limits that apply while reading. */
    public record Limits(long maxRecords, int maxLineBytes) {
        public static final Limits NONE = new Limits(Long.MAX_VALUE, 1 << 20);
    }

    private DatasetValidator() {}

    /**
     * @param task {@code TASK_SEQUENCE_CLASSIFICATION} or {@code TASK_CAUSAL_LM}
     */
    public static Result validate(
            InputStream in,
            RecordFormat format,
            Task task,
            DatasetSpec spec,
            OutputStream canonical,
            Limits limits,
            Progress progress)
            throws IOException {
        boolean classification =
                switch (task) {
                    case TASK_SEQUENCE_CLASSIFICATION -> true;
                    case TASK_CAUSAL_LM -> false;
                    default ->
                            throw new DatasetInvalidException(
                                    "TASK_UNSUPPORTED",
                                    "ingestion handles TASK_SEQUENCE_CLASSIFICATION and"
                                            + " TASK_CAUSAL_LM datasets, not "
                                            + task,
                                    List.of());
                };
        Run run = new Run(spec, canonical, limits, progress);
        if (format instanceof RecordFormat.PlainText) {
            if (classification) {
                throw new DatasetInvalidException(
                        "FORMAT_UNSUITABLE",
                        "plain text has no labels: sequence classification needs JSON Lines"
                                + " ({\"text\", \"label\"}) or CSV/TSV with a header row",
                        List.of());
            }
            if (run.splitField != null) {
                throw new DatasetInvalidException(
                        "FORMAT_UNSUITABLE",
                        "plain text has no fields, so dataset.fields.split ('"
                                + run.splitField
                                + "') cannot be read; use JSON Lines or CSV/TSV with a split"
                                + " column",
                        List.of());
            }
            run.shape = RecordShape.TEXT;
            plainText(in, run);
        } else if (format instanceof RecordFormat.Delimited d) {
            delimited(in, d.separator(), classification, run);
        } else {
            if (classification) {
                run.shape = RecordShape.CLASSIFICATION;
            }
            jsonLines(in, run);
        }
        return run.result();
    }

    // ---------------------------------------------------------------- reading

    private static void plainText(InputStream in, Run run) throws IOException {
        LineReader reader = new LineReader(in, run.limits.maxLineBytes());
        for (LineReader.Line l = reader.next(); l != null; l = reader.next()) {
            if (l.problem() == null && l.text().isBlank()) {
                continue;
            }
            run.counting();
            if (l.problem() != null) {
                run.reject(l.number(), l.problem());
            } else {
                ObjectNode n = JSON.createObjectNode();
                n.put("text", l.text());
                run.accept(n, null);
            }
        }
    }

    /**
     * Whether the fast check of {@link CanonicalLine} may stand in for the full parse of a record
     * of {@code shape}: only when the job's field names are the canonical ones and no split field
     * is asked for, so that a line that passes it is also what the full parse would write.
     */
    private static boolean fastPath(Run run, RecordShape shape) {
        if (!FAST_PATH || run.splitField != null || !run.fields.text.equals("text")) {
            return false;
        }
        return switch (shape) {
            case CLASSIFICATION -> run.fields.label.equals("label");
            case TEXT -> true;
            default -> false;
        };
    }

    /** Off only in tests, which compare the fast path's results with the full parse's. */
    static boolean FAST_PATH = true;

    private static void jsonLines(InputStream in, Run run) throws IOException {
        LineReader reader = new LineReader(in, run.limits.maxLineBytes());
        CanonicalLine canonical = new CanonicalLine();
        while (reader.advance()) {
            if (reader.tooLong()) {
                run.counting();
                run.reject(reader.number(), reader.tooLongProblem());
                continue;
            }
            if (run.shape != null && fastPath(run, run.shape)) {
                byte[] b = reader.bytes();
                int from = reader.start();
                int to = reader.end();
                boolean classification = run.shape == RecordShape.CLASSIFICATION;
                if ((classification
                                ? canonical.classification(b, from, to)
                                : canonical.text(b, from, to))
                        && (!canonical.nonAscii() || reader.validUtf8())) {
                    run.counting();
                    String label = classification ? canonical.label(b) : null;
                    if (label != null && !run.declared.isEmpty() && !run.declared.contains(label)) {
                        run.reject(reader.number(), undeclared(label, run.declared));
                    } else {
                        run.acceptLine(b, from, to, label);
                    }
                    continue;
                }
            }
            String decoded = reader.decode();
            LineReader.Line l =
                    decoded == null
                            ? new LineReader.Line(reader.number(), null, LineReader.INVALID_UTF8)
                            : new LineReader.Line(reader.number(), decoded, null);
            if (l.problem() == null && l.text().isBlank()) {
                continue;
            }
            run.counting();
            if (l.problem() != null) {
                run.reject(l.number(), l.problem());
                continue;
            }
            try {
                JsonNode n = parse(l.text());
                if (run.shape == null) {
                    run.shape = detect(n, run.fields);
                    if (run.shape == null) {
                        throw new Bad(
                                "missing field: a causal LM record needs '"
                                        + run.fields.messages
                                        + "' (chat), '"
                                        + run.fields.prompt
                                        + "' and '"
                                        + run.fields.completion
                                        + "' or 'instruction' and 'output' (instruction), or '"
                                        + run.fields.text
                                        + "' (text)");
                    }
                }
                String label = null;
                ObjectNode out;
                switch (run.shape) {
                    case CLASSIFICATION -> {
                        String text = text(n, run.fields.text, "empty text");
                        label = label(n, run.fields.label, run.declared);
                        out = JSON.createObjectNode();
                        out.put("text", text);
                        out.put("label", label);
                    }
                    case INSTRUCTION -> out = instruction(n, run.fields);
                    case CHAT -> out = chat(n, run.fields.messages);
                    default -> {
                        out = JSON.createObjectNode();
                        out.put("text", text(n, run.fields.text, "empty text"));
                    }
                }
                if (run.splitField != null) {
                    out.put("split", split(n.get(run.splitField), run.splitField));
                }
                run.accept(out, label);
            } catch (Bad b) {
                run.reject(l.number(), b.getMessage());
            }
        }
    }

    private static void delimited(InputStream in, char separator, boolean classification, Run run)
            throws IOException {
        CSVFormat format =
                CSVFormat.RFC4180
                        .builder()
                        .setDelimiter(separator)
                        .setHeader()
                        .setSkipHeaderRecord(true)
                        .setIgnoreEmptyLines(true)
                        .get();
        Fields f = run.fields;
        try (MarkingUtf8Reader reader = new MarkingUtf8Reader(in);
                CSVParser parser = CSVParser.parse(reader, format)) {
            List<String> header = parser.getHeaderNames();
            reader.invalidUpTo(parser.getCurrentLineNumber()); // the header's own
            // Prompt/completion or text: canonical name -> column, in canonical order.
            Map<String, String> columns = new java.util.LinkedHashMap<>();
            String instructionColumn = null;
            String inputColumn = null;
            if (classification) {
                run.shape = RecordShape.CLASSIFICATION;
                for (String wanted : List.of(f.text, f.label)) {
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
            } else if (header.contains(f.prompt) && header.contains(f.completion)) {
                run.shape = RecordShape.INSTRUCTION;
                columns.put("prompt", f.prompt);
                columns.put("completion", f.completion);
            } else if (header.contains("instruction") && header.contains("output")) {
                run.shape = RecordShape.INSTRUCTION;
                instructionColumn = "instruction";
                inputColumn = header.contains("input") ? "input" : null;
            } else if (header.contains(f.text)) {
                run.shape = RecordShape.TEXT;
                columns.put("text", f.text);
            } else {
                throw new DatasetInvalidException(
                        "DATASET_INVALID",
                        "the header row has neither columns '"
                                + f.prompt
                                + "' and '"
                                + f.completion
                                + "' nor a column '"
                                + f.text
                                + "' (columns: "
                                + String.join(", ", header)
                                + "); name them in dataset.fields.prompt and"
                                + " dataset.fields.completion, or dataset.fields.text (plain"
                                + " text: set dataset.format to DATASET_FORMAT_TEXT)",
                        List.of());
            }
            if (run.splitField != null && !header.contains(run.splitField)) {
                throw new DatasetInvalidException(
                        "DATASET_INVALID",
                        "the header row has no column '"
                                + run.splitField
                                + "' (columns: "
                                + String.join(", ", header)
                                + "); name the split column in dataset.fields.split",
                        List.of());
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
                    run.counting();
                    run.reject(
                            parser.getCurrentLineNumber() + 1,
                            e.getCause() instanceof CharacterCodingException
                                    ? LineReader.INVALID_UTF8
                                    : "unreadable row: " + e.getCause().getMessage());
                    break;
                }
                long line = parser.getCurrentLineNumber();
                run.counting();
                // A malformed byte decoded as U+FFFD; +1: a last row without a line break.
                if (row.stream().anyMatch(v -> v.indexOf(MarkingUtf8Reader.REPLACEMENT) >= 0)
                        && reader.invalidUpTo(line + 1)) {
                    run.reject(line, LineReader.INVALID_UTF8);
                    continue;
                }
                try {
                    ObjectNode out = JSON.createObjectNode();
                    String label = null;
                    if (run.shape == RecordShape.CLASSIFICATION) {
                        String text = cell(row, f.text);
                        if (text.isBlank()) {
                            throw new Bad("empty text");
                        }
                        label = row.isSet(f.label) ? row.get(f.label) : null;
                        if (label == null || label.isBlank()) {
                            throw new Bad("missing field '" + f.label + "'");
                        }
                        checkDeclared(label, run.declared);
                        out.put("text", text);
                        out.put("label", label);
                    } else if (instructionColumn != null) {
                        String instruction = nonEmpty(cell(row, instructionColumn), "instruction");
                        String input =
                                inputColumn != null && row.isSet(inputColumn)
                                        ? row.get(inputColumn)
                                        : "";
                        out.put("prompt", prompt(instruction, input));
                        out.put("completion", nonEmpty(cell(row, "output"), "output"));
                    } else {
                        for (var c : columns.entrySet()) {
                            String value = cell(row, c.getValue());
                            out.put(
                                    c.getKey(),
                                    run.shape == RecordShape.TEXT
                                            ? nonBlank(value, "empty text")
                                            : nonEmpty(value, c.getValue()));
                        }
                    }
                    if (run.splitField != null) {
                        String split = cell(row, run.splitField);
                        out.put(
                                "split",
                                split(JSON.getNodeFactory().textNode(split), run.splitField));
                    }
                    run.accept(out, label);
                } catch (Bad b) {
                    run.reject(line, b.getMessage());
                }
            }
        }
        if (run.shape == null) {
            run.shape = classification ? RecordShape.CLASSIFICATION : RecordShape.TEXT;
        }
    }

    // ---------------------------------------------------------------- shapes

    /** The shape a causal LM record has, or null when it has none. */
    static RecordShape detect(JsonNode n, Fields f) {
        if (n.has(f.messages)) {
            return RecordShape.CHAT;
        }
        if ((n.has(f.prompt) && n.has(f.completion)) || (n.has("instruction") && n.has("output"))) {
            return RecordShape.INSTRUCTION;
        }
        if (n.has(f.text)) {
            return RecordShape.TEXT;
        }
        return null;
    }

    private static ObjectNode instruction(JsonNode n, Fields f) {
        ObjectNode out = JSON.createObjectNode();
        if (n.has(f.prompt) || n.has(f.completion) || !(n.has("instruction") || n.has("output"))) {
            out.put("prompt", text(n, f.prompt, "empty text in '" + f.prompt + "'"));
            out.put("completion", text(n, f.completion, "empty text in '" + f.completion + "'"));
            return out;
        }
        String instruction = text(n, "instruction", "empty text in 'instruction'");
        JsonNode input = n.get("input");
        String inputText = "";
        if (input != null && !input.isNull()) {
            if (!input.isTextual()) {
                throw new Bad(wrongType("input", input, "a string"));
            }
            inputText = input.asText();
        }
        out.put("prompt", prompt(instruction, inputText));
        out.put("completion", text(n, "output", "empty text in 'output'"));
        return out;
    }

    private static String prompt(String instruction, String input) {
        return input.isBlank() ? instruction : instruction + "\n\n" + input;
    }

    private static ObjectNode chat(JsonNode n, String field) {
        JsonNode messages = n.get(field);
        if (messages == null) {
            throw new Bad("missing field '" + field + "'");
        }
        if (!messages.isArray()) {
            throw new Bad(wrongType(field, messages, "an array"));
        }
        ArrayNode out = JSON.createArrayNode();
        boolean assistant = false;
        int i = 0;
        for (JsonNode m : messages) {
            i++;
            if (!m.isObject()) {
                throw new Bad("message " + i + ": not a JSON object");
            }
            JsonNode role = m.get("role");
            if (role == null || !role.isTextual()) {
                throw new Bad(
                        "message "
                                + i
                                + ": "
                                + (role == null
                                        ? "missing field 'role'"
                                        : "role is " + type(role) + ", not a string"));
            }
            if (!ROLES.contains(role.asText())) {
                throw new Bad(
                        "message "
                                + i
                                + ": role '"
                                + role.asText()
                                + "' is not system, user or assistant");
            }
            JsonNode content = m.get("content");
            if (content == null) {
                throw new Bad("message " + i + ": missing field 'content'");
            }
            if (!content.isTextual()) {
                throw new Bad("message " + i + ": content is " + type(content) + ", not a string");
            }
            if (content.asText().isBlank()) {
                throw new Bad("message " + i + ": empty content");
            }
            assistant |= role.asText().equals("assistant");
            ObjectNode o = out.addObject();
            o.put("role", role.asText());
            o.put("content", content.asText());
        }
        if (!assistant) {
            throw new Bad(
                    "no assistant message in '"
                            + field
                            + "'"
                            + (i == 0 ? " (it is empty)" : "")
                            + ": a chat needs at least one to learn from");
        }
        ObjectNode record = JSON.createObjectNode();
        record.set("messages", out);
        return record;
    }

    /** "train", "validation" or "test" from a split value. */
    static String split(JsonNode value, String field) {
        if (value == null) {
            throw new Bad("missing field '" + field + "'");
        }
        if (!value.isTextual()) {
            throw new Bad(wrongType(field, value, "a string"));
        }
        return switch (value.asText().strip().toLowerCase(Locale.ROOT)) {
            case "train" -> "train";
            case "validation", "valid", "val", "dev" -> "validation";
            case "test" -> "test";
            default ->
                    throw new Bad(
                            "split '"
                                    + value.asText()
                                    + "' is not train, validation (valid, val, dev) or test");
        };
    }

    // ---------------------------------------------------------------- fields

    private static JsonNode parse(String line) {
        JsonNode n;
        try {
            n = JSON.readTree(line);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new Bad("bad JSON: " + e.getOriginalMessage());
        } catch (IOException e) {
            throw new Bad("bad JSON: " + e.getMessage());
        }
        if (n == null || !n.isObject()) {
            throw new Bad("not a JSON object");
        }
        return n;
    }

    /** A string field that must be there and not blank. */
    private static String text(JsonNode n, String field, String whenEmpty) {
        JsonNode v = n.get(field);
        if (v == null) {
            throw new Bad("missing field '" + field + "'");
        }
        if (!v.isTextual()) {
            throw new Bad(wrongType(field, v, "a string"));
        }
        return nonBlank(v.asText(), whenEmpty);
    }

    private static String label(JsonNode n, String field, Set<String> declared) {
        JsonNode label = n.get(field);
        if (label == null) {
            throw new Bad("missing field '" + field + "'");
        }
        if (!label.isTextual() && !label.isNumber() && !label.isBoolean()) {
            throw new Bad(wrongType(field, label, "a label"));
        }
        String value = label.asText();
        checkDeclared(value, declared);
        return value;
    }

    private static void checkDeclared(String label, Set<String> declared) {
        if (!declared.isEmpty() && !declared.contains(label)) {
            throw new Bad(undeclared(label, declared));
        }
    }

    private static String undeclared(String label, Set<String> declared) {
        return "label '"
                + label
                + "' is not in the declared set "
                + declared.stream().sorted().toList();
    }

    private static String cell(CSVRecord row, String column) {
        if (!row.isSet(column)) {
            throw new Bad("missing field '" + column + "'");
        }
        return row.get(column);
    }

    private static String nonEmpty(String value, String field) {
        return nonBlank(value, "empty text in '" + field + "'");
    }

    private static String nonBlank(String value, String whenEmpty) {
        if (value.isBlank()) {
            throw new Bad(whenEmpty);
        }
        return value;
    }

    private static String wrongType(String field, JsonNode v, String wanted) {
        return "field '" + field + "' is " + type(v) + ", not " + wanted;
    }

    private static String type(JsonNode v) {
        return v.getNodeType().name().toLowerCase(Locale.ROOT);
    }

    /** A record's problem, as the message users read; no stack trace, it is not an error. */
    private static final class Bad extends RuntimeException {
        Bad(String message) {
            super(message, null, false, false);
        }
    }

    /** The job's field names with their defaults. */
    record Fields(String text, String label, String prompt, String completion, String messages) {
        static Fields of(DatasetSpec spec) {
            var f = spec.getFields();
            return new Fields(
                    or(f.getText(), "text"),
                    or(f.getLabel(), "label"),
                    or(f.getPrompt(), "prompt"),
                    or(f.getCompletion(), "completion"),
                    or(f.getMessages(), "messages"));
        }

        private static String or(String configured, String fallback) {
            return configured.isBlank() ? fallback : configured;
        }
    }

    /** The counts and output of one validation. */
    private static final class Run {
        final Fields fields;
        final String splitField;
        final Set<String> declared;
        final OutputStream canonical;
        final Limits limits;
        final Progress progress;
        final List<BadRecord> samples = new ArrayList<>();
        final Map<RejectionReason, Long> rejected = new EnumMap<>(RejectionReason.class);
        final TreeMap<String, Long> labels = new TreeMap<>();
        RecordShape shape;
        long valid;
        long bad;

        Run(DatasetSpec spec, OutputStream canonical, Limits limits, Progress progress) {
            this.fields = Fields.of(spec);
            this.splitField =
                    spec.getFields().getSplit().isBlank() ? null : spec.getFields().getSplit();
            this.declared = new HashSet<>(spec.getLabelsList());
            this.canonical = canonical;
            this.limits = limits;
            this.progress = progress;
        }

        /** Before each record: more records than the limit fail the dataset at once. */
        void counting() {
            if (valid + bad + 1 > limits.maxRecords()) {
                throw new DatasetInvalidException(
                        "DATASET_TOO_LARGE",
                        "the dataset has more than tuneline.ingestion.max-records ("
                                + limits.maxRecords()
                                + ") records",
                        List.of());
            }
        }

        void accept(ObjectNode record, String label) throws IOException {
            valid++;
            if (label != null) {
                labels.merge(label, 1L, Long::sum);
            }
            canonical.write(JSON.writeValueAsBytes(record));
            canonical.write('\n');
            progress.records(valid + bad);
        }

        /** A record whose line is already its canonical form: written as read. */
        void acceptLine(byte[] b, int from, int to, String label) throws IOException {
            valid++;
            if (label != null) {
                labels.merge(label, 1L, Long::sum);
            }
            canonical.write(b, from, to - from);
            canonical.write('\n');
            progress.records(valid + bad);
        }

        void reject(long line, String reason) {
            bad++;
            rejected.merge(RejectionReason.of(reason), 1L, Long::sum);
            if (samples.size() < MAX_SAMPLES) {
                samples.add(BadRecord.newBuilder().setLine(line).setReason(reason).build());
            }
            progress.records(valid + bad);
        }

        Result result() {
            return new Result(
                    valid,
                    bad,
                    samples,
                    labels,
                    rejected,
                    shape == null ? RecordShape.TEXT : shape);
        }
    }

    // ---------------------------------------------------------------- policy

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
        if (r.bad() > 0) {
            boolean skip =
                    spec.getBadRecords().getAction() == BadRecordAction.BAD_RECORD_ACTION_SKIP;
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
        }
        if (r.shape() == RecordShape.CLASSIFICATION && r.labelCounts().size() < 2) {
            throw new DatasetInvalidException(
                    "DATASET_INVALID",
                    "classification needs at least two labels; found " + r.labelCounts().keySet(),
                    List.of());
        }
    }
}
