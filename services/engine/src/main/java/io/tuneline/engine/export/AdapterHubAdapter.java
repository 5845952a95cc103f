package io.tuneline.engine.export;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Parameter;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.io.safetensors.SafetensorsWriter;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.model.CausalLanguageModel;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.model.gpt2.Gpt2LmModel;
import io.tuneline.engine.model.llama.LlamaLmModel;
import io.tuneline.engine.nn.ResidualTap;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;

/**
 * Bottleneck adapters in the layout of the {@code adapters} library (adapter-hub 1.2.0, {@code
 * model.save_adapter(dir, name, use_safetensors=True)}, {@code loading.py} {@code AdapterLoader}):
 *
 * <ul>
 *   <li>{@value #CONFIG}: {@code build_full_config}'s dict, {@code {"config": BnConfig.to_dict(),
 *       "hidden_size", "model_class", "model_name", "model_type", "name", "version"}}, keys sorted
 *       as {@code json.dump(..., sort_keys=True)} writes them. {@code to_dict} is {@code
 *       dataclasses.asdict}, so every BnConfig field is there and no {@code architecture} key (a
 *       bottleneck config's {@code architecture} is a class attribute, not a field; the loader maps
 *       a missing one to {@code BnConfig}).
 *   <li>{@value #WEIGHTS}: the state dict filtered on {@code .adapters.<name>.}, keys as the
 *       library's model with heads names them: {@code bert.encoder.layer.0.output.adapters.<name>
 *       .adapter_down.0.weight} ({@code BertAdapterModel.bert}), {@code
 *       transformer.h.0.output_adapters.adapters.<name>...} (GPT-2), {@code
 *       model.layers.0.attention_adapters.adapters.<name>...} (Llama family). The library reads
 *       this file when {@code load_adapter(dir, use_safetensors=True)}; without that flag it looks
 *       for {@code pytorch_adapter.bin}, a pickle this engine does not write.
 *   <li>For a classifier, {@value #HEAD_CONFIG} and {@value #HEAD_WEIGHTS} as {@code
 *       PredictionHeadLoader.save} writes a flex {@code classification} head with {@code layers} 1
 *       ({@code heads.<name>.1.weight}, {@code .bias}: dropout then the linear layer). The
 *       library's classification head reads the first token's state ({@code outputs[0][:, 0]}); the
 *       engine's head reads the masked mean of the token states, so the library reproduces the
 *       engine's logits only with mean pooling put in front of the head by hand.
 * </ul>
 */
public final class AdapterHubAdapter {
    public static final String CONFIG = "adapter_config.json";
    public static final String WEIGHTS = "adapter.safetensors";
    public static final String HEAD_CONFIG = "head_config.json";
    public static final String HEAD_WEIGHTS = "model_head.safetensors";

    /** {@code "adapters." + __version__} of the snapshot the layout was read from. */
    public static final String VERSION = "adapters.1.2.0";

    private static final ObjectMapper JSON = new ObjectMapper();

    private AdapterHubAdapter() {}

    /**
     * A causal LM's adapters (GPT-2: {@code GPT2AdapterModel}; Llama family: {@code
     * LlamaAdapterModel}, {@code MistralAdapterModel}; Qwen2/Qwen3 have no model class in the
     * library and load through its plugin interface, which names the layers' adapters the same).
     */
    public static void write(
            CausalLanguageModel lm, FineTuningMethod.Adapter adapter, String baseModel, Path dir)
            throws IOException {
        String modelType;
        String modelClass;
        if (lm instanceof Gpt2LmModel) {
            modelType = "gpt2";
            modelClass = "GPT2AdapterModel";
        } else if (lm instanceof LlamaLmModel llama) {
            modelType = llama.config().modelType();
            modelClass =
                    switch (modelType) {
                        case "llama" -> "LlamaAdapterModel";
                        case "mistral" -> "MistralAdapterModel";
                        case "qwen2" -> "Qwen2ForCausalLM";
                        default -> "Qwen3ForCausalLM";
                    };
        } else {
            throw new IllegalArgumentException(
                    lm.getClass().getSimpleName() + " has no adapters-library layout");
        }
        writeAdapter(lm, adapter, baseModel, modelType, modelClass, "", dir);
    }

    /**
     * A classifier's adapters ({@code BertAdapterModel}: keys under {@code bert.}; RoBERTa under
     * {@code roberta.}) and its head.
     *
     * @param labels the label names in index order, or empty for none
     */
    public static void write(
            SequenceClassifier classifier,
            FineTuningMethod.Adapter adapter,
            String baseModel,
            List<String> labels,
            Path dir)
            throws IOException {
        String modelType = classifier.encoder().config().modelType();
        String modelClass =
                modelType.equals("roberta") ? "RobertaAdapterModel" : "BertAdapterModel";
        int hidden = classifier.encoder().config().hiddenSize();
        writeAdapter(classifier, adapter, baseModel, modelType, modelClass, modelType + ".", dir);

        String name = FineTuningMethod.Adapter.NAME;
        ObjectNode head = JsonNodeFactory.instance.objectNode();
        head.putNull("activation_function");
        head.put("bias", true);
        head.putNull("dropout_prob");
        head.put("head_type", "classification");
        if (labels.isEmpty()) {
            head.putNull("label2id");
        } else {
            ObjectNode l2i = head.putObject("label2id");
            for (int i = 0; i < labels.size(); i++) {
                l2i.put(labels.get(i), i);
            }
        }
        head.put("layers", 1);
        head.put("num_labels", classifier.head().out());
        head.put("use_pooler", false);
        writeJson(dir.resolve(HEAD_CONFIG), full(head, hidden, modelClass, baseModel, modelType));
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
        Map<String, Parameter> p = classifier.namedParameters();
        add(w, "heads." + name + ".1.weight", p.get(SequenceClassifier.HEAD + ".weight"));
        add(w, "heads." + name + ".1.bias", p.get(SequenceClassifier.HEAD + ".bias"));
        w.write(dir.resolve(HEAD_WEIGHTS));
    }

