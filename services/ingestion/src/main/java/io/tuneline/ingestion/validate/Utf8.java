package io.tuneline.ingestion.validate;

/**
 * Strict UTF-8 well-formedness (Unicode's table 3-7: no overlong forms, no surrogates, nothing past
 * U+10FFFF), as the JDK's decoder with {@code REPORT} judges it, without building any text.
 */
final class Utf8 {
    private Utf8() {}

    static boolean valid(byte[] b, int from, int to) {
        int i = from;
        while (i < to) {
            int c = b[i];
            if (c >= 0) {
                i++;
                continue;
            }
            c &= 0xFF;
            if (c >= 0xC2 && c <= 0xDF) {
                if (i + 1 >= to || !continuation(b[i + 1])) {
                    return false;
                }
                i += 2;
            } else if (c >= 0xE0 && c <= 0xEF) {
                if (i + 2 >= to) {
                    return false;
                }
                int c1 = b[i + 1] & 0xFF;
                boolean second =
                        switch (c) {
                            case 0xE0 -> c1 >= 0xA0 && c1 <= 0xBF; // no overlong forms
                            case 0xED -> c1 >= 0x80 && c1 <= 0x9F; // no surrogates
                            default -> c1 >= 0x80 && c1 <= 0xBF;
                        };
                if (!second || !continuation(b[i + 2])) {
                    return false;
                }
                i += 3;
            } else if (c >= 0xF0 && c <= 0xF4) {
                if (i + 3 >= to) {
                    return false;
                }
                int c1 = b[i + 1] & 0xFF;
                boolean second =
                        switch (c) {
                            case 0xF0 -> c1 >= 0x90 && c1 <= 0xBF; // no overlong forms
                            case 0xF4 -> c1 >= 0x80 && c1 <= 0x8F; // nothing past U+10FFFF
                            default -> c1 >= 0x80 && c1 <= 0xBF;
                        };
                if (!second || !continuation(b[i + 2]) || !continuation(b[i + 3])) {
                    return false;
                }
                i += 4;
            } else {
                return false;
            }
        }
        return true;
    }

    private static boolean continuation(byte b) {
        return (b & 0xC0) == 0x80;
    }
}
