package io.tuneline.engine.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads a prepared classification split: JSON Lines of {@code {"text": ..., "label": ...}} as
 * preprocessing writes them, labels mapped to their index in {@code labels}.
 */
public final class PreparedSplit {
    private static final ObjectMapper JSON = new ObjectMapper();

    private PreparedSplit() {}

    /**
     * @param where the split's location, for error messages
     */
    public static List<LabelledText> read(InputStream in, List<String> labels, String where)
            throws IOException {
        List<LabelledText> out = new ArrayList<>();
        try (BufferedReader r =
                new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            long line = 0;
            for (String text; (text = r.readLine()) != null; ) {
                line++;
                if (text.isBlank()) {
                    continue;
                }
                JsonNode n = JSON.readTree(text);
                int label = labels.indexOf(n.path("label").asText());
                if (label < 0 || !n.hasNonNull("text")) {
                    throw new IllegalArgumentException(
                            where
                                    + " line "
                                    + line
                                    + ": needs \"text\" and a \"label\" among "
                                    + labels);
                }
                out.add(new LabelledText(n.get("text").asText(), label));
            }
        }
        if (out.isEmpty()) {
            throw new IllegalArgumentException(where + " has no examples");
        }
        return out;
    }
}
