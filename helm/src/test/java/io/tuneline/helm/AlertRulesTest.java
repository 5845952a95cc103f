package io.tuneline.helm;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** deploy/prometheus: the alert rules load, and their unit tests pass, under promtool. */
class AlertRulesTest {
    private static final Path DIR = Path.of("../deploy/prometheus").toAbsolutePath();

    @Test
    void rulesLoad() throws Exception {
        String out = promtool("check", "rules", DIR.resolve("tuneline.rules.yml").toString());
        assertThat(out).contains("SUCCESS");
    }

    @Test
    void alertUnitTestsPass() throws Exception {
        String out =
                promtool("test", "rules", DIR.resolve("tests/tuneline.rules.test.yml").toString());
        assertThat(out).contains("SUCCESS");
    }

    static String promtool(String... args) throws IOException, InterruptedException {
        String[] command = new String[args.length + 1];
        command[0] = "promtool";
        System.arraycopy(args, 0, command, 1, args.length);
        Process p;
        try {
            p =
                    new ProcessBuilder(command)
                            .directory(DIR.toFile())
                            .redirectErrorStream(true)
                            .start();
        } catch (IOException e) {
            throw new AssertionError("promtool is needed: apt-get install prometheus", e);
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor()).as(out).isZero();
        return out;
    }
}
