package io.tuneline.engine.export;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.model.ClassifierHead;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.nn.PromptEncoder;
import io.tuneline.engine.nn.VirtualTokens;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A prompt-tuning or P-tuning adapter in the layout of Hugging Face PEFT's {@code save_pretrained},
 * so {@code PeftModel.from_pretrained(base, dir)} runs the tuned model:
 *
 * <ul>
 *   <li>{@code adapter_model.safetensors}: {@code prompt_embeddings} (N, token_dim), the virtual
 *       tokens as the model sees them ({@code get_peft_model_state_dict}: for P-tuning the prompt
 *       encoder's output, {@code get_prompt_embedding_to_save}; the encoder's MLP/LSTM weights are
 *       not saved, and PEFT loads the adapter in inference mode, where the virtual tokens are this
 *       embedding's rows). A classifier's head as PEFT saves {@code modules_to_save} in prompt
 *       learning, where the base model is not wrapped in a tuner: {@code
 *       base_model.classifier.weight}, {@code base_model.classifier.bias}.
 *   <li>{@code adapter_config.json}: {@code peft_type} {@code PROMPT_TUNING} or {@code P_TUNING},
 *       {@code task_type} {@code SEQ_CLS} (classifier) or {@code CAUSAL_LM}, the prompt-learning
 *       fields ({@code num_virtual_tokens, token_dim, num_transformer_submodules} 1, {@code
 *       num_attention_heads, num_layers}, as {@code _prepare_prompt_learning_config} fills them
 *       from the base's config) and the type's own ({@code prompt_tuning_init} RANDOM /
 *       SAMPLE_VOCAB / TEXT with {@code prompt_tuning_init_text} and {@code
 *       tokenizer_name_or_path}; {@code encoder_reparameterization_type}, {@code
 *       encoder_hidden_size}, {@code encoder_num_layers} 2, {@code encoder_dropout}).
 * </ul>
 *
 * <p>A classifier with the Hugging Face head ({@link ClassifierHead#CLS_POOLER}) is what PEFT runs:
 * {@code BertForSequenceClassification} / {@code RobertaForSequenceClassification} on the prompt
 * and the words, reading position 0 (the first virtual token), with BERT's pooler the base model's.
 * The engine trains the same parameters as PEFT's {@code SEQ_CLS} default, so the pooler is neither
 * in {@code modules_to_save} nor in the weights, and the adapter loads with no setting changed.
 * With the mean head ({@link ClassifierHead#MEAN}, the attention-masked mean of the real tokens'
 * last hidden states) a Python user needs that head on top, as for {@link PeftAdapter}'s
 * classifiers. The engine's own "base + method" state, encoder weights included, is {@link
 * io.tuneline.engine.method.MethodState}.
 */
public final class PeftPromptLearning {
    public static final String CONFIG = "adapter_config.json";
    public static final String WEIGHTS = "adapter_model.safetensors";

    /** The one tensor PEFT saves for prompt learning ({@code save_and_load.py}). */
    public static final String PROMPT_EMBEDDINGS = "prompt_embeddings";

    /** PEFT's key prefix for {@code modules_to_save} of a prompt-learning model. */
    static final String HEAD_PREFIX = "base_model.";

    private static final ObjectMapper JSON = new ObjectMapper();

    private PeftPromptLearning() {}

    /**
     * Writes {@code model}'s virtual tokens (attached by {@code method}) into {@code dir}.
     *
     * @param baseModel the base as Hugging Face names it ({@code base_model_name_or_path}, and the
     *     tokenizer PEFT's TEXT init names)
     * @param initText the text a TEXT init was tokenized from (PEFT's config requires it)
     * @throws IllegalArgumentException when the method is not prompt tuning or P-tuning, the model
     *     has no virtual tokens, or a TEXT init comes without its text
     */
    public static void write(
            TunableModel model,
            FineTuningMethod method,
            String baseModel,
            Optional<String> initText,
            Path dir)
            throws IOException {
        VirtualTokens tokens =
                model.virtualTokens()
                        .orElseThrow(
                                () ->
                                        new IllegalArgumentException(
                                                "the model has no virtual tokens to export"));
        ObjectNode config = JSON.createObjectNode();
        if (method instanceof FineTuningMethod.Prompt p) {
            config.put("peft_type", "PROMPT_TUNING");
            config.put(
                    "prompt_tuning_init",
                    switch (p.init()) {
                        case RANDOM -> "RANDOM";
                        case VOCAB -> "SAMPLE_VOCAB";
                        case TEXT -> "TEXT";
                    });
            if (p.init() == FineTuningMethod.Prompt.Init.TEXT) {
                config.put(
                        "prompt_tuning_init_text",
                        initText.orElseThrow(
                                () ->
                                        new IllegalArgumentException(
                                                "a TEXT-initialised prompt's export needs"
                                                        + " the init text (PEFT's"
                                                        + " prompt_tuning_init_text)")));
                config.put("tokenizer_name_or_path", baseModel);
            } else {
                config.putNull("prompt_tuning_init_text");
                config.putNull("tokenizer_name_or_path");
            }
            config.putNull("tokenizer_kwargs");
        } else if (method instanceof FineTuningMethod.PTuning p) {
            config.put("peft_type", "P_TUNING");
            config.put("encoder_reparameterization_type", p.encoder().name());
            config.put("encoder_hidden_size", p.encoderHiddenSize(model));
            config.put("encoder_num_layers", PromptEncoder.LSTM_LAYERS);
            config.put("encoder_dropout", p.encoderDropout());
        } else {
            throw new IllegalArgumentException(
                    "PEFT's prompt-learning layout is for PROMPT and P_TUNING, not "
                            + method.getClass().getSimpleName());
        }
        boolean classifier = model instanceof SequenceClassifier;
        config.put("task_type", classifier ? "SEQ_CLS" : "CAUSAL_LM");
        config.put("base_model_name_or_path", baseModel);
        config.putNull("revision");
        config.put("inference_mode", true);
        config.put("num_virtual_tokens", tokens.count());
        config.put("token_dim", model.hiddenSize());
        config.put("num_transformer_submodules", 1);
        config.put("num_attention_heads", model.attentionHeads());
        config.put("num_layers", model.layerCount());
        List<String> head = model.headModules();
        if (classifier) {
            // PeftModelForSequenceClassification adds both names whatever the model calls it.
            // BERT's pooler stays out: PEFT leaves it frozen in the base, and so does the engine.
            config.putArray("modules_to_save").add("classifier").add("score");
        } else {
            config.putNull("modules_to_save");
        }

        SafetensorsWriter writer = new SafetensorsWriter().metadata("format", "pt");
        NDManager manager = model.tokenEmbedding().getArray().getManager();
        try (NDManager scratch = manager.newSubManager()) {
            NDArray prompt =
                    tokens.embeddings(
                            new ParameterStore(scratch, false), scratch.getDevice(), false);
            writer.addF32(PROMPT_EMBEDDINGS, prompt.getShape().getShape(), prompt.toFloatArray());
        }
        for (Map.Entry<String, Parameter> e : model.namedParameters().entrySet()) {
            String name = e.getKey();
            if (head.stream().anyMatch(m -> name.startsWith(m + "."))) {
                NDArray a = e.getValue().getArray();
                writer.addF32(HEAD_PREFIX + name, a.getShape().getShape(), a.toFloatArray());
            }
        }
        Files.createDirectories(dir);
        writer.write(dir.resolve(WEIGHTS));
        Files.write(
                dir.resolve(CONFIG),
                JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(config));
    }
}
