package io.tuneline.engine.export;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.PrefixEncoder;
import io.tuneline.engine.model.CausalLanguageModel;
import io.tuneline.engine.model.KvPrefix;
import io.tuneline.engine.model.TunableModel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * A prefix-tuned model's adapter in PEFT's layout, so {@code PeftModel.from_pretrained(base, dir)}
 * loads it: {@code adapter_config.json} ({@code peft_type} PREFIX_TUNING, {@code
 * PrefixTuningConfig}'s fields as {@code save_pretrained} writes them, {@code inference_mode} true)
 * and {@code adapter_model.safetensors} with PEFT's one prompt-learning tensor, {@code
 * prompt_embeddings} of shape (N, num_layers * 2 * token_dim): the prefix encoder's output, the
 * projection already applied ({@code get_prompt_embedding_to_save}; a PEFT model in inference mode
 * holds exactly that as its embedding and skips the projection). For sequence classification the
 * trained head is saved as PEFT saves {@code modules_to_save} of a prompt-learning model ({@code
 * base_model.classifier.weight}, {@code .bias}: the {@code PeftModel} holds the transformers model
 * directly as {@code base_model}).
 *
 * <p>Under grouped-query attention {@code token_dim} is {@code head_dim * num_key_value_heads} and
 * {@code num_attention_heads} the key/value heads, as PEFT's {@code
 * _prepare_prompt_learning_config} sets them. The projection's weights are not exported (PEFT drops
 * them too); {@link io.tuneline.engine.method.MethodState} keeps them for resuming.
 */
public final class PeftPrefixTuning {
    public static final String CONFIG = "adapter_config.json";
    public static final String WEIGHTS = "adapter_model.safetensors";
    public static final String PROMPT_EMBEDDINGS = "prompt_embeddings";

    /** A prompt-learning {@code PeftModel}'s {@code base_model} is the transformers model. */
    static final String PREFIX = "base_model.";

    private static final ObjectMapper JSON = new ObjectMapper();

    private PeftPrefixTuning() {}

    /**
     * PEFT's {@code task_type}: {@code CAUSAL_LM} for a language model, {@code SEQ_CLS} for a
     * classifier.
     */
    public static String taskType(TunableModel model) {
        return model instanceof CausalLanguageModel ? "CAUSAL_LM" : "SEQ_CLS";
    }

    /**
     * Writes the adapter of {@code model}, tuned with {@code method}, into {@code dir}.
     *
     * @param baseModel what {@code base_model_name_or_path} names (the job's base model)
     * @throws IllegalArgumentException when the model has no prefix attached
     */
    public static void write(
            TunableModel model, FineTuningMethod.Prefix method, String baseModel, Path dir)
            throws IOException {
        if (!(model.kvPrefix().orElse(null) instanceof PrefixEncoder encoder)) {
            throw new IllegalArgumentException(
                    "the model has no prefix attached; apply FineTuningMethod.Prefix first");
        }
        KvPrefix.Sizes sizes = encoder.sizes();
        String task = taskType(model);
        Files.createDirectories(dir);
        SafetensorsWriter writer = new SafetensorsWriter().metadata("format", "pt");
        Parameter embedding = encoder.namedParameters().get(PrefixEncoder.EMBEDDING);
        try (NDManager m = embedding.getArray().getManager().newSubManager()) {
            NDArray prefix =
                    encoder.prefix(
                            new ParameterStore(m, false), embedding.getArray().getDevice(), false);
            writer.addF32(PROMPT_EMBEDDINGS, prefix.getShape().getShape(), prefix.toFloatArray());
        }
        for (Map.Entry<String, Parameter> e : model.namedParameters().entrySet()) {
            for (String head : model.headModules()) {
                if (e.getKey().startsWith(head + ".")) {
                    NDArray a = e.getValue().getArray();
                    writer.addF32(PREFIX + e.getKey(), a.getShape().getShape(), a.toFloatArray());
                }
            }
        }
        writer.write(dir.resolve(WEIGHTS));

        ObjectNode config = JSON.createObjectNode();
        config.putNull("auto_mapping");
        config.put("base_model_name_or_path", baseModel);
        config.put(
                "encoder_hidden_size",
                // PEFT fills an unset encoder_hidden_size with token_dim.
                method.projectionHiddenSize() > 0
                        ? method.projectionHiddenSize()
                        : sizes.tokenDim());
        config.put("inference_mode", true);
        if (task.equals("SEQ_CLS")) {
            model.headModules().forEach(config.putArray("modules_to_save")::add);
        } else {
            config.putNull("modules_to_save");
        }
        config.put("num_attention_heads", sizes.kvHeads());
        config.put("num_layers", sizes.layers());
        config.put("num_transformer_submodules", 1);
        config.put("num_virtual_tokens", method.virtualTokens());
        config.put("peft_type", "PREFIX_TUNING");
        config.put("prefix_projection", method.projectionHiddenSize() > 0);
        config.putNull("revision");
        config.put("task_type", task);
        config.put("token_dim", sizes.tokenDim());
        Files.write(
                dir.resolve(CONFIG),
                JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(config));
    }
}
