package io.tuneline.ingestion.source;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class ProgressReporterTest {
    private static final long SECOND = 1_000_000_000L;

    private final AtomicLong clock = new AtomicLong(5 * SECOND);
    private final List<String> reports = new ArrayList<>();
    private final io.tuneline.common.store.CountingInputStream counted =
            new io.tuneline.common.store.CountingInputStream(
                    new ByteArrayInputStream(new byte[1000]));
    private final ProgressReporter reporter =
            new ProgressReporter(
                    counted,
                    1000,
                    Duration.ofSeconds(2),
                    clock::get,
                    (percent, records) -> reports.add(percent + "% at " + records));

    /** Reads {@code bytes} more, lets {@code seconds} pass, then tells of a record. */
    private void step(int bytes, double seconds, long records) throws IOException {
        counted.readNBytes(bytes);
        clock.addAndGet((long) (seconds * SECOND));
        reporter.records(records);
    }

    @Test
    void aDatasetReadWithinTheIntervalReportsNothing() throws IOException {
        step(500, 0.5, 1);
        step(499, 1.0, 2);
        step(1, 0.1, 3);
        assertThat(reports).isEmpty();
    }

    @Test
    void reportsComeAtMostOncePerTenPercentAndIntervalAndNeverAtTheEnd() throws IOException {
        step(50, 2.0, 10); // 5%: not a new tenth yet
        step(100, 0.1, 20); // 15%: a new tenth, 2.1 s after the start
        step(10, 3.0, 30); // 16%: the same tenth
        step(100, 0.5, 40); // 26%: a new tenth, 3.5 s after the last report
        step(500, 1.0, 50); // 76%: only 1 s after the last report
        step(10, 1.0, 55); // 77%: 2 s after it
        step(100, 0.5, 60); // 87%: 0.5 s after the last report
        step(230, 5.0, 70); // 100%: the end is announced by DatasetIngested, not here
        assertThat(reports).containsExactly("15.0% at 20", "26.0% at 40", "77.0% at 55");
        assertThat(counted.count()).isEqualTo(1000);
    }
}
