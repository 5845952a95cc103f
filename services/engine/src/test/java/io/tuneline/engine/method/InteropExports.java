package io.tuneline.engine.method;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.engine.export.ClassifierWeights;
import io.tuneline.engine.export.MethodExport;
import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.model.CausalLanguageModel;
import io.tuneline.engine.model.CausalLmCheckpoint;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.model.llama.LlamaCheckpoint;
import io.tuneline.engine.model.llama.LlamaConfig;
import io.tuneline.engine.model.llama.LlamaInference;
import io.tuneline.engine.model.llama.LlamaLmModel;
import io.tuneline.engine.model.llama.TinyLlamas;
import io.tuneline.engine.nn.NativeCopy;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.tokenize.ChatMessage;
import io.tuneline.engine.tokenize.ChatTemplate;
import io.tuneline.engine.tokenize.ModelTokens;
import io.tuneline.engine.tokenize.RealTokenizers;
import io.tuneline.proto.v1.LoraParams;
import io.tuneline.proto.v1.MethodSpec;
import io.tuneline.proto.v1.PTuningParams;
import io.tuneline.proto.v1.PrefixTuningParams;
import io.tuneline.proto.v1.PromptTuningParams;
import io.tuneline.proto.v1.QloraParams;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;

/**
 * Writes what Tuneline exports (Hugging Face model directories, PEFT adapters) for every model
 * family and method, with the engine's own outputs on fixed inputs, so that {@code
 * bench/interop_check.py} can load each export with the real {@code transformers} and {@code peft}
 * packages and compare. Not a test: those packages are not on the build machines ({@code
 * bench/interop.sh} runs both halves wherever a Python with them exists, a device machine
 * included).
 *
 * <p>Every trainable parameter a method adds is set to random values before the export (LoRA's B
 * starts at zero, which would hide a wrong layout), and full fine-tuning perturbs every weight.
 * Usage: {@code InteropExports OUT_DIR}; writes {@code OUT_DIR/cases.json} and one folder per case.
 */
public final class InteropExports {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long[][] IDS = {
        {1, 17, 42, 8, 8, 3, 33, 5, 25, 11}, {1, 7, 8, 9, 40, 6, 0, 0, 0, 0}
    };
    private static final long[][] MASK = {
        {1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 0, 0, 0, 0}
    };

    /**
     * RoBERTa's inputs: {@code <s>} is 0 and 1 is its padding id, from which transformers derives
     * positions (a real token with the padding id would get the padding position).
     */
    private static final long[][] ROBERTA_IDS = {
        {0, 17, 42, 8, 8, 3, 33, 5, 25, 11}, {0, 7, 8, 9, 40, 6, 1, 1, 1, 1}
    };

    private static final List<String> LABELS = List.of("negative", "neutral", "positive");

    /** The folder everything is written to; paths in cases.json are relative to it. */
    private static Path root;

    private InteropExports() {}

    private static String relative(Path p) {
        return root.relativize(p.toAbsolutePath()).toString();
    }

