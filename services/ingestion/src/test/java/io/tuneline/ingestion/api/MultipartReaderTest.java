package io.tuneline.ingestion.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Random;
import org.junit.jupiter.api.Test;

class MultipartReaderTest {
    /** Hands the body out a few bytes at a time, as a slow network would. */
    private static InputStream trickle(byte[] body) {
        Random random = new Random(1);
        return new FilterInputStream(new ByteArrayInputStream(body)) {
            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                return super.read(b, off, Math.min(len, 1 + random.nextInt(7)));
            }
        };
    }

    @Test
    void theFilePartComesOutByteForByteWhateverTheChunking() throws IOException {
        byte[] file = new byte[200_000];
        new Random(7).nextBytes(file);
        // Almost-boundaries inside the content.
        byte[] tricky = "\r\n--b0undary\r\n--b0und".getBytes(StandardCharsets.ISO_8859_1);
        System.arraycopy(tricky, 0, file, 1000, tricky.length);
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        body.write(
                ("preamble\r\n--b0undaryX\r\n"
                                + "Content-Disposition: form-data; name=\"note\"\r\n\r\n"
                                + "hello\r\n--b0undaryX\r\n"
                                + "content-disposition: form-data; filename=\"a.csv\"; name=\"file\"\r\n"
                                + "Content-Type: text/csv\r\n\r\n")
                        .getBytes(StandardCharsets.ISO_8859_1));
        body.write(file);
        body.write("\r\n--b0undaryX--\r\n".getBytes(StandardCharsets.ISO_8859_1));

        String boundary =
                MultipartReader.boundary(
                                "multipart/form-data; charset=utf-8; boundary=\"b0undaryX\"")
                        .orElseThrow();
        var part =
                new MultipartReader(trickle(body.toByteArray()), boundary)
                        .find("file")
                        .orElseThrow();
        assertThat(part.filename()).isEqualTo("a.csv");
        assertThat(part.content().readAllBytes()).isEqualTo(file);
    }

    @Test
    void noFilePartIsEmptyAndOtherContentTypesAreNotMultipart() throws IOException {
        byte[] body =
                ("--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--b--\r\n")
                        .getBytes(StandardCharsets.ISO_8859_1);
        assertThat(new MultipartReader(new ByteArrayInputStream(body), "b").find("file")).isEmpty();
        assertThat(MultipartReader.boundary("text/csv")).isEmpty();
        assertThat(MultipartReader.boundary(null)).isEmpty();
        assertThat(MultipartReader.boundary("multipart/form-data; boundary=abc")).contains("abc");

        byte[] truncated =
                ("--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nno end")
                        .getBytes(StandardCharsets.ISO_8859_1);
        var part = new MultipartReader(new ByteArrayInputStream(truncated), "b").find("file");
        assertThatThrownBy(() -> part.orElseThrow().content().readAllBytes())
                .isInstanceOf(IOException.class)
                .hasMessageContaining("ends inside a part");
    }
}
