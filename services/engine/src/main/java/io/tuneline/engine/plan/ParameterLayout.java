package io.tuneline.engine.plan;

import io.tuneline.engine.method.LoraDefaults;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.gpt2.Gpt2Config;
import io.tuneline.engine.model.llama.LlamaConfig;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Every parameter tensor of a model, by the Hugging Face name the engine gives it, computed from
 * {@code config.json} alone: the same names the methods match against (PEFT's target rule, layer
 * freezing's modules and globs), so counting what a method trains needs no model in memory. A head
 * tied to the token embedding is not a tensor of its own (it is counted once, as PyTorch's {@code
 * model.parameters()} counts it).
 *
 * @param tensors every parameter, in the model's order
 * @param linears the linear layers a method may adapt (task head excluded), by module path
 * @param layers the number of transformer layers
 * @param layerPrefix layer {@code i}'s module is {@code layerPrefix + i}
 * @param headModules the task head, trained by every method (PEFT's {@code modules_to_save})
 * @param outputModules the final norm and head, trained by layer freezing with the top layers
 * @param embeddingModules the input embeddings (and an untied LM head)
 * @param defaultLoraTargets PEFT's targets for the family
 */
public record ParameterLayout(
        List<Tensor> tensors,
        Map<String, Linear> linears,
        int layers,
        String layerPrefix,
        List<String> headModules,
        List<String> outputModules,
        List<String> embeddingModules,
        List<String> defaultLoraTargets) {

    /** One parameter tensor: its full name and number of elements. */
    public record Tensor(String name, long elements) {
        /** The module the tensor belongs to: its name without the last segment. */
        public String module() {
            int dot = name.lastIndexOf('.');
            return dot < 0 ? name : name.substring(0, dot);
        }
    }

    /** A linear layer: {@code out x in} weight, optional bias. */
    public record Linear(int in, int out, boolean bias) {
        public long weights() {
            return (long) in * out;
        }
    }

    public ParameterLayout {
        tensors = List.copyOf(tensors);
        linears = Collections.unmodifiableMap(new LinkedHashMap<>(linears));
    }

    /** Every parameter's element count, summed. */
    public long total() {
        return tensors.stream().mapToLong(Tensor::elements).sum();
    }

    /** Whether {@code name} belongs to one of {@code modules} (the engine's rule: a dot prefix). */
    public static boolean inAny(String name, List<String> modules) {
        return modules.stream().anyMatch(m -> name.startsWith(m + "."));
    }

    /** The layer index a parameter or module name sits in, or -1 outside the layers. */
    public int layerOf(String name) {
        if (!name.startsWith(layerPrefix)) {
            return -1;
        }
        String rest = name.substring(layerPrefix.length());
        int dot = rest.indexOf('.');
        try {
            return Integer.parseInt(dot < 0 ? rest : rest.substring(0, dot));
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /** The layout of {@code shape}'s model. */
    public static ParameterLayout of(ModelShape shape) {
        if (shape instanceof ModelShape.Encoder e) {
            return encoder(e);
        }
        if (shape instanceof ModelShape.Gpt2 g) {
            return gpt2(g.config());
        }
        return llama(((ModelShape.Llama) shape).config());
    }

    private static final class Builder {
        final List<Tensor> tensors = new ArrayList<>();
        final Map<String, Linear> linears = new LinkedHashMap<>();

        void tensor(String name, long elements) {
            tensors.add(new Tensor(name, elements));
        }

        /** A linear layer's weight and bias; {@code adaptable} puts it among the linears. */
        void linear(String module, int in, int out, boolean bias, boolean adaptable) {
            tensor(module + ".weight", (long) in * out);
            if (bias) {
                tensor(module + ".bias", out);
            }
            if (adaptable) {
                linears.put(module, new Linear(in, out, bias));
            }
        }

        void layerNorm(String module, int width) {
            tensor(module + ".weight", width);
            tensor(module + ".bias", width);
        }
    }

    /** BERT and RoBERTa as the engine's {@code SequenceClassifier} names them (no model prefix). */
    private static ParameterLayout encoder(ModelShape.Encoder shape) {
        BertConfig c = shape.config();
        int h = c.hiddenSize();
        Builder b = new Builder();
        b.tensor("embeddings.word_embeddings.weight", (long) c.vocabSize() * h);
        b.tensor("embeddings.position_embeddings.weight", (long) c.maxPositions() * h);
        b.tensor("embeddings.token_type_embeddings.weight", (long) c.typeVocabSize() * h);
        b.layerNorm("embeddings.LayerNorm", h);
        String prefix = "encoder.layer.";
        for (int i = 0; i < c.layers(); i++) {
            String l = prefix + i + ".";
            b.linear(l + "attention.self.query", h, h, true, true);
            b.linear(l + "attention.self.key", h, h, true, true);
            b.linear(l + "attention.self.value", h, h, true, true);
            b.linear(l + "attention.output.dense", h, h, true, true);
            b.layerNorm(l + "attention.output.LayerNorm", h);
            b.linear(l + "intermediate.dense", h, c.intermediateSize(), true, true);
            b.linear(l + "output.dense", c.intermediateSize(), h, true, true);
            b.layerNorm(l + "output.LayerNorm", h);
        }
        List<String> output = new ArrayList<>();
        if (shape.pooler()) {
            b.linear("pooler.dense", h, h, true, false);
            output.add("pooler");
        }
        b.linear("classifier", h, shape.labels(), true, false);
        output.add("classifier");
        return new ParameterLayout(
                b.tensors,
                b.linears,
                c.layers(),
                prefix,
                List.of("classifier"),
                output,
                List.of("embeddings"),
                LoraDefaults.BERT);
    }

    /** GPT-2 ({@code GPT2LMHeadModel}'s names; Conv1D projections, head tied to {@code wte}). */
    private static ParameterLayout gpt2(Gpt2Config c) {
        int h = c.hiddenSize();
        Builder b = new Builder();
        b.tensor("transformer.wte.weight", (long) c.vocabSize() * h);
        b.tensor("transformer.wpe.weight", (long) c.maxPositions() * h);
        String prefix = "transformer.h.";
        for (int i = 0; i < c.layers(); i++) {
            String l = prefix + i + ".";
            b.layerNorm(l + "ln_1", h);
            b.linear(l + "attn.c_attn", h, 3 * h, true, true);
            b.linear(l + "attn.c_proj", h, h, true, true);
            b.layerNorm(l + "ln_2", h);
            b.linear(l + "mlp.c_fc", h, c.innerSize(), true, true);
            b.linear(l + "mlp.c_proj", c.innerSize(), h, true, true);
        }
        b.layerNorm("transformer.ln_f", h);
        return new ParameterLayout(
                b.tensors,
                b.linears,
                c.layers(),
                prefix,
                List.of(),
                List.of("transformer.ln_f"),
                List.of("transformer.wte", "transformer.wpe"),
                LoraDefaults.GPT2);
    }

    /** The Llama family ({@code LlamaForCausalLM}'s names; {@code lm_head} only when untied). */
    private static ParameterLayout llama(LlamaConfig c) {
        int h = c.hiddenSize();
        int d = c.headDim();
        Builder b = new Builder();
        b.tensor("model.embed_tokens.weight", (long) c.vocabSize() * h);
        String prefix = "model.layers.";
        for (int i = 0; i < c.layers(); i++) {
            String l = prefix + i + ".";
            b.tensor(l + "input_layernorm.weight", h);
            b.linear(l + "self_attn.q_proj", h, c.heads() * d, c.qkvBias(), true);
            b.linear(l + "self_attn.k_proj", h, c.kvHeads() * d, c.qkvBias(), true);
            b.linear(l + "self_attn.v_proj", h, c.kvHeads() * d, c.qkvBias(), true);
            b.linear(l + "self_attn.o_proj", c.heads() * d, h, c.outputBias(), true);
            if (c.qkNorm()) {
                b.tensor(l + "self_attn.q_norm.weight", d);
                b.tensor(l + "self_attn.k_norm.weight", d);
            }
            b.tensor(l + "post_attention_layernorm.weight", h);
            b.linear(l + "mlp.gate_proj", h, c.intermediateSize(), c.mlpBias(), true);
            b.linear(l + "mlp.up_proj", h, c.intermediateSize(), c.mlpBias(), true);
            b.linear(l + "mlp.down_proj", c.intermediateSize(), h, c.mlpBias(), true);
        }
        b.tensor("model.norm.weight", h);
        List<String> embeddings = new ArrayList<>(List.of("model.embed_tokens"));
        if (!c.tieWordEmbeddings()) {
            b.tensor("lm_head.weight", (long) c.vocabSize() * h);
            embeddings.add("lm_head");
        }
        return new ParameterLayout(
                b.tensors,
                b.linears,
                c.layers(),
                prefix,
                List.of(),
                List.of("model.norm"),
                embeddings,
                LoraDefaults.LLAMA);
    }
}
