package io.tuneline.engine.io.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads a safetensors file (Hugging Face's weight format): an 8-byte little-endian header length, a
 * JSON header naming each tensor's dtype, shape and byte range, then the raw little-endian data.
 * Tensors are read one at a time straight from the file, so a model is never held twice in memory.
 *
 * <p>The checks follow the format's own rules: the header is UTF-8 JSON of at most 100 MB, byte
 * ranges match dtype and shape, and together they tile the data section with no gap or overlap.
 */
public final class SafetensorsFile implements AutoCloseable {
    /** The reference implementation refuses larger headers, to bound what a bad file can cost. */
    static final long MAX_HEADER = 100L * 1024 * 1024;

    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path path;
    private final FileChannel channel;
    private final long dataStart;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;

    private SafetensorsFile(
            Path path,
            FileChannel channel,
            long dataStart,
            Map<String, TensorInfo> tensors,
            Map<String, String> metadata) {
        this.path = path;
        this.channel = channel;
        this.dataStart = dataStart;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    public static SafetensorsFile open(Path path) {
        FileChannel channel;
        try {
            channel = FileChannel.open(path, StandardOpenOption.READ);
        } catch (IOException e) {
            throw new SafetensorsException(path, "cannot open: " + e.getMessage(), e);
        }
        try {
            long size = channel.size();
            if (size < 8) {
                throw new SafetensorsException(
                        path, "only " + size + " bytes; not a safetensors file");
            }
            ByteBuffer lengthBytes = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(channel, lengthBytes, 0);
            long headerLength = lengthBytes.flip().getLong();
            if (headerLength <= 0 || headerLength > MAX_HEADER) {
                throw new SafetensorsException(
                        path,
                        "header length "
                                + headerLength
                                + " is outside 1.."
                                + MAX_HEADER
                                + "; the file is corrupt or not safetensors");
            }
            if (8 + headerLength > size) {
                throw new SafetensorsException(
                        path, "header of " + headerLength + " bytes runs past the end of the file");
            }
            ByteBuffer headerBytes = ByteBuffer.allocate((int) headerLength);
            readFully(channel, headerBytes, 8);
            String header = decodeUtf8(path, headerBytes.flip());
            long dataStart = 8 + headerLength;
            Map<String, String> metadata = new LinkedHashMap<>();
            Map<String, TensorInfo> tensors = parseHeader(path, header, metadata);
            checkLayout(path, tensors, size - dataStart);
            return new SafetensorsFile(path, channel, dataStart, tensors, metadata);
        } catch (IOException e) {
            closeQuietly(channel);
            throw new SafetensorsException(path, "cannot read: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            closeQuietly(channel);
            throw e;
        }
    }

    private static Map<String, TensorInfo> parseHeader(
            Path path, String header, Map<String, String> metadata) {
        JsonNode root;
        try {
            root = JSON.readTree(header);
        } catch (IOException e) {
            throw new SafetensorsException(path, "header is not valid JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new SafetensorsException(path, "header is not a JSON object");
        }
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String name = e.getKey();
            JsonNode node = e.getValue();
            if (name.equals("__metadata__")) {
                node.fields()
                        .forEachRemaining(m -> metadata.put(m.getKey(), m.getValue().asText()));
                continue;
            }
            Dtype dtype;
            try {
                dtype = Dtype.valueOf(node.path("dtype").asText());
            } catch (IllegalArgumentException ex) {
                throw new SafetensorsException(
                        path,
                        "tensor '"
                                + name
                                + "' has unsupported dtype '"
                                + node.path("dtype").asText()
                                + "'");
            }
            JsonNode shapeNode = node.path("shape");
            JsonNode offsets = node.path("data_offsets");
            if (!shapeNode.isArray() || !offsets.isArray() || offsets.size() != 2) {
                throw new SafetensorsException(
                        path, "tensor '" + name + "' lacks a shape array or two data_offsets");
            }
            long[] shape = new long[shapeNode.size()];
            for (int i = 0; i < shape.length; i++) {
                shape[i] = shapeNode.get(i).asLong(-1);
                if (shape[i] < 0) {
                    throw new SafetensorsException(
                            path, "tensor '" + name + "' has a negative dimension");
                }
            }
            TensorInfo info =
                    new TensorInfo(
                            name, dtype, shape, offsets.get(0).asLong(), offsets.get(1).asLong());
            long expected = Math.multiplyExact(info.elements(), dtype.bytes());
            if (info.end() - info.begin() != expected) {
                throw new SafetensorsException(
                        path,
                        "tensor '"
                                + name
                                + "' spans "
                                + (info.end() - info.begin())
                                + " bytes but "
                                + dtype
                                + " "
                                + java.util.Arrays.toString(shape)
                                + " needs "
                                + expected);
            }
            tensors.put(name, info);
        }
        return Collections.unmodifiableMap(tensors);
    }

    /** Byte ranges must tile the data section exactly: no holes, no overlaps, nothing past it. */
    private static void checkLayout(Path path, Map<String, TensorInfo> tensors, long dataLength) {
        List<TensorInfo> sorted = new ArrayList<>(tensors.values());
        sorted.sort(Comparator.comparingLong(TensorInfo::begin));
        long at = 0;
        for (TensorInfo t : sorted) {
            if (t.begin() != at) {
                throw new SafetensorsException(
                        path,
                        "tensor '"
                                + t.name()
                                + "' starts at byte "
                                + t.begin()
                                + " of the data, expected "
                                + at
                                + (t.begin() < at
                                        ? " (it overlaps the previous tensor)"
                                        : " (a gap)"));
            }
            at = t.end();
        }
        if (at != dataLength) {
            throw new SafetensorsException(
                    path,
                    "tensors cover "
                            + at
                            + " bytes but the data section has "
                            + dataLength
                            + "; the file is truncated or has trailing bytes");
        }
    }

    public Path path() {
        return path;
    }

    public Map<String, String> metadata() {
        return metadata;
    }

    /** Tensor names in header order. */
    public List<String> names() {
        return List.copyOf(tensors.keySet());
    }

    public TensorInfo info(String name) {
        TensorInfo info = tensors.get(name);
        if (info == null) {
            throw new SafetensorsException(
                    path,
                    "no tensor '"
                            + name
                            + "'; it has "
                            + tensors.size()
                            + " tensors, e.g. "
                            + names().stream().limit(5).toList());
        }
        return info;
    }

    /** The raw little-endian bytes of a tensor. */
    public ByteBuffer raw(String name) {
        TensorInfo info = info(name);
        long length = info.end() - info.begin();
        if (length > Integer.MAX_VALUE) {
            throw new SafetensorsException(
                    path, "tensor '" + name + "' is larger than 2 GiB; read it in slices");
        }
        ByteBuffer buffer = ByteBuffer.allocate((int) length).order(ByteOrder.LITTLE_ENDIAN);
        try {
            readFully(channel, buffer, dataStart + info.begin());
        } catch (IOException e) {
            throw new SafetensorsException(
                    path, "cannot read tensor '" + name + "': " + e.getMessage(), e);
        }
        return buffer.flip().order(ByteOrder.LITTLE_ENDIAN);
    }

    /**
     * A floating-point tensor as float32 values, after checking it has the shape a model expects; a
     * mismatch names the file, the tensor and both shapes.
     */
    public float[] floats(String name, long[] expectedShape) {
        long[] shape = info(name).shape();
        if (!java.util.Arrays.equals(shape, expectedShape)) {
            throw new SafetensorsException(
                    path,
                    "tensor '"
                            + name
                            + "' has shape "
                            + java.util.Arrays.toString(shape)
                            + " but the model expects "
                            + java.util.Arrays.toString(expectedShape));
        }
        return floats(name);
    }

    /** A floating-point tensor as float32 values (F16 and BF16 widened exactly, F64 narrowed). */
    public float[] floats(String name) {
        TensorInfo info = info(name);
        ByteBuffer b = raw(name);
        float[] out = new float[Math.toIntExact(info.elements())];
        switch (info.dtype()) {
            case F32 -> b.asFloatBuffer().get(out);
            case F64 -> {
                for (int i = 0; i < out.length; i++) {
                    out[i] = (float) b.getDouble();
                }
            }
            case F16 -> {
                for (int i = 0; i < out.length; i++) {
                    out[i] = halfToFloat(b.getShort());
                }
            }
            case BF16 -> {
                // bfloat16 is the upper 16 bits of an IEEE float32.
                for (int i = 0; i < out.length; i++) {
                    out[i] = Float.intBitsToFloat((b.getShort() & 0xFFFF) << 16);
                }
            }
            default ->
                    throw new SafetensorsException(
                            path,
                            "tensor '" + name + "' is " + info.dtype() + ", not floating point");
        }
        return out;
    }

    /** A U8 tensor's bytes (bitsandbytes' packed 4-bit weights, its JSON quant state). */
    public byte[] bytes(String name) {
        TensorInfo info = info(name);
        if (info.dtype() != Dtype.U8) {
            throw new SafetensorsException(
                    path, "tensor '" + name + "' is " + info.dtype() + ", not U8");
        }
        ByteBuffer b = raw(name);
        byte[] out = new byte[b.remaining()];
        b.get(out);
        return out;
    }

    /** An integer tensor as longs. */
    public long[] longs(String name) {
        TensorInfo info = info(name);
        ByteBuffer b = raw(name);
        long[] out = new long[Math.toIntExact(info.elements())];
        for (int i = 0; i < out.length; i++) {
            out[i] =
                    switch (info.dtype()) {
                        case I64 -> b.getLong();
                        case I32 -> b.getInt();
                        case I16 -> b.getShort();
                        case I8 -> b.get();
                        case U8, BOOL -> b.get() & 0xFF;
                        default ->
                                throw new SafetensorsException(
                                        path,
                                        "tensor '"
                                                + name
                                                + "' is "
                                                + info.dtype()
                                                + ", not an integer type");
                    };
        }
        return out;
    }

    @Override
    public void close() {
        closeQuietly(channel);
    }

    /**
     * IEEE 754 binary16 to binary32 (1 sign, 5 exponent bits biased by 15, 10 fraction bits);
     * exact, subnormals, infinities and NaN included. Java 17 has no built-in for it.
     */
    static float halfToFloat(short half) {
        int h = half & 0xFFFF;
        int sign = (h & 0x8000) << 16;
        int exponent = (h >>> 10) & 0x1F;
        int fraction = h & 0x3FF;
        if (exponent == 0x1F) {
            return Float.intBitsToFloat(sign | 0x7F800000 | (fraction << 13));
        }
        if (exponent == 0) {
            // Subnormal (or zero): fraction * 2^-24.
            float value = fraction * 0x1p-24f;
            return sign == 0 ? value : -value;
        }
        return Float.intBitsToFloat(sign | ((exponent - 15 + 127) << 23) | (fraction << 13));
    }

    private static String decodeUtf8(Path path, ByteBuffer bytes) {
        try {
            return StandardCharsets.UTF_8
                    .newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(bytes)
                    .toString();
        } catch (CharacterCodingException e) {
            throw new SafetensorsException(path, "header is not valid UTF-8", e);
        }
    }

    private static void readFully(FileChannel channel, ByteBuffer buffer, long position)
            throws IOException {
        long at = position;
        while (buffer.hasRemaining()) {
            int n = channel.read(buffer, at);
            if (n < 0) {
                throw new IOException("unexpected end of file at byte " + at);
            }
            at += n;
        }
    }

    private static void closeQuietly(FileChannel channel) {
        try {
            channel.close();
        } catch (IOException ignored) {
            // nothing left to release
        }
    }
}
