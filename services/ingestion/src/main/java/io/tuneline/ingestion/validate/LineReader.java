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
 *
 * <p>{@link #advance()} exposes each line's bytes without copying or decoding them (a line that
 * lies within the read buffer is a view of it), for a caller that can check the bytes itself and
 * decodes only when it must; {@link #next()} decodes every line.
 */
final class LineReader {
    static final String INVALID_UTF8 = "invalid UTF-8";

    /** One physical line: its 1-based number and either its text or why it cannot be read. */
    record Line(long number, String text, String problem) {}

    /**
     * Big reads: a line inside the buffer is checked where it lies, a line across two is copied.
     */
    static final int BUFFER_BYTES = 256 * 1024;

    private final InputStream in;
    private final int maxLineBytes;
    private final CharsetDecoder decoder =
            StandardCharsets.UTF_8
                    .newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT);
    private final byte[] buf;
    private int pos;
    private int limit;
    private byte[] line = new byte[8 * 1024];
    private int length;
    private long number;
    private boolean eof;

    // The current line, after advance(): bytes [start, end) of data, or tooLong.
    private byte[] data;
    private int start;
    private int end;
    private boolean tooLong;

    LineReader(InputStream in, int maxLineBytes) {
        this(in, maxLineBytes, BUFFER_BYTES);
    }

    LineReader(InputStream in, int maxLineBytes, int bufferBytes) {
        this.in = in;
        this.maxLineBytes = maxLineBytes;
        this.buf = new byte[bufferBytes];
    }

    /** The next line, or {@code null} at the end of the stream. */
    Line next() throws IOException {
        if (!advance()) {
            return null;
        }
        if (tooLong) {
            return new Line(number, null, tooLongProblem());
        }
        String text = decode();
        return text == null ? new Line(number, null, INVALID_UTF8) : new Line(number, text, null);
    }

    /**
     * Moves to the next line; false at the end of the stream. The line is then {@link #number()},
     * and either {@link #tooLong()} or its bytes ({@link #bytes()}, {@link #start()}, {@link
     * #end()}; without its line break, {@code \r} and a first line's byte order mark), valid until
     * the next call.
     */
    boolean advance() throws IOException {
        length = 0;
        tooLong = false;
        if (pos == limit && (eof || !fill())) {
            return false;
        }
        int newline = indexOf(buf, pos, limit);
        if (newline >= 0) {
            // The whole line lies in the buffer: no copy.
            data = buf;
            start = pos;
            end = newline;
            pos = newline + 1;
            // One byte over the limit may be the line's closing \r, checked below.
            tooLong = end - start > maxLineBytes + 1;
        } else {
            spanning();
            data = line;
            start = 0;
            end = length;
        }
        number++;
        if (tooLong) {
            return true;
        }
        if (end > start && data[end - 1] == '\r') {
            end--;
        }
        if (end - start > maxLineBytes) {
            tooLong = true;
            return true;
        }
        if (number == 1
                && end - start >= 3
                && data[start] == (byte) 0xEF
                && data[start + 1] == (byte) 0xBB
                && data[start + 2] == (byte) 0xBF) {
            start += 3; // a UTF-8 byte order mark
        }
        return true;
    }

    /** A line that goes past the end of the buffer: gathered in {@code line}, up to the limit. */
    private void spanning() throws IOException {
        while (true) {
            if (pos == limit && (eof || !fill())) {
                return;
            }
            int newline = indexOf(buf, pos, limit);
            int stop = newline < 0 ? limit : newline;
            if (!tooLong) {
                int n = stop - pos;
                if ((long) length + n > (long) maxLineBytes + 1) {
                    tooLong = true;
                    length = 0;
                } else {
                    append(buf, pos, n);
                }
            }
            pos = newline < 0 ? limit : newline + 1;
            if (newline >= 0) {
                return;
            }
        }
    }

    long number() {
        return number;
    }

    boolean tooLong() {
        return tooLong;
    }

    String tooLongProblem() {
        return "line longer than " + maxLineBytes + " bytes";
    }

    byte[] bytes() {
        return data;
    }

    int start() {
        return start;
    }

    int end() {
        return end;
    }

    /** The current line decoded strictly as UTF-8, or null when it is not valid UTF-8. */
    String decode() {
        try {
            decoder.reset();
            return decoder.decode(ByteBuffer.wrap(data, start, end - start)).toString();
        } catch (CharacterCodingException e) {
            return null;
        }
    }

    /** Whether the current line is valid UTF-8, without building its text. */
    boolean validUtf8() {
        return Utf8.valid(data, start, end);
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

    private static final java.lang.invoke.VarHandle LONGS =
            java.lang.invoke.MethodHandles.byteArrayViewVarHandle(
                    long[].class, java.nio.ByteOrder.LITTLE_ENDIAN);
    private static final long ONES = 0x0101010101010101L;

    private static int indexOf(byte[] b, int from, int to) {
        int i = from;
        // Eight bytes at a time past those without a newline ("has a zero byte" on x ^ '\n').
        while (i + 8 <= to) {
            long x = (long) LONGS.get(b, i) ^ (ONES * '\n');
            if (((x - ONES) & ~x & (ONES << 7)) != 0) {
                break;
            }
            i += 8;
        }
        for (; i < to; i++) {
            if (b[i] == '\n') {
                return i;
            }
        }
        return -1;
    }
}