    public static void main(String[] args) throws Exception {
        Path out = Path.of(args[0]).toAbsolutePath();
        root = out;
        Files.createDirectories(out);
        EngineRuntime runtime = EngineRuntime.start(2);
        ArrayNode cases = JSON.createArrayNode();
        long seed = 100;
        // Loading: every Llama-family variant the engine implements, as written (F32), and one
        // as BF16 in shards, the form published checkpoints take.
        for (String variant : TinyLlamas.variants().keySet()) {
            Path base = TinyLlamas.write(variant, out.resolve("base-" + variant), seed++);
            cases.add(llamaBase("load-" + variant, base, runtime));
        }
        Path sharded = TinyLlamas.write("llama-gqa", out.resolve("base-llama-gqa-bf16-sharded"), 7);
        TinyLlamas.toBf16(sharded);
        TinyLlamas.shard(sharded);
        cases.add(llamaBase("load-llama-gqa-bf16-sharded", sharded, runtime));
        // Writing: a tuned model saved as a BF16 base is (the worker keeps the base's dtype), in
        // shards; the engine's logits are those of the written files, read back.
        Path written = out.resolve("written-llama-gqa-bf16-sharded");
        try (Model model =
                LlamaCheckpoint.load(sharded, runtime.device(), LlamaConfig::withoutDropout)) {
            randomizeTrainable(model, true, new Random(8));
            LlamaCheckpoint.save((LlamaLmModel) model.getBlock(), written, Dtype.BF16, 20_000);
        }
        cases.add(llamaBase("write-llama-gqa-bf16-sharded", written, runtime));

        // Every method on every family, exported as the worker exports it.
        Map<String, MethodSpec> methods = new java.util.LinkedHashMap<>();
        LoraParams lora = LoraParams.newBuilder().setRank(4).setAlpha(8).setDropout(0.0).build();
        methods.put(
                "full",
                MethodSpec.newBuilder()
                        .setFull(io.tuneline.proto.v1.FullFineTuning.getDefaultInstance())
                        .build());
        methods.put("lora", MethodSpec.newBuilder().setLora(lora).build());
        methods.put(
                "qlora",
                MethodSpec.newBuilder()
                        .setQlora(QloraParams.newBuilder().setLora(lora).setBlockSize(64))
                        .build());
        methods.put(
                "prefix",
                MethodSpec.newBuilder()
                        .setPrefix(PrefixTuningParams.newBuilder().setNumVirtualTokens(3))
                        .build());
        methods.put(
                "prompt",
                MethodSpec.newBuilder()
                        .setPrompt(PromptTuningParams.newBuilder().setNumVirtualTokens(3))
                        .build());
        methods.put(
                "p_tuning",
                MethodSpec.newBuilder()
                        .setPTuning(PTuningParams.newBuilder().setNumVirtualTokens(3))
                        .build());
        for (PromptFamilies family :
                List.of(
                        PromptFamilies.BERT_POOLER,
                        PromptFamilies.ROBERTA,
                        PromptFamilies.GPT2,
                        PromptFamilies.LLAMA_GQA,
                        PromptFamilies.QWEN3)) {
            Path base =
                    family.write(
                            out.resolve("base-" + family.name().toLowerCase()), runtime, seed++);
            for (Map.Entry<String, MethodSpec> m : methods.entrySet()) {
                String name = family.name().toLowerCase() + "-" + m.getKey();
                cases.add(
                        tuned(
                                name,
                                family,
                                base,
                                m.getKey(),
                                m.getValue(),
                                out.resolve(name),
                                runtime,
                                seed++));
            }
        }

        // Chat templates: the engine's rendering of the models' own templates, and its token ids.
        for (String tokenizer : List.of(RealTokenizers.LLAMA3, RealTokenizers.QWEN3)) {
            cases.add(chat(tokenizer, RealTokenizers.dir(tokenizer)));
        }
        Files.write(
                out.resolve("cases.json"),
                JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(cases));
        System.out.printf("wrote %d cases to %s%n", cases.size(), out.resolve("cases.json"));
    }

    private static ObjectNode llamaBase(String name, Path base, EngineRuntime runtime)
            throws Exception {
        try (Model model =
                LlamaCheckpoint.load(base, runtime.device(), LlamaConfig::withoutDropout)) {
            ObjectNode c = newCase(name, "causal", "none", base, IDS);
            c.put("model_type", ((LlamaLmModel) model.getBlock()).config().modelType());
            putLogits(c, PromptFamilies.forward(model, model.getNDManager(), IDS, MASK, false));
            // Greedy generation with the key/value cache, as serving generates.
            long[] prompt = {1, 17, 42, 8};
            ArrayNode p = c.putArray("generate_prompt");
            for (long id : prompt) {
                p.add(id);
            }
            ArrayNode generated = c.putArray("generated");
            for (long id :
                    LlamaInference.greedy(
                            (LlamaLmModel) model.getBlock(),
                            model.getNDManager(),
                            prompt,
                            8,
                            true)) {
                generated.add(id);
            }
            return c;
        }
    }

    private static ObjectNode tuned(
            String name,
            PromptFamilies family,
            Path base,
            String methodName,
            MethodSpec spec,
            Path dir,
            EngineRuntime runtime,
            long seed)
            throws Exception {
        Files.createDirectories(dir);
        try (Model model = family.load(base, runtime)) {
            TunableModel tunable = PromptFamilies.tunable(model);
            NDManager manager = model.getNDManager();
            ai.djl.engine.Engine.getInstance().setRandomSeed((int) seed);
            FineTuningMethod method =
                    JobMethods.of(spec, tunable.defaultLoraTargets(), text -> List.of(1, 2, 3));
            method.apply(tunable, manager);
            randomizeTrainable(model, methodName.equals("full"), new Random(seed));
            long[][] ids = family == PromptFamilies.ROBERTA ? ROBERTA_IDS : IDS;
            ObjectNode c =
                    newCase(
                            name,
                            family.classifier() ? "classifier" : "causal",
                            methodName,
                            base,
                            ids);
            c.put("family", family.name().toLowerCase());
            if (family.classifier()) {
                c.put("num_labels", LABELS.size());
            }
            if (method.mergeable()) {
                Path merged = dir.resolve("model");
                if (tunable instanceof SequenceClassifier classifier) {
                    Path tokenizer = Files.writeString(dir.resolve("tokenizer.json"), "{}");
                    ObjectNode provenance = JSON.createObjectNode().put("method", methodName);
                    ClassifierWeights.writeDirectory(
                            classifier, LABELS, tokenizer, provenance, merged);
                } else {
                    CausalLmCheckpoint.save((CausalLanguageModel) tunable, merged, Dtype.F32);
                }
                c.put("merged_dir", relative(merged));
            }
            Path adapter = dir.resolve("adapter");
            if (MethodExport.write(
                    tunable, method, Optional.empty(), "tuneline/interop-base", LABELS, adapter)) {
                c.put("adapter_dir", relative(adapter));
            }
            putLogits(c, PromptFamilies.forward(model, manager, ids, MASK, false));
            return c;
        }
    }

