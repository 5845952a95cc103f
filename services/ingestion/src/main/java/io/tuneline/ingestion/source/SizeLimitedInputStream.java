package io.tuneline.ingestion.source;

import io.tuneline.ingestion.validate.DatasetInvalidException;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.List;

/** Fails a copy as soon as more than {@code max} bytes came through, not after the whole file. */
public final class SizeLimitedInputStream extends FilterInputStream {
    private final long max;
    private final String what;
    private long count;

    public SizeLimitedInputStream(InputStream in, long max, String what) {
        super(in);
        this.max = max;
        this.what = what;
    }

    @Override
    public int read() throws IOException {
        int b = super.read();
        if (b >= 0) {
            count(1);
        }
        return b;
    }

    @Override
    public int read(byte[] buf, int off, int len) throws IOException {
        int n = super.read(buf, off, len);
        if (n > 0) {
            count(n);
        }
        return n;
    }

    private void count(long n) {
        count += n;
        if (count > max) {
            throw tooLarge(what, max);
        }
    }

    /**
     * The limit's own error when it is what broke a store upload (the object store wraps whatever
     * the stream threw), so callers report the limit rather than a storage failure.
     */
    public static java.util.Optional<DatasetInvalidException> limitBehind(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof DatasetInvalidException invalid) {
                return java.util.Optional.of(invalid);
            }
        }
        return java.util.Optional.empty();
    }

    static DatasetInvalidException tooLarge(String what, long max) {
        return new DatasetInvalidException(
                "DATASET_TOO_LARGE",
                what + " is larger than tuneline.ingestion.max-bytes (" + max + " bytes)",
                List.of());
    }
}
