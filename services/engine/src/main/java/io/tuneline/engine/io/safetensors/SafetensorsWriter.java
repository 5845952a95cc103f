package io.tuneline.engine.io.safetensors;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Writes safetensors files that Hugging Face's loaders read: tensors in name order, the header
 * padded with spaces to a multiple of 8 bytes so the data starts aligned. Written to a temporary
 * file first and moved into place, so a crash never leaves half a model behind.
 */
public final class SafetensorsWriter {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Map<String, Entry> tensors = new java.util.TreeMap<>();
    private final Map<String, String> metadata = new LinkedHashMap<>();

    private record Entry(Dtype dtype, long[] shape, byte[] data) {}

    public SafetensorsWriter metadata(String key, String value) {
        metadata.put(key, value);
        return this;
    }

    public SafetensorsWriter addF32(String name, long[] shape, float[] values) {
        checkSize(name, shape, values.length);
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(values);
        return add(name, Dtype.F32, shape, b.array());
    }

    public SafetensorsWriter addI64(String name, long[] shape, long[] values) {
        checkSize(name, shape, values.length);
        ByteBuffer b = ByteBuffer.allocate(values.length * 8).order(ByteOrder.LITTLE_ENDIAN);
        b.asLongBuffer().put(values);
        return add(name, Dtype.I64, shape, b.array());
    }

    /**
     * A U8 tensor: raw bytes, e.g. bitsandbytes' packed 4-bit weights and its JSON quant state. The
     * array is kept, not copied, until {@link #write}.
     */
    public SafetensorsWriter addU8(String name, long[] shape, byte[] values) {
        checkSize(name, shape, values.length);
        return add(name, Dtype.U8, shape, values);
    }

    private SafetensorsWriter add(String name, Dtype dtype, long[] shape, byte[] data) {
        if (name.equals("__metadata__")) {
            throw new IllegalArgumentException(
                    "'__metadata__' is reserved and cannot name a tensor");
        }
        if (tensors.putIfAbsent(name, new Entry(dtype, shape.clone(), data)) != null) {
            throw new IllegalArgumentException("tensor '" + name + "' was added twice");
        }
        return this;
    }

    private static void checkSize(String name, long[] shape, int values) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        if (n != values) {
            throw new IllegalArgumentException(
                    "tensor '"
                            + name
                            + "' has shape "
                            + Arrays.toString(shape)
                            + " ("
                            + n
                            + " values) but "
                            + values
                            + " values were given");
        }
    }

    public void write(Path target) throws IOException {
        ObjectNode header = JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = header.putObject("__metadata__");
            metadata.forEach(meta::put);
        }
        long offset = 0;
        for (Map.Entry<String, Entry> e : tensors.entrySet()) {
            ObjectNode t = header.putObject(e.getKey());
            t.put("dtype", e.getValue().dtype().name());
            var shape = t.putArray("shape");
            for (long d : e.getValue().shape()) {
                shape.add(d);
            }
            var offsets = t.putArray("data_offsets");
            offsets.add(offset);
            offset += e.getValue().data().length;
            offsets.add(offset);
        }
        byte[] json = JSON.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        int padding = (8 - json.length % 8) % 8;
        Path parent = target.toAbsolutePath().getParent();
        Files.createDirectories(parent);
        Path temp = Files.createTempFile(parent, target.getFileName().toString(), ".partial");
        try (OutputStream out = Files.newOutputStream(temp)) {
            out.write(
                    ByteBuffer.allocate(8)
                            .order(ByteOrder.LITTLE_ENDIAN)
                            .putLong(json.length + padding)
                            .array());
            out.write(json);
            out.write(" ".repeat(padding).getBytes(StandardCharsets.US_ASCII));
            for (Entry e : tensors.values()) {
                out.write(e.data());
            }
        } catch (IOException e) {
            Files.deleteIfExists(temp);
            throw e;
        }
        Files.move(
                temp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }
}
