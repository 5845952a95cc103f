package io.tuneline.engine.export;

import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.model.CausalLanguageModel;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.TunableModel;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * The adapter a method trains, in the layout Python tools load: PEFT's LoRA adapter (also QLoRA's),
 * PEFT's prompt-learning adapter (prompt tuning, P-tuning), PEFT's prefix-tuning adapter, or the
 * {@code adapters} library's bottleneck adapter (PEFT has none). Full fine-tuning and freezing have
 * none: their model is the whole result.
 */
public final class MethodExport {
    private MethodExport() {}

    /**
     * Writes {@code method}'s adapter into {@code dir} and says whether there is one.
     *
     * @param promptInitText the text prompt tuning's virtual tokens started from, if any (PEFT
     *     records it in the config)
     * @param baseModel the base model as Hugging Face names it
     * @param labels the classifier's labels (empty for a causal LM)
     */
    public static boolean write(
            TunableModel model,
            FineTuningMethod method,
            Optional<String> promptInitText,
            String baseModel,
            List<String> labels,
            Path dir)
            throws IOException {
        if (method instanceof FineTuningMethod.Adapter adapter) {
            if (model instanceof SequenceClassifier classifier) {
                AdapterHubAdapter.write(classifier, adapter, baseModel, labels, dir);
            } else {
                AdapterHubAdapter.write((CausalLanguageModel) model, adapter, baseModel, dir);
            }
            return true;
        }
        if (method instanceof FineTuningMethod.Prompt
                || method instanceof FineTuningMethod.PTuning) {
            PeftPromptLearning.write(model, method, baseModel, promptInitText, dir);
            return true;
        }
        if (method instanceof FineTuningMethod.Prefix prefix) {
            PeftPrefixTuning.write(model, prefix, baseModel, dir);
            return true;
        }
        Optional<FineTuningMethod.Lora> lora = loraOf(method);
        if (lora.isEmpty()) {
            return false;
        }
        return model instanceof SequenceClassifier classifier
                ? PeftAdapter.write(classifier, lora.get(), baseModel, dir)
                : PeftAdapter.write((CausalLanguageModel) model, lora.get(), baseModel, dir);
    }

    /**
     * The LoRA adapter a method trains, for the PEFT export: LoRA's own, or the one QLoRA trains on
     * its NF4 base (PEFT saves a QLoRA adapter exactly as a LoRA one; the base's quantization is
     * the loader's business).
     */
    public static Optional<FineTuningMethod.Lora> loraOf(FineTuningMethod method) {
        if (method instanceof FineTuningMethod.Lora lora) {
            return Optional.of(lora);
        }
        if (method instanceof FineTuningMethod.Qlora qlora) {
            return Optional.of(qlora.lora());
        }
        return Optional.empty();
    }
}