    private static void writeAdapter(
            TunableModel model,
            FineTuningMethod.Adapter adapter,
            String baseModel,
            String modelType,
            String modelClass,
            String keyPrefix,
            Path dir)
            throws IOException {
        Map<String, ResidualTap> taps = model.residualTaps();
        if (taps.isEmpty()) {
            throw new IllegalArgumentException("the model has no residual taps");
        }
        int hidden = taps.values().iterator().next().width();
        Map<String, Parameter> params = ResidualTap.parameters(taps);
        if (params.isEmpty()) {
            throw new IllegalStateException("no bottleneck adapter is attached to the model");
        }
        Files.createDirectories(dir);
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
        for (Map.Entry<String, Parameter> e : params.entrySet()) {
            add(w, keyPrefix + e.getKey(), e.getValue());
        }
        w.write(dir.resolve(WEIGHTS));
        writeJson(
                dir.resolve(CONFIG),
                full(bnConfig(adapter, hidden), hidden, modelClass, baseModel, modelType));
    }

    private static ObjectNode full(
            ObjectNode config, int hidden, String modelClass, String baseModel, String modelType) {
        // build_full_config + the keyword arguments AdapterLoader.save passes, sorted.
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.set("config", config);
        o.put("hidden_size", hidden);
        o.put("model_class", modelClass);
        o.put("model_name", baseModel);
        o.put("model_type", modelType);
        o.put("name", FineTuningMethod.Adapter.NAME);
        o.put("version", VERSION);
        return o;
    }

    /**
     * {@code SeqBnConfig} / {@code DoubleSeqBnConfig} as {@code to_dict()} gives them, every field
     * of {@code BnConfig} (configuration/adapter_config.py), in sorted order, with the method's
     * settings: {@code reduction_factor} (hidden / bottleneck when a size was given, as a float
     * whose {@code int(hidden // reduction_factor)} is that size), {@code non_linearity}, {@code
     * dropout}; {@code init_weights} {@code mam_adapter}, the library's init with a zero
     * up-projection, which is what the engine does.
     */
    public static ObjectNode bnConfig(FineTuningMethod.Adapter adapter, int hidden) {
        FineTuningMethod.Adapter.Placement placement = adapter.placement();
        ObjectNode c = JsonNodeFactory.instance.objectNode();
        c.put("adapter_residual_before_ln", false);
        c.put("cross_adapter", false);
        c.put("dropout", (double) adapter.dropout());
        c.put("factorized_phm_W", true);
        c.put("factorized_phm_rule", false);
        c.put("hypercomplex_nonlinearity", "glorot-uniform");
        c.put("init_weights", "mam_adapter");
        c.putNull("init_weights_seed");
        c.putNull("inv_adapter");
        c.putNull("inv_adapter_reduction_factor");
        c.put("is_parallel", false);
        c.put("learn_phm", true);
        c.putArray("leave_out");
        c.put("ln_after", false);
        c.put("ln_before", false);
        c.put("mh_adapter", placement.afterAttention());
        c.put("non_linearity", adapter.effectiveActivation());
        c.put("original_ln_after", true);
        c.put("original_ln_before", placement.originalLnBefore());
        c.put("output_adapter", true);
        c.put("phm_bias", true);
        c.put("phm_c_init", "normal");
        c.put("phm_dim", 4);
        c.put("phm_init_range", 0.0001);
        c.put("phm_layer", false);
        c.put("phm_rank", 1);
        if (adapter.bottleneckSize() > 0) {
            c.put("reduction_factor", reductionFactorFor(hidden, adapter.bottleneckSize()));
        } else {
            c.put("reduction_factor", adapter.reductionFactor());
        }
        c.put("residual_before_ln", true);
        c.put("scaling", 1.0);
        c.put("shared_W_phm", false);
        c.put("shared_phm_rule", true);
        c.put("stochastic_depth", 0.0);
        c.put("use_gating", false);
        return c;
    }

    /**
     * A {@code reduction_factor} from which the library's {@code int(hidden // reduction_factor)}
     * gives {@code bottleneck} back. Python's float floor division of these small integers is the
     * floor of the exact quotient ({@code fmod} is exact), so the factor is nudged down until
     * {@code bottleneck * rf <= hidden} holds exactly.
     */
    static double reductionFactorFor(int hidden, int bottleneck) {
        double rf = (double) hidden / bottleneck;
        java.math.BigDecimal h = java.math.BigDecimal.valueOf(hidden);
        java.math.BigDecimal b = java.math.BigDecimal.valueOf(bottleneck);
        while (new java.math.BigDecimal(rf).multiply(b).compareTo(h) > 0) {
            rf = Math.nextDown(rf);
        }
        return rf;
    }

    private static void add(SafetensorsWriter w, String name, Parameter p) {
        NDArray a = p.getArray();
        w.addF32(name, a.getShape().getShape(), a.toFloatArray());
    }

    private static void writeJson(Path file, JsonNode node) throws IOException {
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        JSON.writerWithDefaultPrettyPrinter().writeValue(tmp.toFile(), node);
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
    }
}
