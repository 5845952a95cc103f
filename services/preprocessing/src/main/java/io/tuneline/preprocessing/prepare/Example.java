package io.tuneline.preprocessing.prepare;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * One canonical record as ingestion writes it, in one of four shapes, normalised: classification
 * {@code {"text","label"}}, instruction {@code {"prompt","completion"}}, chat {@code
 * {"messages":[{"role","content"}]}} and plain {@code {"text"}}; each may name its {@code split}.
 */
sealed interface Example {
    /** The split the data itself names, or null. */
    String split();

    /** What duplicates are judged on. */
    String key();

    /** True when nothing is left to learn from after normalisation. */
    boolean isEmpty();

    /** The record as written to a prepared split (tokens are added by the caller). */
    ObjectNode toJson();

    record Classification(String text, String label, String split) implements Example {
        public String key() {
            return text;
        }

        public boolean isEmpty() {
            return text.isEmpty();
        }

        public ObjectNode toJson() {
            ObjectNode n = JsonNodeFactory.instance.objectNode();
            n.put("text", text);
            n.put("label", label);
            return n;
        }
    }

    record Instruction(String prompt, String completion, String split) implements Example {
        public String key() {
            return prompt + "\n\n" + completion;
        }

        public boolean isEmpty() {
            return completion.isEmpty();
        }

        public ObjectNode toJson() {
            ObjectNode n = JsonNodeFactory.instance.objectNode();
            n.put("prompt", prompt);
            n.put("completion", completion);
            return n;
        }
    }

    record Message(String role, String content) {}

    record Chat(List<Message> messages, String split) implements Example {
        public String key() {
            StringBuilder b = new StringBuilder();
            messages.forEach(m -> b.append(m.role()).append(": ").append(m.content()).append('\n'));
            return b.toString();
        }

        public boolean isEmpty() {
            return messages.stream()
                    .noneMatch(m -> m.role().equals("assistant") && !m.content().isEmpty());
        }

        public ObjectNode toJson() {
            ObjectNode n = JsonNodeFactory.instance.objectNode();
            ArrayNode a = n.putArray("messages");
            messages.forEach(m -> a.addObject().put("role", m.role()).put("content", m.content()));
            return n;
        }
    }

    record Text(String text, String split) implements Example {
        public String key() {
            return text;
        }

        public boolean isEmpty() {
            return text.isEmpty();
        }

        public ObjectNode toJson() {
            ObjectNode n = JsonNodeFactory.instance.objectNode();
            n.put("text", text);
            return n;
        }
    }

    /** The record shapes, as {@code DatasetIngested.record_shape} names them. */
    enum Shape {
        CLASSIFICATION,
        INSTRUCTION,
        CHAT,
        TEXT;

        static Shape of(String name) {
            return name == null || name.isBlank()
                    ? CLASSIFICATION
                    : valueOf(name.toUpperCase(Locale.ROOT));
        }

        boolean causal() {
            return this != CLASSIFICATION;
        }
    }

    /**
     * Reads a canonical record; null when it does not have the shape (ingestion has validated every
     * record, so this is an older or foreign file, and such lines are skipped).
     *
     * @param textField and {@code labelField}: the field names, "text" and "label" for canonical
     *     records
     */
    static Example parse(
            JsonNode n, Shape shape, String textField, String labelField, Normalization norm) {
        if (n == null || !n.isObject()) {
            return null;
        }
        String split = n.path("split").isTextual() ? n.get("split").asText() : null;
        return switch (shape) {
            case CLASSIFICATION ->
                    n.path(textField).isTextual() && n.hasNonNull(labelField)
                            ? new Classification(
                                    norm.flat(n.get(textField).asText()),
                                    n.get(labelField).asText(),
                                    split)
                            : null;
            case TEXT ->
                    n.path("text").isTextual()
                            ? new Text(norm.multiline(n.get("text").asText()), split)
                            : null;
            case INSTRUCTION ->
                    n.path("prompt").isTextual() && n.path("completion").isTextual()
                            ? new Instruction(
                                    norm.multiline(n.get("prompt").asText()),
                                    norm.multiline(n.get("completion").asText()),
                                    split)
                            : null;
            case CHAT -> {
                if (!n.path("messages").isArray()) {
                    yield null;
                }
                List<Message> messages = new ArrayList<>();
                for (JsonNode m : n.get("messages")) {
                    if (!m.path("role").isTextual() || !m.path("content").isTextual()) {
                        yield null;
                    }
                    messages.add(
                            new Message(
                                    m.get("role").asText(),
                                    norm.multiline(m.get("content").asText())));
                }
                yield new Chat(List.copyOf(messages), split);
            }
        };
    }

