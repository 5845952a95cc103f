package io.tuneline.engine.io.hf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.function.Function;

/**
 * Reading a Hugging Face {@code config.json}: the file (errors prefixed with its path), the JSON
 * object, and integer fields checked as integers. Each architecture's config parses its own fields
 * on top.
 */
public final class ConfigJson {
    private static final ObjectMapper JSON = new ObjectMapper();

    private ConfigJson() {}

    /**
     * Reads {@code config.json} (a file, or a model directory containing one) with {@code parse}; a
     * problem is reported with the file's path.
     */
    public static <T> T read(Path path, Function<String, T> parse) throws IOException {
        Path file = Files.isDirectory(path) ? path.resolve("config.json") : path;
        String text;
        try {
            text = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new NoSuchFileException(file + " (a model directory needs config.json)");
        }
        try {
            return parse.apply(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
        }
    }

    /** The JSON object {@code json} holds; anything else is an IllegalArgumentException. */
    public static JsonNode object(String json) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (IOException e) {
            throw new IllegalArgumentException("config.json is not valid JSON: " + e.getMessage());
        }
        if (root == null || !root.isObject()) {
            throw new IllegalArgumentException("config.json is not a JSON object");
        }
        return root;
    }

    /** An integer field that must be present. */
    public static int required(JsonNode root, String field) {
        JsonNode n = root.path(field);
        if (n.isMissingNode() || n.isNull()) {
            throw new IllegalArgumentException("config.json lacks '" + field + "'");
        }
        return integer(field, n);
    }

    /** An integer field, or {@code fallback} when absent or null. */
    public static int optional(JsonNode root, String field, int fallback) {
        JsonNode n = root.path(field);
        return n.isMissingNode() || n.isNull() ? fallback : integer(field, n);
    }

    private static int integer(String field, JsonNode n) {
        if (!n.canConvertToInt() || !n.isIntegralNumber()) {
            throw new IllegalArgumentException("'" + field + "' must be an integer, was " + n);
        }
        return n.intValue();
    }
}
