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
}
