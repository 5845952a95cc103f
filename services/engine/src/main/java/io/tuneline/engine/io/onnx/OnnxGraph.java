package io.tuneline.engine.io.onnx;

import com.google.protobuf.ByteString;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.WireFormat;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The parts of an ONNX model a weight import needs: initializers (the weights) and the nodes that
 * consume them. Read from the protobuf wire format directly, with field numbers from onnx.proto
 * (ModelProto.graph = 7; GraphProto.node = 1, initializer = 5; NodeProto.input = 1, output = 2,
 * name = 3, op_type = 4; TensorProto.dims = 1, data_type = 2, float_data = 4, name = 8, raw_data =
 * 9), so no generated ONNX classes are needed.
 */
public final class OnnxGraph {
    /** TensorProto.DataType.FLOAT. */
    public static final int FLOAT = 1;

    /** A weight stored in the graph. */
    public record Initializer(
            String name, long[] dims, int dataType, ByteString raw, float[] floatData) {
        /** Values as float32 (raw_data is little-endian by the ONNX spec). */
        public float[] floats() {
            if (dataType != FLOAT) {
                throw new IllegalStateException(
                        "initializer " + name + " has data type " + dataType + ", not FLOAT");
            }
            if (floatData.length > 0) {
                return floatData.clone();
            }
            FloatBuffer fb =
                    raw.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
            float[] out = new float[fb.remaining()];
            fb.get(out);
            return out;
        }

        /**
         * raw_data as little-endian bytes, without copying; empty when the values are in {@code
         * float_data}.
         */
        public ByteBuffer rawBytes() {
            return raw.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        }
    }

    /** An operation of the graph. */
    public record Node(String name, String opType, List<String> inputs, List<String> outputs) {}

    private final Map<String, Initializer> initializers;
    private final List<Node> nodes;

    private OnnxGraph(Map<String, Initializer> initializers, List<Node> nodes) {
        this.initializers = Collections.unmodifiableMap(initializers);
        this.nodes = List.copyOf(nodes);
    }

    /** Parses a model held in memory; initializers alias {@code model}'s bytes. */
    public static OnnxGraph parse(byte[] model) throws IOException {
        CodedInputStream in = CodedInputStream.newInstance(model);
        in.enableAliasing(true);
        return parse(in);
    }

    /**
     * Parses a model as it streams in: each initializer's bytes are copied out once, and the file
     * is never held whole (a whole read of an unknown length, {@code readAllBytes}, holds it twice
     * while it grows: 180 MB of heap for MiniLM's 90 MB file).
     */
    public static OnnxGraph parse(InputStream model) throws IOException {
        return parse(CodedInputStream.newInstance(model));
    }

    private static OnnxGraph parse(CodedInputStream in) throws IOException {
        in.setSizeLimit(Integer.MAX_VALUE);
        Map<String, Initializer> initializers = new LinkedHashMap<>();
        List<Node> nodes = new ArrayList<>();
        while (true) {
            int tag = in.readTag();
            if (tag == 0) {
                break;
            }
            if (WireFormat.getTagFieldNumber(tag) == 7) {
                int limit = in.pushLimit(in.readRawVarint32());
                readGraph(in, initializers, nodes);
                in.popLimit(limit);
            } else {
                in.skipField(tag);
            }
        }
        if (initializers.isEmpty()) {
            throw new IOException("no initializers found: not an ONNX model with weights");
        }
        return new OnnxGraph(initializers, nodes);
    }

    private static void readGraph(
            CodedInputStream in, Map<String, Initializer> initializers, List<Node> nodes)
            throws IOException {
        while (!in.isAtEnd()) {
            int tag = in.readTag();
            int field = WireFormat.getTagFieldNumber(tag);
            if (field == 1) {
                int limit = in.pushLimit(in.readRawVarint32());
                nodes.add(readNode(in));
                in.popLimit(limit);
            } else if (field == 5) {
                int limit = in.pushLimit(in.readRawVarint32());
                Initializer t = readTensor(in);
                initializers.put(t.name(), t);
                in.popLimit(limit);
            } else {
                in.skipField(tag);
            }
        }
    }

    private static Node readNode(CodedInputStream in) throws IOException {
        String name = "";
        String op = "";
        List<String> inputs = new ArrayList<>();
        List<String> outputs = new ArrayList<>();
        while (!in.isAtEnd()) {
            int tag = in.readTag();
            switch (WireFormat.getTagFieldNumber(tag)) {
                case 1 -> inputs.add(in.readStringRequireUtf8());
                case 2 -> outputs.add(in.readStringRequireUtf8());
                case 3 -> name = in.readStringRequireUtf8();
                case 4 -> op = in.readStringRequireUtf8();
                default -> in.skipField(tag);
            }
        }
        return new Node(name, op, inputs, outputs);
    }

    private static Initializer readTensor(CodedInputStream in) throws IOException {
        String name = "";
        List<Long> dims = new ArrayList<>();
        int dataType = 0;
        ByteString raw = ByteString.EMPTY;
        List<Float> floats = new ArrayList<>();
        while (!in.isAtEnd()) {
            int tag = in.readTag();
            int field = WireFormat.getTagFieldNumber(tag);
            boolean packed = WireFormat.getTagWireType(tag) == WireFormat.WIRETYPE_LENGTH_DELIMITED;
            switch (field) {
                case 1 -> {
                    if (packed) {
                        int limit = in.pushLimit(in.readRawVarint32());
                        while (!in.isAtEnd()) {
                            dims.add(in.readInt64());
                        }
                        in.popLimit(limit);
                    } else {
                        dims.add(in.readInt64());
                    }
                }
                case 2 -> dataType = in.readInt32();
                case 4 -> {
                    if (packed) {
                        int limit = in.pushLimit(in.readRawVarint32());
                        while (!in.isAtEnd()) {
                            floats.add(in.readFloat());
                        }
                        in.popLimit(limit);
                    } else {
                        floats.add(in.readFloat());
                    }
                }
                case 8 -> name = in.readStringRequireUtf8();
                case 9 -> raw = in.readBytes();
                default -> in.skipField(tag);
            }
        }
        float[] floatData = new float[floats.size()];
        for (int i = 0; i < floatData.length; i++) {
            floatData[i] = floats.get(i);
        }
        return new Initializer(
                name, dims.stream().mapToLong(Long::longValue).toArray(), dataType, raw, floatData);
    }

    public Map<String, Initializer> initializers() {
        return initializers;
    }

    public List<Node> nodes() {
        return nodes;
    }
}
