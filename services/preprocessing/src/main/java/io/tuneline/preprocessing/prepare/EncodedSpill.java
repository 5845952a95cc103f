package io.tuneline.preprocessing.prepare;

import io.tuneline.preprocessing.prepare.Example.Shape;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Pass 1's tokenized records, one entry per record in record order, in a local file that pass 2
 * reads back instead of reading, parsing, normalising and tokenizing the dataset a second time.
 *
 * <p>An entry is the record's normalised fields, its token count before truncation, and its tokens
 * (and a causal example's labels) cut to max_seq_length, as varints: about the record's text plus
 * two bytes per kept token, so the file is about the size of the prepared splits. A record that was
 * unreadable or empty has an empty entry; pass 1 never keeps one.
 */
final class EncodedSpill {
    private EncodedSpill() {}

    /** A record read back: what {@link SplitFile#add} takes. */
    record Entry(Example example, int length, long[] ids, long[] labels) {}

    /** The entry of a record that has no tokens (unreadable or empty). */
    static final byte[] NOTHING = new byte[] {0};

    /** One record's entry, its tokens cut to {@code maxLength}. */
    static byte[] entry(Tokenization.Encoded encoded, int maxLength) {
        Out out = new Out();
        out.write(1);
        Example e = encoded.example();
        if (e instanceof Example.Classification c) {
            out.string(c.text());
            out.string(c.label());
        } else if (e instanceof Example.Instruction in) {
            out.string(in.prompt());
            out.string(in.completion());
        } else if (e instanceof Example.Chat chat) {
            out.varint(chat.messages().size());
            for (Example.Message m : chat.messages()) {
                out.string(m.role());
                out.string(m.content());
            }
        } else if (e instanceof Example.Text t) {
            out.string(t.text());
        }
        long[] ids = encoded.inputIds();
        int kept = Math.min(ids.length, maxLength);
        out.varint(ids.length);
        for (int i = 0; i < kept; i++) {
            out.varint(ids[i]);
        }
        long[] labels = encoded.labels();
        out.write(labels == null ? 0 : 1);
        if (labels != null) {
            for (int i = 0; i < kept; i++) {
                // Labels are token ids or -100: zigzag keeps the -100 to two bytes.
                out.varint((labels[i] << 1) ^ (labels[i] >> 63));
            }
        }
        return out.toByteArray();
    }

    /** The next record's entry, or null for a record without tokens. */
    static Entry read(Input in, Shape shape, int maxLength) throws IOException {
        int present = in.read();
        if (present < 0) {
            throw new EOFException("the tokenized records end before the dataset does");
        }
        if (present == 0) {
            return null;
        }
        Example example =
                switch (shape) {
                    case CLASSIFICATION -> new Example.Classification(string(in), string(in), null);
                    case INSTRUCTION -> new Example.Instruction(string(in), string(in), null);
                    case CHAT -> {
                        int n = (int) varint(in);
                        List<Example.Message> messages = new ArrayList<>(n);
                        for (int i = 0; i < n; i++) {
                            messages.add(new Example.Message(string(in), string(in)));
                        }
                        yield new Example.Chat(List.copyOf(messages), null);
                    }
                    case TEXT -> new Example.Text(string(in), null);
                };
        int length = (int) varint(in);
        long[] ids = new long[Math.min(length, maxLength)];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = varint(in);
        }
        long[] labels = null;
        int hasLabels = in.read();
        if (hasLabels < 0) {
            throw new EOFException("the tokenized records end inside a record");
        }
        if (hasLabels != 0) {
            labels = new long[ids.length];
            for (int i = 0; i < labels.length; i++) {
                long z = varint(in);
                labels[i] = (z >>> 1) ^ -(z & 1);
            }
        }
        return new Entry(example, length, ids, labels);
    }

    private static String string(Input in) throws IOException {
        return in.string((int) varint(in));
    }

    private static long varint(Input in) throws IOException {
        long v = 0;
        for (int shift = 0; ; shift += 7) {
            int b = in.read();
            if (b < 0) {
                throw new EOFException("the tokenized records end inside a record");
            }
            v |= (long) (b & 0x7F) << shift;
            if (b < 0x80) {
                return v;
            }
        }
    }

    /**
     * The local file read back through its own buffer: a byte at a time without the lock that
     * {@link java.io.BufferedInputStream#read()} takes for every one (two per token here).
     */
    static final class Input implements AutoCloseable {
        private final InputStream in;
        private final byte[] buf = new byte[1 << 16];
        private int at;
        private int end;

        Input(InputStream in) {
            this.in = in;
        }

        /** The next byte, or -1 at the end. */
        int read() throws IOException {
            if (at == end && !fill()) {
                return -1;
            }
            return buf[at++] & 0xFF;
        }

        String string(int length) throws IOException {
            if (end - at >= length) {
                String s = new String(buf, at, length, StandardCharsets.UTF_8);
                at += length;
                return s;
            }
            byte[] b = new byte[length];
            int n = end - at;
            System.arraycopy(buf, at, b, 0, n);
            at = end;
            while (n < length) {
                int r = in.read(b, n, length - n);
                if (r < 0) {
                    throw new EOFException("the tokenized records end inside a record");
                }
                n += r;
            }
            return new String(b, StandardCharsets.UTF_8);
        }

        private boolean fill() throws IOException {
            int r = in.read(buf, 0, buf.length);
            if (r <= 0) {
                return false;
            }
            at = 0;
            end = r;
            return true;
        }

        @Override
        public void close() throws IOException {
            in.close();
        }
    }

    /** A growing byte array; unlike {@link java.io.ByteArrayOutputStream}, no lock per byte. */
    private static final class Out {
        private byte[] buf = new byte[1024];
        private int n;

        void write(int b) {
            if (n == buf.length) {
                buf = Arrays.copyOf(buf, n * 2);
            }
            buf[n++] = (byte) b;
        }

        void varint(long v) {
            while ((v & ~0x7FL) != 0) {
                write((int) ((v & 0x7F) | 0x80));
                v >>>= 7;
            }
            write((int) v);
        }

        void string(String s) {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            varint(b.length);
            if (n + b.length > buf.length) {
                buf = Arrays.copyOf(buf, Math.max(buf.length * 2, n + b.length));
            }
            System.arraycopy(b, 0, buf, n, b.length);
            n += b.length;
        }

        byte[] toByteArray() {
            return Arrays.copyOf(buf, n);
        }
    }
}
