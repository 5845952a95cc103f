package io.tuneline.preprocessing.prepare;

import static org.assertj.core.api.Assertions.assertThat;

import java.text.Normalizer;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

class NormalizationTest {
    /** The regular-expression version the one-pass flat() replaced. */
    private static String flatByRegex(String s, boolean lowercase) {
        String t = Normalizer.normalize(s, Normalizer.Form.NFC);
        t = Pattern.compile("\\s+").matcher(t).replaceAll(" ").strip();
        return lowercase ? t.toLowerCase(Locale.ROOT) : t;
    }

    @Test
    void flatEqualsTheRegularExpressionOnEveryKindOfSpacing() {
        Example.Normalization cased = new Example.Normalization(false);
        Example.Normalization uncased = new Example.Normalization(true);
        List<String> texts =
                List.of(
                        "already flat text",
                        "  leading and trailing  ",
                        "tabs\tand\nnew\r\nlines\u000B\fhere",
                        "double  space",
                        " ",
                        "",
                        "x",
                        "end ",
                        " start",
                        "nbsp\u00a0kept \u2003em\u2003 ends\u2003",
                        "\u001cfile separator is whitespace to strip\u001f",
                        "E\u0301t\u00c9  MiXeD");
        for (String t : texts) {
            assertThat(cased.flat(t)).as(t).isEqualTo(flatByRegex(t, false));
            assertThat(uncased.flat(t)).as(t).isEqualTo(flatByRegex(t, true));
        }
        String alphabet = "ab \t\n\r\u000B\f\u00a0\u2003\u001cC\u0301";
        Random random = new Random(5);
        for (int i = 0; i < 50_000; i++) {
            StringBuilder b = new StringBuilder();
            for (int c = 0, n = random.nextInt(10); c < n; c++) {
                b.append(alphabet.charAt(random.nextInt(alphabet.length())));
            }
            String t = b.toString();
            assertThat(cased.flat(t)).as(t).isEqualTo(flatByRegex(t, false));
        }
    }

    /**
     * The shortcut before the normaliser: a text with no character from U+0300 up is taken as NFC
     * without asking it. Composition joins a character with what follows it, so every pair of such
     * characters (and each alone) must already be NFC; and one character from U+0300 up, a
     * combining accent, makes the shortcut ask the normaliser.
     */
    @Test
    void textBelowU0300IsAlreadyNfc() {
        char[] pair = new char[2];
        for (char a = 0; a < 0x300; a++) {
            assertThat(Normalizer.isNormalized(String.valueOf(a), Normalizer.Form.NFC)).isTrue();
            pair[0] = a;
            for (char b = 0; b < 0x300; b++) {
                pair[1] = b;
                String s = new String(pair);
                if (!Normalizer.isNormalized(s, Normalizer.Form.NFC)) {
                    throw new AssertionError("not NFC: U+%04X U+%04X".formatted((int) a, (int) b));
                }
            }
        }
        assertThat(Example.Normalization.surelyNfc("plain text \u00e9\u02ff")).isTrue();
        assertThat(Example.Normalization.surelyNfc("e\u0301")).isFalse();
        assertThat(new Example.Normalization(false).flat("E\u0301")).isEqualTo("\u00c9");
    }
}
