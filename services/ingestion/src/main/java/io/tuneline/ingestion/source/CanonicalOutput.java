package io.tuneline.ingestion.source;

import java.io.BufferedOutputStream;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Arrays;

/**
 * Where validation writes the canonical records. As long as they are byte for byte the dataset's
 * own bytes (read through {@link #tap}), nothing is written anywhere: the stored dataset is then
 * its own records, and no records.jsonl is made. At the first difference (or when the records fall
 * too far behind the bytes read, which canonical records never do) the part that matched is read
 * again from the store into a local file, and everything from there on goes to that file. So a
 * canonical dataset costs no local write and no second hash, and a dataset that is not pays one
 * re-read of the matching prefix.
 */
final class CanonicalOutput extends OutputStream {
    /** Opens the first {@code n} bytes of the dataset again. */
    @FunctionalInterface
    interface Prefix {
        InputStream open(long n) throws IOException;
    }

    private final Path file;
    private final Prefix prefix;
    private final long maxBehind;
    // Bytes read but not yet matched by records, oldest first; head is read from headPos.
    private final ArrayDeque<byte[]> pending = new ArrayDeque<>();
    private int headPos;
    private long pendingBytes;
    private long matched;
    private OutputStream spill;
    private boolean closed;

    /**
     * @param maxBehind the most bytes canonical records can lag behind the bytes read: a line and
     *     the reader's buffer
     */
    CanonicalOutput(Path file, Prefix prefix, long maxBehind) {
        this.file = file;
        this.prefix = prefix;
        this.maxBehind = maxBehind;
    }

    /** The dataset's bytes as validation reads them, shown to this output on the way. */
    InputStream tap(InputStream in) {
        return new FilterInputStream(in) {
            @Override
            public int read() throws IOException {
                int b = super.read();
                if (b >= 0) {
                    seen(new byte[] {(byte) b}, 0, 1);
                }
                return b;
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                int n = super.read(b, off, len);
                if (n > 0) {
                    seen(b, off, n);
                }
                return n;
            }

            @Override
            public long skip(long n) throws IOException {
                // Read, not skipped: every byte must be seen.
                byte[] scratch = new byte[(int) Math.max(0, Math.min(n, 8192))];
                return Math.max(0, read(scratch, 0, scratch.length));
            }
        };
    }

    private void seen(byte[] b, int off, int n) throws IOException {
        if (spill != null) {
            return;
        }
        pending.add(Arrays.copyOfRange(b, off, off + n));
        pendingBytes += n;
        if (pendingBytes > maxBehind) {
            diverge(b, 0, 0);
        }
    }

    @Override
    public void write(int b) throws IOException {
        write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
        if (spill != null) {
            spill.write(b, off, len);
            return;
        }
        while (len > 0) {
            byte[] head = pending.peek();
            if (head == null) {
                diverge(b, off, len);
                return;
            }
            int n = Math.min(len, head.length - headPos);
            if (!Arrays.equals(head, headPos, headPos + n, b, off, off + n)) {
                diverge(b, off, len);
                return;
            }
            headPos += n;
            matched += n;
            pendingBytes -= n;
            off += n;
            len -= n;
            if (headPos == head.length) {
                pending.poll();
                headPos = 0;
            }
        }
    }

    /** From here on the records differ from the dataset: the matching part, then the rest. */
    private void diverge(byte[] b, int off, int len) throws IOException {
        pending.clear();
        pendingBytes = 0;
        spill = new BufferedOutputStream(Files.newOutputStream(file), 1 << 16);
        if (matched > 0) {
            try (InputStream in = prefix.open(matched)) {
                long copied = in.transferTo(spill);
                if (copied != matched) {
                    throw new IOException(
                            "read "
                                    + copied
                                    + " bytes of the dataset again where "
                                    + matched
                                    + " were expected");
                }
            }
        }
        spill.write(b, off, len);
    }

    /**
     * Ends the output: true when the records are the dataset's {@code size} bytes exactly (nothing
     * was written to the file); otherwise the file holds them.
     */
    boolean finish(long size) throws IOException {
        if (spill == null && pendingBytes == 0 && matched == size) {
            return true;
        }
        if (spill == null) {
            diverge(new byte[0], 0, 0);
        }
        spill.close();
        closed = true;
        return false;
    }

    @Override
    public void close() throws IOException {
        if (spill != null && !closed) {
            closed = true;
            spill.close();
        }
    }
}
