package io.tuneline.ingestion.validate;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class LineReaderTest {
    private static List<LineReader.Line> read(byte[] data, int max) throws IOException {
        LineReader r = new LineReader(new ByteArrayInputStream(data), max);
        List<LineReader.Line> out = new ArrayList<>();
        for (LineReader.Line l = r.next(); l != null; l = r.next()) {
            out.add(l);
        }
        return out;
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void aMalformedByteCostsItsLineOnlyAndReadingGoesOn() throws IOException {
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        data.write(bytes("one\n"));
        data.write(bytes("tw"));
        data.write(0xC3); // a lead byte without its continuation
        data.write(bytes("o\nthree é\r\nfour"));

        assertThat(read(data.toByteArray(), 100))
                .containsExactly(
                        new LineReader.Line(1, "one", null),
                        new LineReader.Line(2, null, "invalid UTF-8"),
                        new LineReader.Line(3, "three é", null),
                        new LineReader.Line(4, "four", null));
    }

    @Test
    void aLineOverTheLimitIsAProblemAndTheNextLineIsRead() throws IOException {
        String longLine = "x".repeat(200_000);
        byte[] data = bytes("short\n" + longLine + "\n" + "x".repeat(10) + "\r\nlast\n");

        assertThat(read(data, 10))
                .containsExactly(
                        new LineReader.Line(1, "short", null),
                        new LineReader.Line(2, null, "line longer than 10 bytes"),
                        new LineReader.Line(3, "x".repeat(10), null),
                        new LineReader.Line(4, "last", null));
    }

    @Test
    void aLongLineIsSkippedWithoutBeingHeld() throws IOException {
        // 64 MiB of one line, generated on the fly: the reader must not keep it.
        long size = 64L << 20;
        InputStream endless =
                new InputStream() {
                    long sent;

                    @Override
                    public int read() {
                        byte[] one = new byte[1];
                        return read(one, 0, 1) < 0 ? -1 : one[0];
                    }

                    @Override
                    public int read(byte[] b, int off, int len) {
                        if (sent > size) {
                            return -1;
                        }
                        if (sent == size) {
                            b[off] = '\n';
                            sent++;
                            return 1;
                        }
                        int n = (int) Math.min(len, size - sent);
                        java.util.Arrays.fill(b, off, off + n, (byte) 'a');
                        sent += n;
                        return n;
                    }
                };
        LineReader r = new LineReader(new java.io.SequenceInputStream(endless, in("ok\n")), 1000);
        assertThat(r.next().problem()).isEqualTo("line longer than 1000 bytes");
        assertThat(r.next()).isEqualTo(new LineReader.Line(2, "ok", null));
        assertThat(r.next()).isNull();
        assertThat(r.lineCapacity()).isLessThanOrEqualTo(8 * 1024);
    }

    @Test
    void aByteOrderMarkIsDroppedAndEmptyInputHasNoLines() throws IOException {
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        data.write(new byte[] {(byte) 0xEF, (byte) 0xBB, (byte) 0xBF});
        data.write(bytes("{}\n\n"));
        assertThat(read(data.toByteArray(), 100))
                .containsExactly(
                        new LineReader.Line(1, "{}", null), new LineReader.Line(2, "", null));
        assertThat(read(new byte[0], 100)).isEmpty();
    }

    private static InputStream in(String s) {
        return new ByteArrayInputStream(bytes(s));
    }
}
