package io.tuneline.engine.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * One causal language-modelling example: token ids and labels aligned with them ({@link
 * CausalLmLoss#IGNORE} where no loss is taken, such as prompt tokens), as preprocessing writes
 * packed blocks and instruction examples: {@code {"input_ids": [...], "labels": [...]}}.
 */
public record LmExample(long[] inputIds, long[] labels) {
    private static final ObjectMapper JSON = new ObjectMapper();

    public LmExample {
        if (inputIds.length < 2) {
            throw new IllegalArgumentException("a causal LM example needs at least 2 tokens");
        }
        if (labels.length != inputIds.length) {
            throw new IllegalArgumentException(
                    "labels ("
                            + labels.length
                            + ") and input_ids ("
                            + inputIds.length
                            + ") differ in length");
        }
    }

    /** Plain language modelling: every next token is scored. */
    public static LmExample of(long... ids) {
        return new LmExample(ids, ids.clone());
    }

    /** Reads JSON Lines of {@code input_ids} and optional {@code labels} (default: the ids). */
    public static List<LmExample> readJsonl(Path file) throws IOException {
        List<LmExample> out = new ArrayList<>();
        try (BufferedReader r = Files.newBufferedReader(file)) {
            String line;
            int number = 0;
            while ((line = r.readLine()) != null) {
                number++;
                if (line.isBlank()) {
                    continue;
                }
                try {
                    out.add(fromJson(JSON.readTree(line)));
                } catch (IOException | IllegalArgumentException e) {
                    throw new IllegalArgumentException(
                            file + ", line " + number + ": " + e.getMessage(), e);
                }
            }
        }
        return out;
    }

    /** One {@code {"input_ids", "labels"?}} object; labels default to the ids. */
    public static LmExample fromJson(JsonNode n) {
        long[] ids = longs(n.path("input_ids"), "input_ids");
        JsonNode labels = n.path("labels");
        return labels.isMissingNode() ? of(ids) : new LmExample(ids, longs(labels, "labels"));
    }

    private static long[] longs(JsonNode array, String field) {
        if (!array.isArray()) {
            throw new IllegalArgumentException("'" + field + "' is not an array");
        }
        long[] v = new long[array.size()];
        for (int i = 0; i < v.length; i++) {
            v[i] = array.get(i).asLong();
        }
        return v;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LmExample e
                && Arrays.equals(inputIds, e.inputIds)
                && Arrays.equals(labels, e.labels);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(inputIds) + Arrays.hashCode(labels);
    }

    @Override
    public String toString() {
        return "LmExample" + Arrays.toString(inputIds) + " labels " + Arrays.toString(labels);
    }
}
