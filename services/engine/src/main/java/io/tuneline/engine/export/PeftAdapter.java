package io.tuneline.engine.export;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.io.safetensors.SafetensorsFile;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.method.TargetMatcher;
import io.tuneline.engine.model.CausalLanguageModel;
import io.tuneline.engine.model.ClassifierHead;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.nn.NativeCopy;
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

    /** PEFT's adapter configuration file. */
    public static final String CONFIG = "adapter_config.json";

    /** PEFT's adapter weights file. */
    public static final String WEIGHTS = "adapter_model.safetensors";

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

    /** Whether {@code dir} holds a PEFT LoRA adapter ({@code peft_type} {@code LORA}). */
    public static boolean isLora(Path dir) throws IOException {
        Path config = dir.resolve(CONFIG);
        return Files.isRegularFile(config)
                && Files.isRegularFile(dir.resolve(WEIGHTS))
                && "LORA".equals(JSON.readTree(config.toFile()).path("peft_type").asText());
    }

    /**
     * Rebuilds the LoRA adapter {@link #write} wrote into {@code dir} on {@code lm}, whose base
     * weights are in place: the method from {@code adapter_config.json}, the matrices from {@code
     * adapter_model.safetensors}. The model is then the tuned model, with the adapter beside the
     * base weights rather than merged into them (serving shares one base between versions).
     */
    public static FineTuningMethod.Lora restore(CausalLanguageModel lm, Path dir, NDManager manager)
            throws IOException {
        return restore(lm, dir, manager, name -> name);
    }

    /** As {@link #restore(CausalLanguageModel, Path, NDManager)}, the head included. */
    public static FineTuningMethod.Lora restore(
            SequenceClassifier classifier, Path dir, NDManager manager) throws IOException {
        return restore(
                classifier, dir, manager, name -> ClassifierWeights.storedName(classifier, name));
    }

    private static FineTuningMethod.Lora restore(
            TunableModel model, Path dir, NDManager manager, UnaryOperator<String> storedName)
            throws IOException {
        Path configFile = dir.resolve(CONFIG);
        JsonNode config = JSON.readTree(configFile.toFile());
        if (!"LORA".equals(config.path("peft_type").asText())) {
            throw new IllegalArgumentException(
                    configFile
                            + " is not a LoRA adapter (peft_type "
                            + config.path("peft_type")
                            + ")");
        }
        // Settings the engine's LoRA does not have change the computation: refuse them.
        if (config.path("use_rslora").asBoolean(false)
                || config.path("use_dora").asBoolean(false)
                || !"none".equals(config.path("bias").asText("none"))) {
            throw new IllegalArgumentException(
                    configFile
                            + ": rsLoRA, DoRA and trained biases are not what the engine trains");
        }
        JsonNode targets = config.path("target_modules");
        TargetMatcher matcher;
        if (targets.isTextual()) {
            matcher = TargetMatcher.fullMatch(targets.asText());
        } else {
            List<String> names = new java.util.ArrayList<>();
            targets.forEach(t -> names.add(t.asText()));
            matcher = TargetMatcher.anyOf(names);
        }
        FineTuningMethod.Lora lora =
                new FineTuningMethod.Lora(
                        config.path("r").asInt(),
                        (float) config.path("lora_alpha").asDouble(),
                        (float) config.path("lora_dropout").asDouble(0),
                        matcher);
        lora.apply(model, manager);
        Path weights = dir.resolve(WEIGHTS);
        try (SafetensorsFile f = SafetensorsFile.open(weights)) {
            for (Map.Entry<String, Parameter> e : MethodState.stateParameters(model).entrySet()) {
                String stored = PREFIX + storedName.apply(e.getKey());
                NDArray target = e.getValue().getArray();
                long[] want = target.getShape().getShape();
                if (!f.names().contains(stored)) {
                    throw new IllegalArgumentException(
                            weights
                                    + " has no tensor "
                                    + stored
                                    + ": it was written for another model");
                }
                if (!java.util.Arrays.equals(want, f.info(stored).shape())) {
                    throw new IllegalArgumentException(
                            weights
                                    + ": "
                                    + stored
                                    + " has shape "
                                    + java.util.Arrays.toString(f.info(stored).shape())
                                    + ", the model's is "
                                    + java.util.Arrays.toString(want));
                }
                NativeCopy.copyInto(target, f.floats(stored));
            }
        }
        return lora;
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
        writer.write(dir.resolve(WEIGHTS));
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
                dir.resolve(CONFIG),
                JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(config));
        return true;
    }
}
