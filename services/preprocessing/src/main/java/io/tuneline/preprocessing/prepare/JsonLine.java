package io.tuneline.preprocessing.prepare;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * One line of a prepared split, written straight into a reused byte buffer: the same bytes as
 * Jackson's compact serialisation of an {@code ObjectNode} with the same fields in the same order
 * ({@code JsonLineTest} compares the two on every shape and on random Unicode text).
 *
 * <p>Why not Jackson: a tree with one node per token id, serialised to a fresh array for every
 * line, was most of the pass that writes the splits, and that pass runs on one thread after every
 * record is tokenized. Strings are escaped as Jackson's UTF-8 generator escapes them ({@code "},
 * {@code \}, the control characters below U+0020 as {@code \b \t \n \f \r} or {@code \}{@code
 * u00XX}, everything else written as UTF-8); a string holding a surrogate (a character past U+FFFF,
 * which Jackson writes as two {@code \}{@code u} escapes) is handed to Jackson itself.
 */
final class JsonLine {
    private static final ObjectMapper JSON = new ObjectMapper();

    /**
     * Per ASCII character: 0 written as is, -1 as {@code \}{@code u00XX}, else {@code \} and it.
     */
    private static final int[] ESCAPES = new int[128];

    private static final byte[] HEX = "0123456789ABCDEF".getBytes(StandardCharsets.US_ASCII);

    /** The decimal digits of 0 to 65,535 (every id of a vocabulary that size), right-aligned. */
    private static final int SMALL = 1 << 16;

    private static final byte[] SMALL_TEXT = new byte[SMALL * 5];
    private static final byte[] SMALL_DIGITS = new byte[SMALL];

    static {
        for (int v = 0; v < SMALL; v++) {
            byte[] d = Integer.toString(v).getBytes(StandardCharsets.US_ASCII);
            System.arraycopy(d, 0, SMALL_TEXT, v * 5 + 5 - d.length, d.length);
            SMALL_DIGITS[v] = (byte) d.length;
        }
        Arrays.fill(ESCAPES, 0, 32, -1);
        ESCAPES['"'] = '"';
        ESCAPES['\\'] = '\\';
        ESCAPES['\b'] = 'b';
        ESCAPES['\t'] = 't';
        ESCAPES['\f'] = 'f';
        ESCAPES['\n'] = 'n';
        ESCAPES['\r'] = 'r';
    }

    private byte[] buf = new byte[8192];
    private int n;
    private boolean first;

    /** Begins a line: {@code {}. */
    void start() {
        n = 0;
        buf[n++] = '{';
        first = true;
    }

    /** The example's own fields, in the order {@link Example#toJson} puts them. */
    void fields(Example example) {
        if (example instanceof Example.Classification c) {
            string("text", c.text());
            string("label", c.label());
        } else if (example instanceof Example.Instruction in) {
            string("prompt", in.prompt());
            string("completion", in.completion());
        } else if (example instanceof Example.Chat chat) {
            name("messages");
            put('[');
            boolean firstMessage = true;
            for (Example.Message m : chat.messages()) {
                if (!firstMessage) {
                    put(',');
                }
                firstMessage = false;
                put('{');
                first = true;
                string("role", m.role());
                string("content", m.content());
                put('}');
            }
            put(']');
            first = false;
        } else if (example instanceof Example.Text t) {
            string("text", t.text());
        }
    }

    void string(String name, String value) {
        name(name);
        quoted(value);
    }

    void number(String name, long value) {
        name(name);
        number(value);
    }

    void array(String name, long[] values) {
        array(name, values, values.length);
    }

    /** {@code "name":[v0,v1,...]} of the first {@code length} values. */
    void array(String name, long[] values, int length) {
        name(name);
        // At most 20 bytes and a comma per value.
        ensure(2 + 21L * length);
        buf[n++] = '[';
        for (int i = 0; i < length; i++) {
            if (i > 0) {
                buf[n++] = ',';
            }
            number(values[i]);
        }
        buf[n++] = ']';
    }

    /** Ends the line ({@code }} and a line break) and writes it. */
    void end(OutputStream out) throws IOException {
        put('}');
        put('\n');
        out.write(buf, 0, n);
    }

    /** The line so far, for tests. */
    byte[] bytes() {
        return Arrays.copyOf(buf, n);
    }

    private void name(String name) {
        if (!first) {
            put(',');
        }
        first = false;
        quoted(name);
        put(':');
    }

    private void quoted(String s) {
        // A character takes at most 6 bytes (an escape), and 3 as UTF-8.
        ensure(2 + 6L * s.length());
        int at = n;
        buf[n++] = '"';
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x80) {
                int e = ESCAPES[c];
                if (e == 0) {
                    buf[n++] = (byte) c;
                } else if (e > 0) {
                    buf[n++] = '\\';
                    buf[n++] = (byte) e;
                } else {
                    buf[n++] = '\\';
                    buf[n++] = 'u';
                    buf[n++] = '0';
                    buf[n++] = '0';
                    buf[n++] = HEX[c >> 4];
                    buf[n++] = HEX[c & 0xF];
                }
            } else if (c < 0x800) {
                buf[n++] = (byte) (0xC0 | (c >> 6));
                buf[n++] = (byte) (0x80 | (c & 0x3F));
            } else if (Character.isSurrogate(c)) {
                n = at;
                jackson(s);
                return;
            } else {
                buf[n++] = (byte) (0xE0 | (c >> 12));
                buf[n++] = (byte) (0x80 | ((c >> 6) & 0x3F));
                buf[n++] = (byte) (0x80 | (c & 0x3F));
            }
        }
        buf[n++] = '"';
    }

    private void jackson(String s) {
        byte[] b;
        try {
            b = JSON.writeValueAsBytes(s);
        } catch (JsonProcessingException e) {
            throw new UncheckedIOException(e);
        }
        ensure(b.length);
        System.arraycopy(b, 0, buf, n, b.length);
        n += b.length;
    }

    private void number(long v) {
        ensure(20);
        if (v < 0) {
            if (v == Long.MIN_VALUE) {
                byte[] b = Long.toString(v).getBytes(StandardCharsets.US_ASCII);
                System.arraycopy(b, 0, buf, n, b.length);
                n += b.length;
                return;
            }
            buf[n++] = '-';
            v = -v;
        }
        if (v < SMALL) {
            // Token ids: digits from a table, no division per digit.
            int at = (int) v * 5;
            int digits = SMALL_DIGITS[(int) v];
            System.arraycopy(SMALL_TEXT, at + 5 - digits, buf, n, digits);
            n += digits;
            return;
        }
        int digits = 1;
        for (long p = v; p >= 10; p /= 10) {
            digits++;
        }
        for (int i = n + digits - 1; i >= n; i--) {
            buf[i] = (byte) ('0' + v % 10);
            v /= 10;
        }
        n += digits;
    }

    private void put(char c) {
        ensure(1);
        buf[n++] = (byte) c;
    }

    private void ensure(long more) {
        if (n + more > buf.length) {
            buf = Arrays.copyOf(buf, (int) Math.max(buf.length * 2L, n + more));
        }
    }
}