    /**
     * Unicode NFC (TR #15) for every text; lower-casing when the base model's tokenizer lower-cases
     * (an uncased model), so casing variants become exact duplicates.
     */
    record Normalization(boolean lowercase) {
        private static final Pattern TRAILING = Pattern.compile("[ \\t\\x0B\\f\\u00A0]+\\n");
        private static final Pattern BLANK_LINES = Pattern.compile("\\n{3,}");

        /**
         * Classification text: every whitespace run becomes one space, then trimmed. What {@code
         * \s+} replaced by a space and then {@link String#strip} gave, in one pass that copies
         * nothing when the text is already flat (the regular expression was about a quarter of the
         * workers' Java samples in pass 1); {@code \s} is [ \t\n\x0B\f\r], while strip also drops
         * other Unicode spaces at the ends.
         */
        String flat(String s) {
            String t = nfc(s);
            StringBuilder b = null;
            boolean gap = false;
            for (int i = 0; i < t.length(); i++) {
                char c = t.charAt(i);
                boolean space = isSpace(c);
                if (b == null) {
                    // Copy nothing while the text is already flat: single spaces between words.
                    if (!space
                            || (c == ' '
                                    && i > 0
                                    && i + 1 < t.length()
                                    && !isSpace(t.charAt(i + 1)))) {
                        continue;
                    }
                    b = new StringBuilder(t.length()).append(t, 0, i);
                }
                if (space) {
                    gap = true;
                    continue;
                }
                if (gap) {
                    b.append(' ');
                    gap = false;
                }
                b.append(c);
            }
            if (gap) {
                b.append(' ');
            }
            return casing((b == null ? t : b.toString()).strip());
        }

        private static boolean isSpace(char c) {
            return c == ' ' || (c >= '\t' && c <= '\r');
        }

        /**
         * Text a causal model learns to write keeps its line structure (code, lists, verse): line
         * breaks unified to \n, trailing spaces dropped, at most one blank line in a row, trimmed.
         */
        String multiline(String s) {
            String t = nfc(s).replace("\r\n", "\n").replace('\r', '\n');
            t = TRAILING.matcher(t).replaceAll("\n");
            return casing(BLANK_LINES.matcher(t).replaceAll("\n\n").strip());
        }

        private static String nfc(String s) {
            return surelyNfc(s) || Normalizer.isNormalized(s, Normalizer.Form.NFC)
                    ? s
                    : Normalizer.normalize(s, Normalizer.Form.NFC);
        }

        /**
         * True when no character is U+0300 or above: such a text is in NFC (nothing below U+0300
         * decomposes or combines with what precedes it; the normaliser's own quick check starts at
         * U+0300), and checking that is much cheaper than {@link Normalizer#isNormalized}.
         */
        static boolean surelyNfc(String s) {
            for (int i = 0; i < s.length(); i++) {
                if (s.charAt(i) >= 0x300) {
                    return false;
                }
            }
            return true;
        }

        private String casing(String s) {
            return lowercase ? s.toLowerCase(Locale.ROOT) : s;
        }
    }
}
