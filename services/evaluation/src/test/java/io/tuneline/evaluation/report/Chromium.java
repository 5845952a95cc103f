package io.tuneline.evaluation.report;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs Debian's headless Chromium for report tests. */
final class Chromium {
    record Result(int exitCode, String stdout, String log) {}

    private Chromium() {}

    static Result run(Path workDir, String... args) throws IOException, InterruptedException {
        List<String> cmd =
                new ArrayList<>(
                        List.of(
                                "chromium",
                                "--headless",
                                "--no-sandbox",
                                "--disable-gpu",
                                "--disable-dev-shm-usage",
                                "--enable-logging=stderr",
                                "--v=0",
                                "--user-data-dir=" + workDir.resolve("profile")));
        cmd.addAll(List.of(args));
        Path out = workDir.resolve("stdout.txt");
        Path err = workDir.resolve("stderr.txt");
        Process p =
                new ProcessBuilder(cmd)
                        .directory(workDir.toFile())
                        .redirectOutput(out.toFile())
                        .redirectError(err.toFile())
                        .start();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IllegalStateException("chromium did not finish within 120 s: " + cmd);
        }
        return new Result(
                p.exitValue(),
                Files.readString(out, StandardCharsets.UTF_8),
                Files.readString(err, StandardCharsets.UTF_8));
    }
}
