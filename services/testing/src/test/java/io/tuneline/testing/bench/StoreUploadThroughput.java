package io.tuneline.testing.bench;

import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.StoreSettings;
import io.tuneline.testing.InMemoryS3Server;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;

/**
 * How long {@code ArtifactStore.put} of one local file takes with its parts sent one after the
 * other and several at once, against the S3 server on local disk that {@code ./platform} runs
 * (S3Proxy's filesystem store, here in the same JVM), in the services' part size. The settings take
 * turns within each round; the first round warms the JIT and is not counted. Prints one line per
 * setting: the median and every counted time.
 *
 * <p>Arguments: directory, megabytes, concurrencies (comma-separated), rounds.
 */
public final class StoreUploadThroughput {
    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]);
        long megabytes = Long.parseLong(args[1]);
        int[] settings = Arrays.stream(args[2].split(",")).mapToInt(Integer::parseInt).toArray();
        int rounds = Integer.parseInt(args[3]);
        Path file = dir.resolve("upload.bin");
        byte[] block = new byte[1 << 20];
        new SplittableRandom(1).nextBytes(block);
        try (var out = Files.newOutputStream(file)) {
            for (long i = 0; i < megabytes; i++) {
                out.write(block);
            }
        }
        Path s3 = Files.createDirectories(dir.resolve("s3"));
        Map<Integer, List<Double>> seconds = new TreeMap<>();
        try (InMemoryS3Server server = InMemoryS3Server.onDisk(s3)) {
            for (int round = 0; round <= rounds; round++) {
                for (int concurrency : settings) {
                    StoreSettings s =
                            InMemoryS3Server.settings(
                                            server.endpoint(),
                                            "tuneline",
                                            StoreSettings.DEFAULT_PART_SIZE)
                                    .withUploadConcurrency(concurrency);
                    try (ArtifactStore store = new ArtifactStore(s)) {
                        store.ensureBucket();
                        var uri = store.uri("bench/upload-" + concurrency + ".bin");
                        long started = System.nanoTime();
                        store.put(uri, file, "application/octet-stream");
                        double took = (System.nanoTime() - started) / 1e9;
                        if (round > 0) {
                            seconds.computeIfAbsent(concurrency, k -> new ArrayList<>()).add(took);
                        }
                        store.delete(uri);
                    }
                }
            }
        } finally {
            Files.deleteIfExists(file);
        }
        seconds.forEach(
                (concurrency, times) -> {
                    List<Double> sorted = new ArrayList<>(times);
                    Collections.sort(sorted);
                    System.out.printf(
                            Locale.ROOT,
                            "%d MB, %d part(s) at once: median %.3f s; %s%n",
                            megabytes,
                            concurrency,
                            sorted.get(sorted.size() / 2),
                            times.stream()
                                    .map(t -> String.format(Locale.ROOT, "%.3f", t))
                                    .toList());
                });
    }
}
