package io.tuneline.ingestion.validate;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * Recognises, from its bytes alone, a JSON Lines record that is already exactly what this service
 * writes for it — {@code {"text":"…","label":"…"}} (classification) or {@code {"text":"…"}} (text)
 * in compact JSON, the text not blank, escaped only where Jackson escapes — so that such a line is
 * checked in one pass over its bytes and written as it is, with no parse tree and no serialising.
 * Anything else (other fields or order, spaces, {@code \}{@code u} or {@code \/} escapes, numbers,
 * a blank text, …) is left to the full parse, which then accepts or rejects it with its reason;
 * this only ever says "valid and canonical", never "invalid". A line with bytes above 0x7F still
 * has its UTF-8 checked by the caller.
 */
final class CanonicalLine {
    private static final byte[] TEXT = bytes("{\"text\":\"");
    private static final byte[] LABEL = bytes("\",\"label\":\"");

    private boolean nonAscii;
    private int labelStart;
    private int labelEnd;

    /** Whether bytes [from, to) are a canonical {@code {"text","label"}} record. */
    boolean classification(byte[] b, int from, int to) {
        nonAscii = false;
        if (!startsWith(b, from, to, TEXT)) {
            return false;
        }
        int close = closingQuote(b, from + TEXT.length, to);
        if (close < 0 || !startsWith(b, close, to, LABEL)) {
            return false;
        }
        labelStart = close + LABEL.length;
        // The label: printable ASCII without escapes, closed by "} at the very end of the line.
        int i = labelStart;
        while (i < to) {
            byte c = b[i];
            if (c == '"') {
                break;
            }
            if (c < 0x20 || c > 0x7E || c == '\\') {
                return false;
            }
            i++;
        }
        labelEnd = i;
        return i == to - 2 && b[to - 1] == '}';
    }

    /** Whether bytes [from, to) are a canonical {@code {"text"}} record. */
    boolean text(byte[] b, int from, int to) {
        nonAscii = false;
        if (!startsWith(b, from, to, TEXT)) {
            return false;
        }
        int close = closingQuote(b, from + TEXT.length, to);
        return close >= 0 && close == to - 2 && b[to - 1] == '}';
    }

    /** After a match: whether the line has bytes above 0x7F, whose UTF-8 is still to be checked. */
    boolean nonAscii() {
        return nonAscii;
    }

    /** After a classification match: the label. */
    String label(byte[] b) {
        return new String(b, labelStart, labelEnd - labelStart, StandardCharsets.US_ASCII);
    }

    /**
     * The index of the closing quote of a JSON string whose content starts at {@code i}, or -1 when
     * it is not one this class vouches for: a raw control character (invalid JSON), an escape
     * Jackson would not write this way ({@code \/}, {@code \}{@code u}…), or nothing but whitespace
     * (a blank text, which the full check rejects). Only bytes above 0x7F that lead a character
     * that cannot be whitespace count as non-blank: U+1680, U+2000-U+205F and U+3000 start with
     * E1-E3.
     */
    private int closingQuote(byte[] b, int i, int to) {
        boolean nonBlank = false;
        while (i < to) {
            if (nonBlank) {
                // Eight bytes at a time while none of them needs a look: no quote, backslash,
                // control character or byte above 0x7F (the rest of a text is plain bytes).
                while (i + 8 <= to && plain((long) LONGS.get(b, i))) {
                    i += 8;
                }
                if (i >= to) {
                    break;
                }
            }
            byte c = b[i];
            if (c >= 0x20 && c != '"' && c != '\\') {
                nonBlank |= c != ' ';
            } else if (c == '"') {
                return nonBlank ? i : -1;
            } else if (c == '\\') {
                if (++i >= to) {
                    return -1;
                }
                switch (b[i]) {
                    case '"', '\\' -> nonBlank = true;
                    case 'n', 't', 'r', 'b', 'f' -> {}
                    default -> {
                        return -1;
                    }
                }
            } else if (c < 0) {
                nonAscii = true;
                int u = c & 0xFF;
                if (u >= 0xF0) {
                    // Jackson writes a character past U+FFFF as a pair of escapes, not as it came.
                    return -1;
                }
                if (u >= 0xC2 && u != 0xE1 && u != 0xE2 && u != 0xE3) {
                    nonBlank = true;
                }
            } else {
                return -1; // a raw control character: not JSON
            }
            i++;
        }
        return -1;
    }

    private static final VarHandle LONGS =
            MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
    private static final long ONES = 0x0101010101010101L;
    private static final long HIGH = 0x8080808080808080L;

    /**
     * Whether none of the eight bytes in {@code x} is below 0x20, above 0x7F, a quote or a
     * backslash: the classic "has a zero byte" test, {@code (y - 0x01…) & ~y & 0x80…}, for each.
     */
    private static boolean plain(long x) {
        long quote = x ^ (ONES * '"');
        long backslash = x ^ (ONES * '\\');
        long special =
                ((x - ONES * 0x20) & ~x)
                        | ((quote - ONES) & ~quote)
                        | ((backslash - ONES) & ~backslash)
                        | x;
        return (special & HIGH) == 0;
    }

    private static boolean startsWith(byte[] b, int from, int to, byte[] prefix) {
        return to - from >= prefix.length
                && java.util.Arrays.equals(b, from, from + prefix.length, prefix, 0, prefix.length);
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }
}
