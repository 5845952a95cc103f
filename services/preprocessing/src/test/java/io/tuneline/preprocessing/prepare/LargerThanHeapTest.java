package io.tuneline.preprocessing.prepare;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.preprocessing.bench.PreprocessingThroughput;
import io.tuneline.testing.InMemoryS3Server;
import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A dataset larger than the whole heap of the JVM preparing it: 64 MB of reviews through a JVM with
 * {@code -Xmx48m}, which must finish with every record accounted for. The S3 server runs in this
 * (test) JVM, as it runs beside the service in a deployment.
 */
class LargerThanHeapTest {
    private static final int HEAP_MB = 48;
    private static final int DATA_MB = 64;

    @Test
    void aDatasetLargerThanTheHeapIsPrepared(@TempDir Path dir) throws Exception {
        try (InMemoryS3Server server = InMemoryS3Server.start();
                var store = server.newStore("tuneline")) {
            // The data is written and stored from this JVM: the child's heap goes to preparing it.
            PreprocessingThroughput.upload(
                    store, PreprocessingThroughput.dataset(dir, DATA_MB, "500-1500"));
            Path log = dir.resolve("child.log");
            Process child =
                    new ProcessBuilder(
                                    List.of(
                                            Path.of(System.getProperty("java.home"), "bin", "java")
                                                    .toString(),
                                            "-Xmx" + HEAP_MB + "m",
                                            "-Dai.djl.offline=true",
                                            "-DDJL_CACHE_DIR="
                                                    + System.getProperty(
                                                            "DJL_CACHE_DIR",
                                                            System.getProperty("java.io.tmpdir")
                                                                    + File.separator
                                                                    + "djl"),
                                            "-cp",
                                            System.getProperty("java.class.path"),
                                            PreprocessingThroughput.class.getName(),
                                            dir.toString(),
                                            Integer.toString(DATA_MB),
                                            server.endpoint(),
                                            // Long reviews (about 6 kB): the heap goes to the
                                            // streaming and the store client, not per-record
                                            // tables, which the 1 GB benchmark measures.
                                            "500-1500"))
                            .redirectError(log.toFile())
                            .start();
            String out = new String(child.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertThat(child.waitFor(10, TimeUnit.MINUTES)).isTrue();
            assertThat(child.exitValue()).as("child failed: %s", Files.readString(log)).isZero();

            JsonNode result = new ObjectMapper().readTree(out.lines().reduce((a, b) -> b).get());
            long bytes = result.get("bytes").asLong();
            assertThat(result.get("max_heap_mb").asLong()).isLessThanOrEqualTo(HEAP_MB);
            assertThat(bytes).isGreaterThan((long) HEAP_MB << 20);

            JsonNode p = result.get("prepared");
            long records = result.get("records").asLong();
            long kept =
                    p.at("/counts/train").asLong()
                            + p.at("/counts/validation").asLong()
                            + p.at("/counts/test").asLong();
            long exact = p.at("/stats/exactDuplicatesRemoved").asLong();
            long near = p.at("/stats/nearDuplicatesRemoved").asLong();
            assertThat(p.at("/stats/inputRecords").asLong()).isEqualTo(records);
            assertThat(kept + exact + near).isEqualTo(records);
            // The generator repeats a record exactly every 50th line and as a casing variant
            // every 97th (apart from where both fall).
            assertThat(exact).isEqualTo((records - 1) / PreprocessingThroughput.EXACT_EVERY);
            assertThat(near).isPositive();
        }
    }
}
