package io.tuneline.engine.quant;

import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.io.safetensors.SafetensorsException;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.io.safetensors.TensorInfo;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Predicate;

/**
 * Quantizes a checkpoint's weights to NF4 one tensor at a time, straight from the safetensors file:
 * only the tensor being quantized is ever held in full precision (its float32 values and the raw
 * bytes they were read from), so a model larger than memory in fp32 can still be loaded as a 4-bit
 * base, as bitsandbytes does when transformers loads with {@code load_in_4bit}.
 */
public final class Nf4Checkpoint {
    private Nf4Checkpoint() {}

    /**
     * @param which selects tensors by their Hugging Face name (e.g. the projections of every
     *     decoder layer; QLoRA leaves embeddings, norms and {@code lm_head} in full precision)
     * @return the quantized tensors by name, in the file's header order
     */
    public static Map<String, Nf4Weight> quantize(
            SafetensorsFile file, Predicate<String> which, int blocksize, boolean doubleQuant) {
        Nf4.checkBlocksize(blocksize);
        Map<String, Nf4Weight> out = new LinkedHashMap<>();
        for (String name : file.names()) {
            if (!which.test(name)) {
                continue;
            }
            TensorInfo info = file.info(name);
            if (!info.dtype().floating() || info.dtype() == Dtype.F64) {
                throw new SafetensorsException(
                        file.path(),
                        "tensor '"
                                + name
                                + "' is "
                                + info.dtype()
                                + "; only F32, F16 and BF16 tensors are quantized to NF4");
            }
            if (info.elements() == 0) {
                throw new SafetensorsException(
                        file.path(),
                        "tensor '" + name + "' is empty; there is nothing to quantize");
            }
            float[] values = file.floats(name);
            try {
                out.put(
                        name,
                        Nf4.quantize(values, info.shape(), info.dtype(), blocksize, doubleQuant));
            } catch (IllegalArgumentException e) {
                throw new SafetensorsException(
                        file.path(), "tensor '" + name + "': " + e.getMessage(), e);
            }
        }
        return Collections.unmodifiableMap(out);
    }
}
