package io.tuneline.ingestion.validate;

import io.tuneline.proto.v1.DatasetFormat;

/** How a dataset's records are written. */
public sealed interface RecordFormat {
    /** One JSON object per line. */
    record JsonLines() implements RecordFormat {}

    /** A header row, then one record per row (RFC 4180 quoting), split by {@code separator}. */
    record Delimited(char separator) implements RecordFormat {}

    /** One example per non-empty line, text only. */
    record PlainText() implements RecordFormat {}

    RecordFormat JSONL = new JsonLines();
    RecordFormat CSV = new Delimited(',');
    RecordFormat TSV = new Delimited('\t');
    RecordFormat TEXT = new PlainText();

    default DatasetFormat proto() {
        if (this instanceof JsonLines) {
            return DatasetFormat.DATASET_FORMAT_JSONL;
        }
        if (this instanceof Delimited d) {
            return d.separator() == '\t'
                    ? DatasetFormat.DATASET_FORMAT_TSV
                    : DatasetFormat.DATASET_FORMAT_CSV;
        }
        return DatasetFormat.DATASET_FORMAT_TEXT;
    }

    static RecordFormat of(DatasetFormat format) {
        return switch (format) {
            case DATASET_FORMAT_JSONL -> JSONL;
            case DATASET_FORMAT_CSV -> CSV;
            case DATASET_FORMAT_TSV -> TSV;
            case DATASET_FORMAT_TEXT -> TEXT;
            default -> throw new IllegalArgumentException("no record format for " + format);
        };
    }

    /**
     * Guesses the format from the first non-empty line: a JSON object is JSON Lines, a line with
     * tabs a TSV header, with commas a CSV header, anything else plain text.
     */
    static RecordFormat detect(String firstLine) {
        String line = firstLine.strip();
        if (line.startsWith("{")) {
            return JSONL;
        }
        if (line.indexOf('\t') >= 0) {
            return TSV;
        }
        if (line.indexOf(',') >= 0) {
            return CSV;
        }
        return TEXT;
    }
}
