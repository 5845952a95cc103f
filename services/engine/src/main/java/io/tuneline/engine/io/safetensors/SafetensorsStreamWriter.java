package io.tuneline.engine.io.safetensors;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Writes a safetensors file tensor by tensor, for models too large to hold in the heap: the header
 * is computed from the shapes (sizes and offsets in {@code long}: a 7B model's embedding alone is
 * over 2^31 bytes in F32), then each tensor's values are asked for in chunks of whole rows and
 * converted to the stored type (F32, or BF16 rounded to nearest even as PyTorch's {@code
 * tensor.to(torch.bfloat16)}, {@code c10::round_to_nearest_even}). Same layout as {@link
 * SafetensorsWriter}: tensors in name order, header padded with spaces to 8 bytes, written to a
 * temporary file and moved into place.
 */
public final class SafetensorsStreamWriter {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Values per chunk asked of a source: 16 MB of floats. */
    static final long CHUNK_VALUES = 1L << 22;

    /** Gives a tensor's row-major values {@code [from, to)} (never more than a chunk). */
    @FunctionalInterface
    public interface Values {
        float[] range(long from, long to);
    }

    private record Entry(Dtype dtype, long[] shape, Values values) {
        long count() {
            long n = 1;
            for (long d : shape) {
                n = Math.multiplyExact(n, d);
            }
            return n;
        }

        long bytes() {
            return Math.multiplyExact(count(), dtype.bytes());
        }
    }

    private final Map<String, Entry> tensors = new TreeMap<>();
    private final Map<String, String> metadata = new LinkedHashMap<>();

    public SafetensorsStreamWriter metadata(String key, String value) {
        metadata.put(key, value);
        return this;
    }

    /** Adds a float tensor stored as {@code dtype} (F32 or BF16). */
    public SafetensorsStreamWriter add(String name, Dtype dtype, long[] shape, Values values) {
        if (dtype != Dtype.F32 && dtype != Dtype.BF16) {
            throw new IllegalArgumentException(
                    "tensor '" + name + "': only F32 and BF16 are written, not " + dtype);
        }
        if (name.equals("__metadata__")) {
            throw new IllegalArgumentException(
                    "'__metadata__' is reserved and cannot name a tensor");
        }
        if (tensors.putIfAbsent(name, new Entry(dtype, shape.clone(), values)) != null) {
            throw new IllegalArgumentException("tensor '" + name + "' was added twice");
        }
        return this;
    }

