package io.tuneline.ingestion.api;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads a {@code multipart/form-data} body (RFC 7578) as it arrives: finds the part of a given name
 * and hands its content out as a stream that ends at the next boundary, so an uploaded file goes to
 * the store without being held in memory or written to disk. Other parts are skipped.
 */
final class MultipartReader {
    private static final int MAX_HEADER_BYTES = 16 * 1024;
    private static final Pattern NAME =
            Pattern.compile("(?:^|;)\\s*name=\"([^\"]*)\"", Pattern.CASE_INSENSITIVE);
    private static final Pattern FILENAME =
            Pattern.compile("(?:^|;)\\s*filename=\"([^\"]*)\"", Pattern.CASE_INSENSITIVE);
    private static final Pattern BOUNDARY =
            Pattern.compile(
                    "(?:^|;)\\s*boundary=(?:\"([^\"]+)\"|([^;\\s]+))", Pattern.CASE_INSENSITIVE);

    /** The part found: its file name as the client sent it (may be empty) and its content. */
    record Part(String filename, InputStream content) {}

    private final InputStream in;
    private final byte[] delimiter;
    private final byte[] buf = new byte[64 * 1024];
    private int pos;
    private int limit;
    private boolean eof;

    MultipartReader(InputStream in, String boundary) {
        this.in = in;
        this.delimiter = ("\r\n--" + boundary).getBytes(StandardCharsets.ISO_8859_1);
        // The first boundary may open the body: read it as if a line break came before it.
        buf[0] = '\r';
        buf[1] = '\n';
        limit = 2;
    }

    /** The boundary of a {@code multipart/form-data} content type, or empty for another type. */
    static Optional<String> boundary(String contentType) {
        if (contentType == null
                || !contentType
                        .strip()
                        .toLowerCase(Locale.ROOT)
                        .startsWith("multipart/form-data")) {
            return Optional.empty();
        }
        Matcher m = BOUNDARY.matcher(contentType.substring(contentType.indexOf(';') + 1));
        if (!m.find()) {
            return Optional.of("");
        }
        return Optional.of(m.group(1) != null ? m.group(1) : m.group(2));
    }

    /** The first part named {@code name}, positioned at its content; empty when there is none. */
    Optional<Part> find(String name) throws IOException {
        while (nextPart()) {
            String disposition = headers();
            Matcher n = NAME.matcher(disposition);
            if (n.find() && n.group(1).equals(name)) {
                Matcher f = FILENAME.matcher(disposition);
                return Optional.of(new Part(f.find() ? f.group(1) : "", new PartStream()));
            }
            new PartStream().transferTo(java.io.OutputStream.nullOutputStream());
        }
        return Optional.empty();
    }

    /** Skips to after the next delimiter; false after the closing one. */
    private boolean nextPart() throws IOException {
        while (true) {
            int at = indexOf();
            if (at >= 0) {
                pos = at + delimiter.length;
                break;
            }
            if (eof) {
                throw new IOException("the multipart body ends without its closing boundary");
            }
            // Keep what could be the start of a delimiter.
            pos = Math.max(pos, limit - delimiter.length + 1);
            fill();
        }
        if (!ensure(2)) {
            throw new IOException("the multipart body ends inside a boundary");
        }
        if (buf[pos] == '-' && buf[pos + 1] == '-') {
            return false;
        }
        readLine(); // the rest of the boundary line (transport padding and CRLF)
        return true;
    }

    /** Reads a part's header lines; returns its Content-Disposition value. */
    private String headers() throws IOException {
        String disposition = "";
        int total = 0;
        while (true) {
            String line = readLine();
            total += line.length() + 2;
            if (total > MAX_HEADER_BYTES) {
                throw new IOException("a multipart part has more than 16 KiB of headers");
            }
            if (line.isEmpty()) {
                return disposition;
            }
            int colon = line.indexOf(':');
            if (colon > 0
                    && line.substring(0, colon).strip().equalsIgnoreCase("content-disposition")) {
                disposition = line.substring(colon + 1).strip();
                int semicolon = disposition.indexOf(';');
                disposition = semicolon < 0 ? "" : disposition.substring(semicolon);
            }
        }
    }

    private String readLine() throws IOException {
        StringBuilder line = new StringBuilder();
        while (true) {
            if (!ensure(1)) {
                throw new IOException("the multipart body ends inside a part's headers");
            }
            byte b = buf[pos++];
            if (b == '\n') {
                int n = line.length();
                if (n > 0 && line.charAt(n - 1) == '\r') {
                    line.setLength(n - 1);
                }
                return line.toString();
            }
            if (line.length() > MAX_HEADER_BYTES) {
                throw new IOException("a multipart header line is longer than 16 KiB");
            }
            line.append((char) (b & 0xff));
        }
    }

    /** Whether {@code n} bytes are buffered after reading more if needed. */
    private boolean ensure(int n) throws IOException {
        while (limit - pos < n) {
            if (eof) {
                return false;
            }
            fill();
        }
        return true;
    }

    /** Moves the unread bytes to the front and reads more after them. */
    private void fill() throws IOException {
        if (pos > 0) {
            System.arraycopy(buf, pos, buf, 0, limit - pos);
            limit -= pos;
            pos = 0;
        }
        int n = in.read(buf, limit, buf.length - limit);
        if (n < 0) {
            eof = true;
        } else {
            limit += n;
        }
    }

    /** Where the delimiter starts in the buffered bytes, or -1. */
    private int indexOf() {
        outer:
        for (int i = pos; i <= limit - delimiter.length; i++) {
            for (int j = 0; j < delimiter.length; j++) {
                if (buf[i + j] != delimiter[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    /** A part's content: the bytes up to the next delimiter. */
    private final class PartStream extends InputStream {
        private boolean done;

        @Override
        public int read() throws IOException {
            byte[] one = new byte[1];
            int n = read(one, 0, 1);
            return n < 0 ? -1 : one[0] & 0xff;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            if (done) {
                return -1;
            }
            if (len == 0) {
                return 0;
            }
            while (true) {
                int at = indexOf();
                int safe = at >= 0 ? at - pos : limit - pos - (delimiter.length - 1);
                if (safe > 0) {
                    int n = Math.min(len, safe);
                    System.arraycopy(buf, pos, b, off, n);
                    pos += n;
                    return n;
                }
                if (at >= 0) {
                    done = true; // the delimiter stays buffered for nextPart()
                    return -1;
                }
                if (eof) {
                    throw new IOException("the multipart body ends inside a part");
                }
                fill();
            }
        }
    }
}
