package io.tuneline.engine.quant;

import java.util.Collection;
import java.util.List;
import java.util.function.Function;

/**
 * How a checkpoint loader quantizes linear weights to NF4 as it reads them (QLoRA's streaming
 * load): which modules, in blocks of how many values, with or without double quantization. Each
 * selected weight goes from the file's tensor to NF4 before the model allocates anything for it, so
 * at most one linear weight is ever in full precision, as transformers' {@code load_in_4bit}
 * quantizes each {@code nn.Linear} while the checkpoint is read.
 *
 * @param modules picks the modules to quantize from the model's linear layers by Hugging Face path
 *     (QLoRA's {@code TargetMatcher.select}; by default every one)
 */
public record Nf4Loading(
        Function<Collection<String>, List<String>> modules, int blocksize, boolean doubleQuant) {
    public Nf4Loading {
        Nf4.checkBlocksize(blocksize);
    }
}