    /**
     * Writes {@code STEM.safetensors}, or, when the tensors' bytes exceed {@code maxShardBytes},
     * shards {@code STEM-00001-of-0000N.safetensors} and {@code STEM.safetensors.index.json}
     * ({@code metadata.total_size} and the {@code weight_map} from tensor to shard) as
     * transformers' {@code save_pretrained} does (huggingface_hub's {@code
     * split_torch_state_dict_into_shards}: tensors in order, a new shard when the next one would
     * overflow the current; a tensor larger than the limit gets a shard of its own). Whichever
     * layout is written, the other one's files are removed, so a directory never holds both.
     *
     * @return the files written, the index last
     */
    public List<Path> writeSharded(Path directory, String stem, long maxShardBytes)
            throws IOException {
        if (maxShardBytes <= 0) {
            throw new IllegalArgumentException("max shard size must be positive: " + maxShardBytes);
        }
        List<Map<String, Entry>> shards = new ArrayList<>();
        Map<String, Entry> current = new TreeMap<>();
        long currentBytes = 0;
        long total = 0;
        for (Map.Entry<String, Entry> e : tensors.entrySet()) {
            long bytes = e.getValue().bytes();
            if (!current.isEmpty() && currentBytes + bytes > maxShardBytes) {
                shards.add(current);
                current = new TreeMap<>();
                currentBytes = 0;
            }
            current.put(e.getKey(), e.getValue());
            currentBytes += bytes;
            total = Math.addExact(total, bytes);
        }
        shards.add(current);
        Path single = directory.resolve(stem + ".safetensors");
        Path index = directory.resolve(stem + ".safetensors.index.json");
        try (var old =
                Files.exists(directory)
                        ? Files.list(directory)
                        : java.util.stream.Stream.<Path>empty()) {
            for (Path f : old.toList()) {
                String name = f.getFileName().toString();
                if (name.matches(
                                java.util.regex.Pattern.quote(stem)
                                        + "-\\d{5}-of-\\d{5}\\.safetensors")
                        || (shards.size() > 1 && name.equals(single.getFileName().toString()))
                        || (shards.size() == 1 && name.equals(index.getFileName().toString()))) {
                    Files.delete(f);
                }
            }
        }
        if (shards.size() == 1) {
            write(single);
            return List.of(single);
        }
        List<Path> written = new ArrayList<>();
        ObjectNode indexJson = JSON.createObjectNode();
        indexJson.putObject("metadata").put("total_size", total);
        ObjectNode weightMap = indexJson.putObject("weight_map");
        for (int i = 0; i < shards.size(); i++) {
            String file = String.format("%s-%05d-of-%05d.safetensors", stem, i + 1, shards.size());
            SafetensorsStreamWriter shard = new SafetensorsStreamWriter();
            shard.metadata.putAll(metadata);
            shard.tensors.putAll(shards.get(i));
            shard.write(directory.resolve(file));
            shards.get(i).keySet().forEach(name -> weightMap.put(name, file));
            written.add(directory.resolve(file));
        }
        Path temp = Files.createTempFile(directory, index.getFileName().toString(), ".partial");
        Files.writeString(
                temp, JSON.writerWithDefaultPrettyPrinter().writeValueAsString(indexJson));
        Files.move(
                temp, index, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        written.add(index);
        return written;
    }

    /** The file's size in bytes once written (header included). */
    public long write(Path target) throws IOException {
        ObjectNode header = JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = header.putObject("__metadata__");
            metadata.forEach(meta::put);
        }
        long offset = 0;
        for (Map.Entry<String, Entry> e : tensors.entrySet()) {
            Entry t = e.getValue();
            ObjectNode o = header.putObject(e.getKey());
            o.put("dtype", t.dtype().name());
            var shape = o.putArray("shape");
            for (long d : t.shape()) {
                shape.add(d);
            }
            var offsets = o.putArray("data_offsets");
            offsets.add(offset);
            offset = Math.addExact(offset, t.bytes());
            offsets.add(offset);
        }
        byte[] json = JSON.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        int padding = (8 - json.length % 8) % 8;
        Path parent = target.toAbsolutePath().getParent();
        Files.createDirectories(parent);
        Path temp = Files.createTempFile(parent, target.getFileName().toString(), ".partial");
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(temp), 1 << 20)) {
            out.write(
                    ByteBuffer.allocate(8)
                            .order(ByteOrder.LITTLE_ENDIAN)
                            .putLong((long) json.length + padding)
                            .array());
            out.write(json);
            out.write(" ".repeat(padding).getBytes(StandardCharsets.US_ASCII));
            for (Map.Entry<String, Entry> e : tensors.entrySet()) {
                writeData(out, e.getKey(), e.getValue());
            }
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(temp);
            throw e;
        }
        Files.move(
                temp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        return 8 + json.length + padding + offset;
    }

    private static void writeData(OutputStream out, String name, Entry t) throws IOException {
        long n = t.count();
        for (long from = 0; from < n; from += CHUNK_VALUES) {
            long to = Math.min(n, from + CHUNK_VALUES);
            float[] v = t.values().range(from, to);
            if (v.length != to - from) {
                throw new IllegalStateException(
                        "tensor '"
                                + name
                                + "' of shape "
                                + Arrays.toString(t.shape())
                                + " gave "
                                + v.length
                                + " values for ["
                                + from
                                + ", "
                                + to
                                + ")");
            }
            ByteBuffer b =
                    ByteBuffer.allocate(v.length * t.dtype().bytes())
                            .order(ByteOrder.LITTLE_ENDIAN);
            if (t.dtype() == Dtype.F32) {
                b.asFloatBuffer().put(v);
            } else {
                for (float f : v) {
                    b.putShort(bfloat16(f));
                }
            }
            out.write(b.array());
        }
    }

    /**
     * The bfloat16 nearest to {@code f}, ties to even, NaN kept a quiet NaN: PyTorch's {@code
     * c10::BFloat16} conversion ({@code round_to_nearest_even} in {@code c10/util/BFloat16.h}).
     */
    public static short bfloat16(float f) {
        if (Float.isNaN(f)) {
            return (short) 0x7FC0;
        }
        int bits = Float.floatToRawIntBits(f);
        int rounding = 0x7FFF + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }
}
