package io.tuneline.engine.export;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Parameter;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.TargetMatcher;
import io.tuneline.engine.model.CausalLanguageModel;
import io.tuneline.engine.model.ClassifierHead;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.TunableModel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;

/**
 * A LoRA adapter in the layout of Hugging Face PEFT's {@code save_pretrained}: {@code
 * adapter_config.json} and {@code adapter_model.safetensors} with PEFT's tensor names ({@code
 * base_model.model.<module>.lora_A.weight} of shape (r, in), {@code lora_B.weight} (out, r)), so
 * {@code PeftModel.from_pretrained(AutoModel.from_pretrained(base), dir)} finds every matrix where
 * it expects it. The classification head, trained in full beside the adapter, is saved as PEFT
 * saves {@code modules_to_save} ({@code base_model.model.classifier.weight}); with the mean head it
 * sits on mean-pooled token states, as with sentence-transformers, with the Hugging Face head on
 * BERT's pooler ({@code SEQ_CLS}).
 */
public final class PeftAdapter {
    private static final ObjectMapper JSON = new ObjectMapper();
    static final String PREFIX = "base_model.model.";

    private PeftAdapter() {}

    /**
     * The LoRA matrices of a causal LM as PEFT saves a {@code CAUSAL_LM} adapter, under the
     * family's Hugging Face module paths: GPT-2 {@code
     * base_model.model.transformer.h.N.attn.c_attn.lora_A.weight} ({@code fan_in_fan_out} true, as
     * PEFT sets it for GPT-2's Conv1D), Llama family {@code
     * base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight} ({@code fan_in_fan_out}
     * false, {@code nn.Linear}); A (r, in), B (out, r). Returns false (and writes nothing) when the
     * model has no LoRA matrices.
     */
    public static boolean write(
            CausalLanguageModel lm, FineTuningMethod.Lora lora, String baseModel, Path dir)
            throws IOException {
        return write(lm, "CAUSAL_LM", lm.peftFanInFanOut(), lora, baseModel, dir, name -> name);
    }

    /**
     * A classifier's LoRA matrices and its head; returns false (and writes nothing) when the model
     * has no LoRA matrices. With the mean head it is a {@code FEATURE_EXTRACTION} adapter on the
     * encoder's {@code BertModel} names; with the Hugging Face head ({@link
     * ClassifierHead#CLS_POOLER}) a {@code SEQ_CLS} adapter for {@code
     * AutoModelForSequenceClassification}: {@code base_model.model.bert.encoder.layer.N...} (or
     * {@code roberta.}), the head under {@code base_model.model.classifier.*}.
     *
     * @param baseModel the base model as Hugging Face names it, e.g. {@code
     *     sentence-transformers/all-MiniLM-L6-v2}
     */
    public static boolean write(
            SequenceClassifier classifier, FineTuningMethod.Lora lora, String baseModel, Path dir)
            throws IOException {
        boolean hf = classifier.headType() == ClassifierHead.CLS_POOLER;
        return write(
                classifier,
                hf ? "SEQ_CLS" : "FEATURE_EXTRACTION",
                false,
                lora,
                baseModel,
                dir,
                name -> ClassifierWeights.storedName(classifier, name));
    }

    /**
     * The adapters attached to {@code model}'s linear layers, and its task head as PEFT saves
     * {@code modules_to_save}.
     */
    private static boolean write(
            TunableModel model,
            String taskType,
            boolean fanInFanOut,
            FineTuningMethod.Lora lora,
            String baseModel,
            Path dir,
            UnaryOperator<String> storedName)
            throws IOException {
        SafetensorsWriter writer = new SafetensorsWriter().metadata("format", "pt");
        Map<String, Parameter> adapters = model.deltaParameters();
        List<String> head = model.headModules();
        for (Map.Entry<String, Parameter> e : model.namedParameters().entrySet()) {
            String name = e.getKey();
            if (adapters.containsKey(name)
                    || head.stream().anyMatch(m -> name.startsWith(m + "."))) {
                NDArray a = e.getValue().getArray();
                writer.addF32(
                        PREFIX + storedName.apply(name), a.getShape().getShape(), a.toFloatArray());
            }
        }
        boolean any = !adapters.isEmpty();
        if (!any) {
            return false;
        }
        Files.createDirectories(dir);
        writer.write(dir.resolve("adapter_model.safetensors"));
        ObjectNode config = JSON.createObjectNode();
        config.put("peft_type", "LORA");
        config.put("task_type", taskType);
        config.put("base_model_name_or_path", baseModel);
        config.put("r", lora.rank());
        config.put("lora_alpha", lora.alpha());
        config.put("lora_dropout", lora.dropout());
        // As PEFT writes what it was given: a list of names, or one regular expression. Both
        // select under PEFT's rule exactly the modules that were trained (TargetMatcher).
        if (lora.targets() instanceof TargetMatcher.FullMatch regex) {
            config.put("target_modules", regex.regex());
        } else {
            config.putPOJO("target_modules", ((TargetMatcher.AnyOf) lora.targets()).names());
        }
        config.put("bias", "none");
        config.put("fan_in_fan_out", fanInFanOut);
        config.put("inference_mode", true);
        config.put("init_lora_weights", true);
        config.put("use_rslora", false);
        if (!head.isEmpty()) {
            head.forEach(config.putArray("modules_to_save")::add);
        } else {
            config.putNull("modules_to_save");
        }
        config.putNull("revision");
        Files.write(
                dir.resolve("adapter_config.json"),
                JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(config));
        return true;
    }
}
