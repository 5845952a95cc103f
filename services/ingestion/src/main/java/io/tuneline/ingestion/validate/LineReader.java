package io.tuneline.ingestion.validate;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Splits a byte stream into lines ({@code \n}, a trailing {@code \r} dropped) and decodes each one
 * strictly as UTF-8 on its own, so a malformed byte costs its line only, not the rest of the file.
 * A line longer than {@code maxLineBytes} is not kept: its bytes are skipped up to the next newline
 * and it comes back as a problem, so memory stays bounded by the limit whatever the input.
 */
final class LineReader {
    static final String INVALID_UTF8 = "invalid UTF-8";

    /** One physical line: its 1-based number and either its text or why it cannot be read. */
    record Line(long number, String text, String problem) {}

    private final InputStream in;
    private final int maxLineBytes;
    private final CharsetDecoder decoder =
            StandardCharsets.UTF_8
                    .newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT);
    private final byte[] buf = new byte[64 * 1024];
    private int pos;
    private int limit;
    private byte[] line = new byte[8 * 1024];
    private int length;
    private long number;
    private boolean eof;

    LineReader(InputStream in, int maxLineBytes) {
        this.in = in;
        this.maxLineBytes = maxLineBytes;
    }

    /** The next line, or {@code null} at the end of the stream. */
    Line next() throws IOException {
        length = 0;
        boolean tooLong = false;
        boolean any = false;
        while (true) {
            if (pos == limit) {
                if (eof || !fill()) {
                    if (!any) {
                        return null;
                    }
                    break;
                }
            }
            any = true;
            int newline = indexOf(buf, pos, limit);
            int end = newline < 0 ? limit : newline;
            if (!tooLong) {
                int n = end - pos;
                // One byte over the limit may be the line's closing \r, checked below.
                if ((long) length + n > (long) maxLineBytes + 1) {
                    tooLong = true;
                    length = 0;
                } else {
                    append(buf, pos, n);
                }
            }
            pos = newline < 0 ? limit : newline + 1;
            if (newline >= 0) {
                break;
            }
        }
        number++;
        if (tooLong) {
            return new Line(number, null, "line longer than " + maxLineBytes + " bytes");
        }
        int len = length;
        if (len > 0 && line[len - 1] == '\r') {
            len--;
        }
        if (len > maxLineBytes) {
            return new Line(number, null, "line longer than " + maxLineBytes + " bytes");
        }
        int start = 0;
        if (number == 1
                && len >= 3
                && line[0] == (byte) 0xEF
                && line[1] == (byte) 0xBB
                && line[2] == (byte) 0xBF) {
            start = 3; // a UTF-8 byte order mark
        }
        try {
            decoder.reset();
            String text = decoder.decode(ByteBuffer.wrap(line, start, len - start)).toString();
            return new Line(number, text, null);
        } catch (CharacterCodingException e) {
            return new Line(number, null, INVALID_UTF8);
        }
    }

    /** Bytes the line buffer holds room for; bounded by the limit, for tests. */
    int lineCapacity() {
        return line.length;
    }

    private boolean fill() throws IOException {
        int n = in.read(buf, 0, buf.length);
        while (n == 0) {
            n = in.read(buf, 0, buf.length);
        }
        if (n < 0) {
            eof = true;
            pos = limit = 0;
            return false;
        }
        pos = 0;
        limit = n;
        return true;
    }

    private void append(byte[] src, int from, int n) {
        if (length + n > line.length) {
            line = Arrays.copyOf(line, Math.max(line.length * 2, length + n));
        }
        System.arraycopy(src, from, line, length, n);
        length += n;
    }

    private static int indexOf(byte[] b, int from, int to) {
        for (int i = from; i < to; i++) {
            if (b[i] == '\n') {
                return i;
            }
        }
        return -1;
    }
}
