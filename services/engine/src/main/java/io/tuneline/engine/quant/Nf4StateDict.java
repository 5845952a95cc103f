package io.tuneline.engine.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.io.safetensors.SafetensorsException;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * bitsandbytes' 4-bit state-dict layout in safetensors, what {@code Linear4bit} saves and
 * transformers loads back ({@code bitsandbytes/nn/modules.py Linear4bit._save_to_state_dict},
 * {@code functional.py QuantState.as_dict(packed=True)} and {@code QuantState.from_dict}). For a
 * weight {@code X.weight}:
 *
 * <ul>
 *   <li>{@code X.weight}: U8 of shape [ceil(n/2), 1], the packed codes ({@code backends/cuda/ops.py
 *       quantize_4bit}: {@code torch.empty(((n + 1) // 2, 1))});
 *   <li>{@code X.weight.absmax}: F32 per block, or U8 codes when double-quantized;
 *   <li>{@code X.weight.quant_map}: F32[16], the NF4 table;
 *   <li>{@code X.weight.nested_absmax}, {@code X.weight.nested_quant_map} (F32, F32[256]): only
 *       when double-quantized;
 *   <li>{@code X.weight.quant_state.bitsandbytes__nf4}: U8 holding UTF-8 JSON ({@code utils.py
 *       pack_dict_to_tensor}, {@code json.dumps}) of {@code quant_type, blocksize, dtype, shape}
 *       and, double-quantized, {@code nested_blocksize, nested_dtype, nested_offset}.
 * </ul>
 */
public final class Nf4StateDict {
    /** {@code QuantState.as_dict}: {@code "quant_state.bitsandbytes__" + quant_type}. */
    public static final String QUANT_STATE_SUFFIX = ".quant_state.bitsandbytes__nf4";

    private static final String FP4_SUFFIX = ".quant_state.bitsandbytes__fp4";
    private static final ObjectMapper JSON = new ObjectMapper();

    private Nf4StateDict() {}

    /** Adds one weight's tensors, under bitsandbytes' names, to a writer. */
    public static SafetensorsWriter add(SafetensorsWriter writer, String weightName, Nf4Weight w) {
        writer.addU8(weightName, new long[] {w.packed().length, 1}, w.packed());
        writer.addF32(weightName + ".quant_map", new long[] {16}, Nf4.codeValues());
        if (w.absmax() instanceof Nf4Absmax.DoubleQuantized d) {
            writer.addU8(weightName + ".absmax", new long[] {d.codes().length}, d.codes());
            writer.addF32(
                    weightName + ".nested_absmax",
                    new long[] {d.nestedAbsmax().length},
                    d.nestedAbsmax());
            writer.addF32(weightName + ".nested_quant_map", new long[] {256}, d.nestedMap());
        } else if (w.absmax() instanceof Nf4Absmax.Plain p) {
            writer.addF32(weightName + ".absmax", new long[] {p.absmax().length}, p.absmax());
        }
        byte[] json = quantStateJson(w).getBytes(StandardCharsets.UTF_8);
        writer.addU8(weightName + QUANT_STATE_SUFFIX, new long[] {json.length}, json);
        return writer;
    }

    /** Writes weights (by their full names, e.g. {@code model.layers.0.mlp.up_proj.weight}). */
    public static void write(Map<String, Nf4Weight> weights, Path target) throws IOException {
        SafetensorsWriter writer = new SafetensorsWriter().metadata("format", "pt");
        weights.forEach((name, w) -> add(writer, name, w));
        writer.write(target);
    }

    /**
     * The JSON bitsandbytes packs into {@code quant_state.bitsandbytes__nf4}, in {@code as_dict}'s
     * key order and {@code json.dumps}' default separators (", " and ": "). {@code dtype} is {@code
     * str(torch.dtype).strip("torch.")}; the offset is the float32 value as a double ({@code
     * offset.item()}).
     */
    static String quantStateJson(Nf4Weight w) {
        StringBuilder s = new StringBuilder("{\"quant_type\": \"nf4\", \"blocksize\": ");
        s.append(w.blocksize()).append(", \"dtype\": \"").append(torchName(w.dtype()));
        s.append("\", \"shape\": [");
        long[] shape = w.shape();
        for (int i = 0; i < shape.length; i++) {
            s.append(i == 0 ? "" : ", ").append(shape[i]);
        }
        s.append(']');
        if (w.absmax() instanceof Nf4Absmax.DoubleQuantized d) {
            s.append(", \"nested_blocksize\": ").append(d.nestedBlocksize());
            s.append(", \"nested_dtype\": \"float32\", \"nested_offset\": ");
            s.append(Double.toString(d.offset()));
        }
        return s.append('}').toString();
    }

    /** Names of the NF4-quantized weights in a file (those with a packed quant state). */
    public static List<String> quantizedWeights(SafetensorsFile file) {
        List<String> out = new ArrayList<>();
        for (String name : file.names()) {
            if (name.endsWith(QUANT_STATE_SUFFIX)) {
                out.add(name.substring(0, name.length() - QUANT_STATE_SUFFIX.length()));
            } else if (name.endsWith(FP4_SUFFIX)) {
                throw new SafetensorsException(
                        file.path(),
                        "'"
                                + name
                                + "' is a bitsandbytes FP4 weight; only NF4 (QLoRA's"
                                + " bnb_4bit_quant_type=\"nf4\") is read");
            }
        }
        return out;
    }

    /** Every NF4 weight in a file, by name, in header order. */
    public static Map<String, Nf4Weight> readAll(SafetensorsFile file) {
        Map<String, Nf4Weight> out = new LinkedHashMap<>();
        for (String name : quantizedWeights(file)) {
            out.put(name, read(file, name));
        }
        return Collections.unmodifiableMap(out);
    }

    /**
     * One NF4 weight ({@code X.weight}) and its quant state, checked as {@code from_dict} would.
     */
    public static Nf4Weight read(SafetensorsFile file, String weightName) {
        JsonNode state;
        try {
            state =
                    JSON.readTree(
                            new String(
                                    file.bytes(weightName + QUANT_STATE_SUFFIX),
                                    StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new SafetensorsException(
                    file.path(),
                    "'" + weightName + QUANT_STATE_SUFFIX + "' is not JSON: " + e.getMessage(),
                    e);
        }
        String quantType = state.path("quant_type").asText();
        if (!quantType.equals("nf4")) {
            throw problem(file, weightName, "has quant_type '" + quantType + "', not 'nf4'");
        }
        int blocksize = state.path("blocksize").asInt(-1);
        try {
            Nf4.checkBlocksize(blocksize);
        } catch (IllegalArgumentException e) {
            throw problem(file, weightName, e.getMessage());
        }
        Dtype dtype = dtypeOf(file, weightName, state.path("dtype").asText());
        JsonNode shapeNode = state.path("shape");
        if (!shapeNode.isArray() || shapeNode.isEmpty()) {
            throw problem(file, weightName, "has no shape in its quant state");
        }
        long[] shape = new long[shapeNode.size()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = shapeNode.get(i).asLong(-1);
        }

        byte[] packed = file.bytes(weightName);
        long[] packedShape = file.info(weightName).shape();
        float[] quantMap = file.floats(weightName + ".quant_map");
        if (!Arrays.equals(quantMap, Nf4.CODE)) {
            // bitsandbytes' dequantize_4bit ignores the stored map and uses the NF4 table; a
            // different map means a file this reader does not understand, so it says so.
            throw problem(
                    file,
                    weightName,
                    "has a quant_map that is not bitsandbytes' NF4 table: "
                            + Arrays.toString(quantMap));
        }

        Nf4Absmax absmax;
        String absmaxName = weightName + ".absmax";
        if (state.has("nested_offset")) {
            if (!state.path("nested_dtype").asText().equals("float32")) {
                throw problem(
                        file,
                        weightName,
                        "has nested_dtype '"
                                + state.path("nested_dtype").asText()
                                + "' (bitsandbytes writes float32)");
            }
            int nestedBlocksize = state.path("nested_blocksize").asInt(-1);
            if (nestedBlocksize <= 0) {
                throw problem(file, weightName, "has no positive nested_blocksize");
            }
            try {
                absmax =
                        new Nf4Absmax.DoubleQuantized(
                                file.bytes(absmaxName),
                                file.floats(weightName + ".nested_absmax"),
                                (float) state.path("nested_offset").asDouble(),
                                nestedBlocksize,
                                file.floats(weightName + ".nested_quant_map"));
            } catch (IllegalArgumentException e) {
                if (e instanceof SafetensorsException) {
                    throw e;
                }
                throw problem(file, weightName, e.getMessage());
            }
        } else {
            absmax = new Nf4Absmax.Plain(file.floats(absmaxName));
        }
        try {
            Nf4Weight w = new Nf4Weight(packed, absmax, shape, blocksize, dtype);
            if (packedShape.length != 2 || (packedShape[1] != 1 && packedShape[0] != 1)) {
                throw new IllegalArgumentException(
                        "packed codes have shape "
                                + Arrays.toString(packedShape)
                                + "; bitsandbytes stores [ceil(n/2), 1]");
            }
            return w;
        } catch (SafetensorsException e) {
            throw e;
        } catch (IllegalArgumentException e) {
            throw problem(file, weightName, e.getMessage());
        }
    }

    private static SafetensorsException problem(
            SafetensorsFile file, String weightName, String what) {
        return new SafetensorsException(file.path(), "NF4 weight '" + weightName + "' " + what);
    }

    /** {@code str(torch.float32).strip("torch.")} and friends. */
    static String torchName(Dtype dtype) {
        return switch (dtype) {
            case F32 -> "float32";
            case F16 -> "float16";
            case BF16 -> "bfloat16";
            default -> throw new IllegalArgumentException(dtype + " is not an NF4 source dtype");
        };
    }

    private static Dtype dtypeOf(SafetensorsFile file, String weightName, String torchName) {
        return switch (torchName) {
            case "float32" -> Dtype.F32;
            case "float16" -> Dtype.F16;
            case "bfloat16" -> Dtype.BF16;
            default ->
                    throw problem(
                            file,
                            weightName,
                            "has dtype '"
                                    + torchName
                                    + "'; bitsandbytes quantizes float32, float16 and bfloat16");
        };
    }
}
