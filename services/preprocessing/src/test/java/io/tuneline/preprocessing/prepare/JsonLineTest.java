package io.tuneline.preprocessing.prepare;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The split lines {@link JsonLine} writes are byte for byte what Jackson writes from a tree of the
 * same fields, which is how they were written before (and what the byte-identical splits promise
 * rests on): every shape, packed blocks, every ASCII character, and random Unicode text with
 * characters past U+FFFF, lone surrogates and control characters.
 */
class JsonLineTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void everyShapeAsJacksonWritesIt() throws Exception {
        Random random = new Random(7);
        for (int round = 0; round < 2_000; round++) {
            long[] ids = ids(random);
            long[] labels = new long[ids.length];
            for (int i = 0; i < labels.length; i++) {
                labels[i] = random.nextInt(4) == 0 ? SplitFile.IGNORE : ids[i];
            }
            List<Example.Message> messages = new ArrayList<>();
            for (int m = random.nextInt(4); m > 0; m--) {
                messages.add(new Example.Message(text(random), text(random)));
            }
            List<Example> examples =
                    List.of(
                            new Example.Classification(text(random), text(random), null),
                            new Example.Instruction(text(random), text(random), null),
                            new Example.Chat(List.copyOf(messages), null),
                            new Example.Text(text(random), null));
            for (Example e : examples) {
                boolean causal = !(e instanceof Example.Classification);
                ObjectNode n = e.toJson();
                put(n.putArray("input_ids"), ids);
                if (causal) {
                    put(n.putArray("labels"), labels);
                }
                JsonLine line = new JsonLine();
                line.start();
                line.fields(e);
                line.array("input_ids", ids);
                if (causal) {
                    line.array("labels", labels);
                }
                assertEquals(jackson(n), written(line), e.toString());
            }

            ObjectNode block = JSON.createObjectNode();
            put(block.putArray("input_ids"), ids);
            put(block.putArray("labels"), labels);
            block.put("examples", ids.length / 3);
            JsonLine line = new JsonLine();
            line.start();
            line.array("input_ids", ids, ids.length);
            line.array("labels", labels, labels.length);
            line.number("examples", ids.length / 3);
            assertEquals(jackson(block), written(line));
        }
    }

    @Test
    void everyCharacterBelowU0800AndSomeAbove() throws Exception {
        StringBuilder all = new StringBuilder();
        for (char c = 0; c < 0x800; c++) {
            all.append(c);
        }
        all.append("\u0800\u2028\u2029\uD7FF\uE000\uFEFF\uFFFD\uFFFF\uD83D\uDE00 end");
        for (String s : List.of(all.toString(), all.substring(0, 0x800), "", "\uDE00", "a\uD83D")) {
            ObjectNode n = new Example.Text(s, null).toJson();
            JsonLine line = new JsonLine();
            line.start();
            line.fields(new Example.Text(s, null));
            assertEquals(jackson(n), written(line));
        }
    }

    private static long[] ids(Random random) {
        long[] ids = new long[random.nextInt(200)];
        for (int i = 0; i < ids.length; i++) {
            ids[i] =
                    switch (random.nextInt(5)) {
                        case 0 -> random.nextInt(10);
                        case 1 -> random.nextInt(200_000);
                        case 2 -> random.nextLong();
                        case 3 -> -random.nextInt(1000);
                        default -> random.nextInt(30_522);
                    };
        }
        if (ids.length > 2) {
            ids[0] = Long.MIN_VALUE;
            ids[1] = Long.MAX_VALUE;
        }
        return ids;
    }

    /** Mostly ASCII words, with every kind of character that escapes or encodes differently. */
    private static String text(Random random) {
        StringBuilder b = new StringBuilder();
        for (int i = random.nextInt(300); i > 0; i--) {
            switch (random.nextInt(12)) {
                case 0 -> b.append((char) random.nextInt(0x20));
                case 1 -> b.append("\"\\/");
                case 2 -> b.append((char) (0x80 + random.nextInt(0x780)));
                case 3 -> b.append((char) (0x800 + random.nextInt(0xD000)));
                case 4 -> b.appendCodePoint(0x10000 + random.nextInt(0x100000));
                case 5 -> b.append((char) (0xD800 + random.nextInt(0x800)));
                case 6 -> b.append('\u007F');
                default -> b.append("word ");
            }
        }
        // Most texts have no surrogate at all, and so stay off the fallback.
        String s = b.toString();
        return random.nextBoolean()
                ? s.replaceAll("[\\x{10000}-\\x{10FFFF}\\uD800-\\uDFFF]", "")
                : s;
    }

    private static void put(ArrayNode a, long[] values) {
        for (long v : values) {
            a.add(v);
        }
    }

    private static String jackson(ObjectNode n) throws Exception {
        return new String(JSON.writeValueAsBytes(n), StandardCharsets.ISO_8859_1) + "\n";
    }

    private static String written(JsonLine line) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        line.end(out);
        return out.toString(StandardCharsets.ISO_8859_1);
    }
}
