package io.tuneline.ingestion.source;

import io.tuneline.common.job.ProgressThrottle;
import io.tuneline.common.store.CountingInputStream;
import io.tuneline.ingestion.validate.DatasetValidator;
import java.time.Duration;
import java.util.function.LongSupplier;

/**
 * Turns "a record was read" into progress reports: the share of the stored (compressed) object read
 * so far, counted under the decoder, reported at most once per 10 percentage points and never
 * sooner than {@code interval} after the start or the previous report — so a small dataset that is
 * read within one interval reports nothing.
 */
final class ProgressReporter implements DatasetValidator.Progress {
    private final CountingInputStream counted;
    private final long size;
    private final ProgressThrottle throttle;
    private final DatasetIngestion.ProgressListener listener;

    ProgressReporter(
            CountingInputStream counted,
            long size,
            Duration interval,
            LongSupplier clock,
            DatasetIngestion.ProgressListener listener) {
        this.counted = counted;
        this.size = size;
        this.throttle = new ProgressThrottle(10, interval, clock);
        this.listener = listener;
    }

    @Override
    public void records(long seen) {
        if (size <= 0) {
            return;
        }
        double percent = Math.min(100.0, 100.0 * counted.count() / size);
        if (throttle.due(percent)) {
            listener.progress(percent, seen);
        }
    }
}
