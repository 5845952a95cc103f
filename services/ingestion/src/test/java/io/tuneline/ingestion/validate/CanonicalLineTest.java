package io.tuneline.ingestion.validate;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.proto.v1.BadRecordAction;
import io.tuneline.proto.v1.BadRecordPolicy;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.Task;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The byte-level check of already-canonical lines must decide every line exactly as the full parse
 * does: the same valid and bad records, reasons, labels and canonical bytes, on datasets made to
 * hit its edges (escapes, blank and non-ASCII texts, bad UTF-8, spaces, other fields, numbers).
 */
class CanonicalLineTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String[] PIECES = {
        "a", "Z", " ", "  ", "\"", "\\", "/", "\n", "\t", "\r", "\b", "\f", "\u0001", "\u001f",
        "\u007f", "é", "日本", "\u00a0", "\u0085", "\u1680", "\u2003", "\u2028", "\u3000", "😀", "{",
        "}", ",", ":"
    };

    @Test
    void theFastPathDecidesEveryLineAsTheFullParseDoes() throws IOException {
        SplittableRandom random = new SplittableRandom(17);
        DatasetSpec skip =
                DatasetSpec.newBuilder()
                        .setBadRecords(
                                BadRecordPolicy.newBuilder()
                                        .setAction(BadRecordAction.BAD_RECORD_ACTION_SKIP)
                                        .setMaxBadFraction(1.0))
                        .build();
        DatasetSpec declared = skip.toBuilder().addLabels("pos").addLabels("neg").build();
        for (int round = 0; round < 40; round++) {
            byte[] data = dataset(random, 300);
            for (Task task : new Task[] {Task.TASK_SEQUENCE_CLASSIFICATION, Task.TASK_CAUSAL_LM}) {
                for (DatasetSpec spec : new DatasetSpec[] {skip, declared}) {
                    assertSame(data, task, spec);
                }
            }
        }
    }

    @Test
    void aCanonicalDatasetIsWrittenBackByteForByte() throws IOException {
        SplittableRandom random = new SplittableRandom(3);
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        for (int i = 0; i < 500; i++) {
            data.write(record(random, "x" + text(random), random.nextBoolean() ? "pos" : "neg"));
            data.write('\n');
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        var r =
                DatasetValidator.validate(
                        new ByteArrayInputStream(data.toByteArray()),
                        RecordFormat.JSONL,
                        Task.TASK_SEQUENCE_CLASSIFICATION,
                        DatasetSpec.getDefaultInstance(),
                        out,
                        DatasetValidator.Limits.NONE,
                        DatasetValidator.Progress.NONE);
        assertThat(r.bad()).isZero();
        assertThat(out.toByteArray()).isEqualTo(data.toByteArray());
    }

    @Test
    void utf8CheckAgreesWithTheJdkDecoder() {
        SplittableRandom random = new SplittableRandom(5);
        var decoder =
                StandardCharsets.UTF_8
                        .newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT);
        for (int i = 0; i < 200_000; i++) {
            byte[] b = new byte[1 + random.nextInt(6)];
            for (int j = 0; j < b.length; j++) {
                // Mostly the bytes around the edges of the encoding, some of anything.
                b[j] =
                        (byte)
                                (random.nextInt(4) == 0
                                        ? random.nextInt(256)
                                        : new int[] {
                                                    0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF,
                                                            0xC0,
                                                    0xC1, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4,
                                                            0xF5,
                                                    0xFF
                                                }
                                                [random.nextInt(19)]);
            }
            boolean jdk;
            try {
                decoder.reset().decode(ByteBuffer.wrap(b));
                jdk = true;
            } catch (CharacterCodingException e) {
                jdk = false;
            }
            assertThat(Utf8.valid(b, 0, b.length))
                    .as("%s", java.util.HexFormat.of().formatHex(b))
                    .isEqualTo(jdk);
        }
    }

    private static void assertSame(byte[] data, Task task, DatasetSpec spec) throws IOException {
        ByteArrayOutputStream fast = new ByteArrayOutputStream();
        ByteArrayOutputStream full = new ByteArrayOutputStream();
        DatasetValidator.Result withFast = validate(data, task, spec, fast);
        DatasetValidator.FAST_PATH = false;
        DatasetValidator.Result withoutFast;
        try {
            withoutFast = validate(data, task, spec, full);
        } finally {
            DatasetValidator.FAST_PATH = true;
        }
        List<String> a = fast.toString(StandardCharsets.UTF_8).lines().toList();
        List<String> b = full.toString(StandardCharsets.UTF_8).lines().toList();
        for (int i = 0; i < Math.min(a.size(), b.size()); i++) {
            assertThat(a.get(i)).as("canonical record %d", i + 1).isEqualTo(b.get(i));
        }
        assertThat(fast.toByteArray()).isEqualTo(full.toByteArray());
        assertThat(withFast).isEqualTo(withoutFast);
    }

    private static DatasetValidator.Result validate(
            byte[] data, Task task, DatasetSpec spec, ByteArrayOutputStream out)
            throws IOException {
        return DatasetValidator.validate(
                new ByteArrayInputStream(data),
                RecordFormat.JSONL,
                task,
                spec,
                out,
                new DatasetValidator.Limits(Long.MAX_VALUE, 400),
                DatasetValidator.Progress.NONE);
    }

    /** Lines: most canonical, the rest bent in one of many ways. */
    private static byte[] dataset(SplittableRandom random, int lines) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int i = 0; i < lines; i++) {
            String label =
                    new String[] {"pos", "neg", "other", "", "a b", "x\"y"}[random.nextInt(6)];
            String text = text(random);
            byte[] line = record(random, text, label);
            switch (random.nextInt(16)) {
                case 0 ->
                        line =
                                ("{\"text\":\"" + text + "\",\"label\":\"pos\"}")
                                        .getBytes(StandardCharsets.UTF_8);
                case 1 -> line = replace(line, "\":\"", "\": \"");
                case 2 -> line = replace(line, ",\"label\"", ",\"label\":1,\"x\"");
                case 3 ->
                        line =
                                replace(
                                        line,
                                        "\"label\":\"" + label + "\"",
                                        "\"label\":" + random.nextInt(3));
                case 4 -> line[random.nextInt(line.length)] = (byte) (0x80 + random.nextInt(128));
                case 5 -> line = java.util.Arrays.copyOf(line, random.nextInt(line.length));
                case 6 -> line = replace(line, "a", "\\/");
                case 7 -> line = replace(line, "a", "\\u0061");
                case 8 ->
                        line =
                                (new String(line, StandardCharsets.UTF_8) + "  x")
                                        .getBytes(StandardCharsets.UTF_8);
                case 9 ->
                        line =
                                ("{\"text\":\""
                                                + "\\n \\t".repeat(random.nextInt(3))
                                                + "\",\"label\":\"pos\"}")
                                        .getBytes(StandardCharsets.UTF_8);
                case 10 ->
                        line =
                                (new String(line, StandardCharsets.UTF_8) + "\r")
                                        .getBytes(StandardCharsets.UTF_8);
                case 11 -> line = replace(line, ",\"label\":\"" + label + "\"", "");
                case 12 ->
                        line =
                                "x"
                                        .repeat(random.nextInt(300, 500))
                                        .getBytes(StandardCharsets.UTF_8);
                default -> {}
            }
            out.write(line);
            out.write((random.nextInt(30) == 0 ? "\n\n" : "\n").getBytes(StandardCharsets.UTF_8));
        }
        return out.toByteArray();
    }

    private static String text(SplittableRandom random) {
        StringBuilder s = new StringBuilder();
        for (int n = random.nextInt(0, 12); n > 0; n--) {
            s.append(PIECES[random.nextInt(PIECES.length)]);
        }
        return s.toString();
    }

    private static byte[] record(SplittableRandom random, String text, String label)
            throws IOException {
        ObjectNode r = JSON.createObjectNode();
        r.put("text", text);
        r.put("label", label);
        return JSON.writeValueAsBytes(r);
    }

    private static byte[] replace(byte[] line, String from, String to) {
        return new String(line, StandardCharsets.UTF_8)
                .replace(from, to)
                .getBytes(StandardCharsets.UTF_8);
    }
}
