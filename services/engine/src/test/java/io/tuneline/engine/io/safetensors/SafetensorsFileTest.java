package io.tuneline.engine.io.safetensors;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsFileTest {
    @TempDir Path dir;

    private static Path fixture() throws Exception {
        return Paths.get(SafetensorsFileTest.class.getResource("/fixture.safetensors").toURI());
    }

    @Test
    void readsAFileWrittenByAnIndependentImplementation() throws Exception {
        // src/test/python/write_safetensors_fixture.py wrote it with Python's struct module.
        try (SafetensorsFile f = SafetensorsFile.open(fixture())) {
            assertThat(f.metadata())
                    .containsEntry("format", "pt")
                    .containsEntry("source", "tuneline test");
            assertThat(f.names())
                    .containsExactly(
                            "encoder.layer.0.weight",
                            "encoder.layer.0.half",
                            "head.bf16",
                            "position_ids");
            assertThat(f.info("encoder.layer.0.weight").shape()).containsExactly(2, 3);
            assertThat(f.floats("encoder.layer.0.weight"))
                    .containsExactly(1f, -2f, 0.5f, 3.25f, -0.125f, 100f);
            // 6.103515625e-05 is the smallest normal half.
            assertThat(f.floats("encoder.layer.0.half"))
                    .containsExactly(0.5f, -2.25f, 1024f, 6.103515625e-05f);
            assertThat(f.floats("head.bf16")).containsExactly(1f, -3.5f, 3.140625f);
            assertThat(f.longs("position_ids")).containsExactly(0L, 511L);
        }
    }

    @Test
    void halfPrecisionEdgeCasesConvertExactly() {
        assertThat(SafetensorsFile.halfToFloat((short) 0x0001))
                .isEqualTo(0x1p-24f); // smallest subnormal
        assertThat(SafetensorsFile.halfToFloat((short) 0x7BFF)).isEqualTo(65504f); // largest finite
        assertThat(SafetensorsFile.halfToFloat((short) 0xFC00)).isEqualTo(Float.NEGATIVE_INFINITY);
        assertThat(SafetensorsFile.halfToFloat((short) 0x7E00)).isNaN();
        assertThat(Float.floatToIntBits(SafetensorsFile.halfToFloat((short) 0x8000)))
                .isEqualTo(Float.floatToIntBits(-0f));
    }

    @Test
    void whatTheWriterWritesTheReaderReadsBackAligned() throws IOException {
        Path file = dir.resolve("model.safetensors");
        new SafetensorsWriter()
                .metadata("format", "pt")
                .addF32("b.weight", new long[] {2, 2}, new float[] {1.5f, -0.25f, 3f, 1e-7f})
                .addF32("a.bias", new long[] {3}, new float[] {0f, 1f, 2f})
                .addI64("ids", new long[] {2}, new long[] {7, -1})
                .write(file);

        long headerLength =
                ByteBuffer.wrap(Files.readAllBytes(file), 0, 8)
                        .order(ByteOrder.LITTLE_ENDIAN)
                        .getLong();
        assertThat((8 + headerLength) % 8).as("data section starts 8-byte aligned").isZero();
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertThat(f.names()).containsExactly("a.bias", "b.weight", "ids");
            assertThat(f.floats("b.weight")).containsExactly(1.5f, -0.25f, 3f, 1e-7f);
            assertThat(f.longs("ids")).containsExactly(7L, -1L);
            assertThat(f.metadata()).containsEntry("format", "pt");
        }
        try (var files = Files.list(dir)) {
            assertThat(files).as("no temporary file left").hasSize(1);
        }
    }

    @Test
    void brokenFilesAreRejectedNamingTheFileAndTheTensor() throws IOException {
        Path overlap =
                write(
                        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}",
                        8);
        assertThatThrownBy(() -> SafetensorsFile.open(overlap))
                .isInstanceOf(SafetensorsException.class)
                .hasMessageStartingWith(overlap.toString())
                .hasMessageContaining(
                        "tensor 'b' starts at byte 2 of the data, expected 4 (it overlaps");

        Path wrongSize =
                write("{\"w\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,4]}}", 4);
        assertThatThrownBy(() -> SafetensorsFile.open(wrongSize))
                .hasMessageContaining("tensor 'w' spans 4 bytes but F16 [3] needs 6");

        Path truncated =
                write("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4);
        assertThatThrownBy(() -> SafetensorsFile.open(truncated)).hasMessageContaining("truncated");

        Path unknown =
                write("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
        assertThatThrownBy(() -> SafetensorsFile.open(unknown))
                .hasMessageContaining("unsupported dtype 'F8_E4M3'");

        Path huge = dir.resolve("huge.safetensors");
        Files.write(
                huge,
                ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1L << 40).array());
        assertThatThrownBy(() -> SafetensorsFile.open(huge))
                .hasMessageContaining("header length 1099511627776 is outside");

        try (SafetensorsFile f = SafetensorsFile.open(fixture())) {
            assertThatThrownBy(() -> f.floats("missing.weight"))
                    .hasMessageContaining("no tensor 'missing.weight'");
            assertThatThrownBy(() -> f.floats("position_ids"))
                    .hasMessageContaining("is I64, not floating point");
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    private Path write(String header, int dataBytes) throws IOException {
        byte[] json = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b =
                ByteBuffer.allocate(8 + json.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(json.length).put(json);
        Path p = Files.createTempFile(dir, "bad", ".safetensors");
        Files.write(p, b.array());
        return p;
    }
}