    /** Random values in every trainable parameter (all of them for full fine-tuning: a nudge). */
    private static void randomizeTrainable(Model model, boolean nudge, Random r) {
        for (var e : model.getBlock().getParameters()) {
            Parameter p = e.getValue();
            if (!p.requiresGradient() || !p.isInitialized()) {
                continue;
            }
            NDArray a = p.getArray();
            float[] v = a.toFloatArray();
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) (nudge ? v[i] + 0.02 * r.nextGaussian() : 0.1 * r.nextGaussian());
            }
            NativeCopy.copyInto(a, v);
        }
    }

    private static ObjectNode chat(String name, Path dir) throws Exception {
        ModelTokens tokens = ModelTokens.read(dir);
        ChatTemplate template = tokens.chatTemplateFor(Optional.empty()).orElseThrow();
        List<List<ChatMessage>> conversations =
                List.of(
                        List.of(
                                new ChatMessage("system", "You answer in one short sentence."),
                                new ChatMessage("user", "What is the capital of France?"),
                                new ChatMessage("assistant", "Paris is the capital of France."),
                                new ChatMessage("user", "And of Italy?"),
                                new ChatMessage("assistant", "Rome.")),
                        List.of(
                                new ChatMessage("user", "Translate 'Guten Morgen' to English."),
                                new ChatMessage("assistant", "Good morning.")));
        ObjectNode c = JSON.createObjectNode();
        c.put("name", "chat-" + name);
        c.put("kind", "chat");
        // A copy beside the exports: the folder travels to wherever the check runs.
        Path copy = Files.createDirectories(root.resolve("tokenizer-" + name));
        for (String f : List.of(ModelTokens.TOKENIZER, ModelTokens.TOKENIZER_CONFIG)) {
            Files.copy(dir.resolve(f), copy.resolve(f), StandardCopyOption.REPLACE_EXISTING);
        }
        c.put("tokenizer_dir", relative(copy));
        ArrayNode items = c.putArray("conversations");
        try (HuggingFaceTokenizer tokenizer =
                HuggingFaceTokenizer.newInstance(
                        dir.resolve(ModelTokens.TOKENIZER), Map.of("addSpecialTokens", "false"))) {
            for (List<ChatMessage> conversation : conversations) {
                for (boolean generationPrompt : new boolean[] {false, true}) {
                    List<ChatMessage> messages =
                            generationPrompt
                                    ? conversation.subList(0, conversation.size() - 1)
                                    : conversation;
                    ObjectNode item = items.addObject();
                    ArrayNode ms = item.putArray("messages");
                    messages.forEach(
                            m -> ms.addObject().put("role", m.role()).put("content", m.content()));
                    item.put("add_generation_prompt", generationPrompt);
                    String text = template.render(messages, generationPrompt);
                    item.put("text", text);
                    ArrayNode ids = item.putArray("input_ids");
                    for (long id : tokenizer.encode(text).getIds()) {
                        ids.add(id);
                    }
                }
            }
        }
        return c;
    }

    private static ObjectNode newCase(
            String name, String kind, String method, Path base, long[][] inputIds) {
        ObjectNode c = JSON.createObjectNode();
        c.put("name", name);
        c.put("kind", kind);
        c.put("method", method);
        c.put("base_dir", relative(base));
        ArrayNode ids = c.putArray("input_ids");
        ArrayNode mask = c.putArray("attention_mask");
        for (int i = 0; i < inputIds.length; i++) {
            ArrayNode row = ids.addArray();
            ArrayNode m = mask.addArray();
            for (int j = 0; j < inputIds[i].length; j++) {
                row.add(inputIds[i][j]);
                m.add(MASK[i][j]);
            }
        }
        return c;
    }

    private static void putLogits(ObjectNode c, NDArray logits) {
        ArrayNode shape = c.putArray("logits_shape");
        for (long d : logits.getShape().getShape()) {
            shape.add(d);
        }
        ArrayNode values = c.putArray("logits");
        for (float v : logits.toFloatArray()) {
            values.add(v);
        }
    }
}
