package io.tuneline.ingestion.source;

import io.tuneline.common.job.ProgressThrottle;
import io.tuneline.ingestion.validate.DatasetValidator;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.function.LongSupplier;

/**
 * Turns "a record was read" into progress reports: the share of the stored (compressed) object read
 * so far, counted under the decoder, reported at most once per 10 percentage points and never
 * sooner than {@code interval} after the start or the previous report — so a small dataset that is
 * read within one interval reports nothing.
 */
final class ProgressReporter implements DatasetValidator.Progress {
    private final Counting counted;
    private final long size;
    private final ProgressThrottle throttle;
    private final DatasetIngestion.ProgressListener listener;

    ProgressReporter(
            Counting counted,
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

    /** Counts the bytes read through it. */
    static final class Counting extends FilterInputStream {
        private long count;

        Counting(InputStream in) {
            super(in);
        }

        @Override
        public int read() throws IOException {
            int b = super.read();
            if (b >= 0) {
                count++;
            }
            return b;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            int n = super.read(b, off, len);
            if (n > 0) {
                count += n;
            }
            return n;
        }

        @Override
        public long skip(long n) throws IOException {
            long skipped = super.skip(n);
            count += skipped;
            return skipped;
        }

        long count() {
            return count;
        }
    }
}
