package io.tuneline.engine.catalog;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** {@code PretrainedModel.contains}: the pooler scan of an ONNX file read as a stream. */
class StreamScanTest {
    private static final byte[] NEEDLE = "pooler.dense.bias".getBytes(StandardCharsets.UTF_8);

    /** {@code size} bytes of 'x' with the needle written at {@code at} (none when negative). */
    private static byte[] haystack(int size, int at) {
        byte[] b = new byte[size];
        java.util.Arrays.fill(b, (byte) 'x');
        if (at >= 0) {
            System.arraycopy(NEEDLE, 0, b, at, NEEDLE.length);
        }
        return b;
    }

    /** Reads at most {@code chunk} bytes per call, as a network or inflating stream may. */
    private static InputStream trickle(byte[] data, int chunk) {
        return new FilterInputStream(new ByteArrayInputStream(data)) {
            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                return super.read(b, off, Math.min(len, chunk));
            }
        };
    }

    @Test
    void findsTheNameAcrossTheBufferBoundaryAndAtTheEnds() throws IOException {
        int mib = 1 << 20;
        int size = 3 * mib;
        for (int at :
                new int[] {
                    0, mib - 5, mib - NEEDLE.length, mib, 2 * mib - 1, size - NEEDLE.length
                }) {
            assertThat(
                            PretrainedModel.contains(
                                    new ByteArrayInputStream(haystack(size, at)), NEEDLE))
                    .as("needle at %d", at)
                    .isTrue();
            assertThat(PretrainedModel.contains(trickle(haystack(size, at), 7919), NEEDLE))
                    .as("needle at %d, read in chunks of 7919", at)
                    .isTrue();
        }
    }

    @Test
    void aMissingOrCutNameIsNotFound() throws IOException {
        assertThat(
                        PretrainedModel.contains(
                                new ByteArrayInputStream(haystack(3 << 20, -1)), NEEDLE))
                .isFalse();
        // Only the first 16 of its 17 bytes, at the very end.
        byte[] cut = haystack(2 << 20, -1);
        System.arraycopy(NEEDLE, 0, cut, cut.length - NEEDLE.length + 1, NEEDLE.length - 1);
        assertThat(PretrainedModel.contains(trickle(cut, 4096), NEEDLE)).isFalse();
        assertThat(PretrainedModel.contains(new ByteArrayInputStream(new byte[0]), NEEDLE))
                .isFalse();
    }
}
