package io.tuneline.ingestion.validate;

import java.io.IOException;
import java.io.InputStream;
import java.io.Reader;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;

/**
 * Decodes UTF-8 for the CSV parser without stopping at a malformed byte: the byte becomes U+FFFD
 * and the number of the line it is on is remembered, so the record holding it can be rejected
 * ({@link #invalidUpTo}) and reading goes on. Lines are counted by {@code \n}.
 */
final class MarkingUtf8Reader extends Reader {
    static final char REPLACEMENT = '\uFFFD';

    private final InputStream in;
    private final CharsetDecoder decoder =
            StandardCharsets.UTF_8
                    .newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT);
    private final ByteBuffer bytes = ByteBuffer.allocate(64 * 1024).flip();
    private final ArrayDeque<Long> errorLines = new ArrayDeque<>();
    private long line = 1;
    private boolean pendingReplacement;
    private boolean eof;
    private boolean flushed;

    MarkingUtf8Reader(InputStream in) {
        this.in = in;
    }

    /**
     * Whether a malformed byte was found on a line up to {@code lastLine}; forgets those lines, so
     * each is reported once.
     */
    boolean invalidUpTo(long lastLine) {
        boolean found = false;
        while (!errorLines.isEmpty() && errorLines.peekFirst() <= lastLine) {
            errorLines.removeFirst();
            found = true;
        }
        return found;
    }

    @Override
    public int read(char[] cbuf, int off, int len) throws IOException {
        if (flushed) {
            return -1;
        }
        if (len == 0) {
            return 0;
        }
        CharBuffer out = CharBuffer.wrap(cbuf, off, len);
        while (true) {
            if (pendingReplacement && out.hasRemaining()) {
                out.put(REPLACEMENT);
                pendingReplacement = false;
            }
            int before = out.position();
            CoderResult r = decoder.decode(bytes, out, eof);
            countLines(cbuf, before, out.position());
            if (r.isError()) {
                errorLines.addLast(line);
                bytes.position(bytes.position() + r.length());
                pendingReplacement = true;
                continue;
            }
            if (out.position() > off || pendingReplacement) {
                if (out.position() > off) {
                    return out.position() - off;
                }
                continue;
            }
            if (eof) {
                if (!flushed) {
                    flushed = true;
                    int start = out.position();
                    decoder.flush(out);
                    if (out.position() > start) {
                        return out.position() - off;
                    }
                }
                return -1;
            }
            bytes.compact();
            int n = in.read(bytes.array(), bytes.position(), bytes.remaining());
            if (n < 0) {
                eof = true;
            } else {
                bytes.position(bytes.position() + n);
            }
            bytes.flip();
        }
    }

    private void countLines(char[] cbuf, int from, int to) {
        for (int i = from; i < to; i++) {
            if (cbuf[i] == '\n') {
                line++;
            }
        }
    }

    @Override
    public void close() throws IOException {
        in.close();
    }
}
