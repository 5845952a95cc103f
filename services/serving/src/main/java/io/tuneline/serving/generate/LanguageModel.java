package io.tuneline.serving.generate;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import io.tuneline.engine.export.PeftAdapter;
import io.tuneline.engine.method.MethodState;
import io.tuneline.engine.model.CausalLanguageModel;
import io.tuneline.engine.model.CausalLmCheckpoint;
import io.tuneline.engine.model.CausalLmInference;
import io.tuneline.engine.model.SharedBase;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.tokenize.ChatMessage;
import io.tuneline.engine.tokenize.ChatTemplate;
import io.tuneline.engine.tokenize.ModelTokens;
import io.tuneline.serving.api.ServingException;
import io.tuneline.serving.load.EngineBatcher;
import io.tuneline.serving.load.LoadedModel;
import io.tuneline.serving.load.ModelQueue;
import io.tuneline.serving.load.ServingConfig;
import io.tuneline.serving.load.ServingMetrics;
import io.tuneline.serving.registry.RegisteredVersion;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Consumer;
import java.util.function.LongPredicate;

/**
 * A causal LM version in memory (GPT-2 or the Llama family), loaded as evaluation loads it: the
 * directory's checkpoint by its {@code model_type}, plus the method state of a method that cannot
 * be merged; or on a base held once for several versions, the method on top ({@link #loadOnBase}).
 * Prompts are encoded as preprocessing encodes training text (no special tokens, the BOS token
 * first when {@code tokenizer_config.json} says {@code add_bos_token}); chats are rendered with the
 * model's chat template and the generation prompt. Generation stops at the model's stop ids ({@link
 * ModelTokens#stopIds()}: the tokenizer's EOS and {@code config.json}'s {@code eos_token_id} list).
 */
public final class LanguageModel implements LoadedModel {
    private final RegisteredVersion version;
    private final Model model;
    private final CausalLmInference inference;
    private final HuggingFaceTokenizer tokenizer;
    private final ModelTokens tokens;
    private final Optional<ChatTemplate> chatTemplate;
    private final ModelQueue queue;
    private final EngineBatcher<Job, Decoded> batcher;
    private final long parameterBytes;

    private LanguageModel(
            RegisteredVersion version,
            Model model,
            HuggingFaceTokenizer tokenizer,
            ModelTokens tokens,
            ServingConfig config,
            ServingMetrics metrics,
            long parameterBytes) {
        this.version = version;
        this.queue = new ModelQueue(version.id(), config.limits().maxQueued());
        this.batcher =
                new EngineBatcher<>(
                        "generate-" + version.id(),
                        queue,
                        config.batch().maxSize(),
                        config.batch().maxWait(),
                        job -> 1,
                        this::decodeAll,
                        metrics.batchInputs(version.model()));
        this.parameterBytes = parameterBytes;
        this.model = model;
        this.inference = CausalLmInference.of(model);
        this.tokenizer = tokenizer;
        this.tokens = tokens;
        this.chatTemplate = tokens.chatTemplateFor(Optional.empty());
    }

    /** Whether {@code dir}'s {@code config.json} is a causal LM the engine builds. */
    public static boolean isLanguageModel(Path dir) throws IOException {
        return CausalLmCheckpoint.isCausalLm(dir);
    }

    public static LanguageModel load(
            EngineRuntime runtime,
            RegisteredVersion version,
            Path dir,
            ServingConfig config,
            ServingMetrics metrics)
            throws IOException {
        Model model = CausalLmCheckpoint.load(dir, runtime.device());
        try {
            MethodState.restoreIfPresent(
                    (TunableModel) model.getBlock(), dir, model.getNDManager());
            return withTokenizer(
                    version,
                    model,
                    dir,
                    config,
                    metrics,
                    LoadedModel.parameterBytes(model.getBlock()));
        } catch (IOException | RuntimeException e) {
            model.close();
            throw e;
        }
    }

    /**
     * Builds the causal LM of {@code dir} on {@code base}'s weights, in place ({@link SharedBase}):
     * the directory's weights are not read; the method goes on top, from the method state ({@link
     * MethodState}) or the PEFT LoRA adapter under {@code adapter/}.
     *
     * @throws IllegalArgumentException when the version cannot compute on the base (another
     *     configuration, neither a method state nor a LoRA adapter)
     */
    public static LanguageModel loadOnBase(
            EngineRuntime runtime,
            RegisteredVersion version,
            Path dir,
            ServingConfig config,
            ServingMetrics metrics,
            CausalLanguageModel base)
            throws IOException {
        Path adapter = dir.resolve(ADAPTER_DIR);
        if (!MethodState.present(dir) && !PeftAdapter.isLora(adapter)) {
            throw new IllegalArgumentException(
                    version.id() + " has neither a method state nor a LoRA adapter");
        }
        Model model = CausalLmCheckpoint.loadOnBase(dir, base, runtime.device());
        try {
            CausalLanguageModel lm = (CausalLanguageModel) model.getBlock();
            if (MethodState.present(dir)) {
                MethodState.restore(lm, dir, model.getNDManager());
            } else {
                PeftAdapter.restore(lm, adapter, model.getNDManager());
            }
            long bytes = LoadedModel.parameterBytes(lm, SharedBase.sharedArrays(base, lm));
            return withTokenizer(version, model, dir, config, metrics, bytes);
        } catch (IOException | RuntimeException e) {
            model.close();
            throw e;
        }
    }

    private static LanguageModel withTokenizer(
            RegisteredVersion version,
            Model model,
            Path dir,
            ServingConfig config,
            ServingMetrics metrics,
            long bytes)
            throws IOException {
        HuggingFaceTokenizer tokenizer =
                HuggingFaceTokenizer.newInstance(
                        dir.resolve(ModelTokens.TOKENIZER),
                        Map.of("padding", "false", "truncation", "false"));
        try {
            return new LanguageModel(
                    version, model, tokenizer, ModelTokens.read(dir), config, metrics, bytes);
        } catch (IOException | RuntimeException e) {
            tokenizer.close();
            throw e;
        }
    }

    @Override
    public RegisteredVersion version() {
        return version;
    }

    @Override
    public String task() {
        return "causal_lm";
    }

    @Override
    public TunableModel tunable() {
        return (TunableModel) model.getBlock();
    }

    @Override
    public ModelQueue queue() {
        return queue;
    }

    @Override
    public long parameterBytes() {
        return parameterBytes;
    }

    public int maxPositions() {
        return inference.maxPositions();
    }

    /** A completion prompt's tokens. */
    public long[] encodePrompt(String text) {
        return tokens.withBos(tokenizer.encode(text, false, false).getIds());
    }

    /** A conversation's tokens: the chat template with the assistant's generation prompt. */
    public long[] encodeChat(List<ChatMessage> messages) {
        ChatTemplate template =
                chatTemplate.orElseThrow(
                        () ->
                                ServingException.badRequest(
                                        version.id()
                                                + " has no chat template (tokenizer_config.json's"
                                                + " chat_template); use /v1/completions"));
        String text;
        try {
            text = template.render(messages, true);
        } catch (RuntimeException e) {
            throw ServingException.badRequest(
                    "the model's chat template rejected the messages: " + e.getMessage());
        }
        return tokenizer.encode(text, false, false).getIds();
    }

    /** What a generation produced. */
    public record Generation(
            String text, int promptTokens, int completionTokens, String finishReason) {}

    /**
     * Generates from {@code prompt}: at most {@code maxTokens} tokens picked by {@code chooser},
     * stopping at a stop id or before the first of {@code stops} in the text; {@code onText} hears
     * each piece of text as soon as it is final (a stop string could still cut text that is held
     * back, so up to the longest stop's length less one is held). Decoded in one batch with the
     * generations that wait with it ({@link #decode}); {@code ticket}, from {@link
     * ModelQueue#enter()}, waits for that batch.
     */
    public Generation generate(
            ModelQueue.Ticket ticket,
            long[] prompt,
            int maxTokens,
            CausalLmInference.TokenChooser chooser,
            List<String> stops,
            Consumer<String> onText) {
        if (prompt.length == 0) {
            throw ServingException.badRequest("the prompt has no tokens");
        }
        if (prompt.length >= inference.maxPositions()) {
            throw ServingException.badRequest(
                    "the prompt has "
                            + prompt.length
                            + " tokens; the model takes "
                            + inference.maxPositions()
                            + " positions in all, so at most "
                            + (inference.maxPositions() - 1)
                            + " prompt tokens");
        }
        List<Long> stopIds = tokens.stopIds();
        int hold = stops.stream().mapToInt(String::length).max().orElse(1) - 1;
        List<Long> out = new ArrayList<>();
        String[] finish = {null};
        StringBuilder sent = new StringBuilder();
        String[] text = {""};
        long[] generated =
                decode(
                        ticket,
                        prompt,
                        maxTokens,
                        chooser,
                        token -> {
                            if (stopIds.contains(token)) {
                                finish[0] = "stop";
                                return false;
                            }
                            out.add(token);
                            text[0] = decode(out);
                            int cut = firstStop(text[0], stops, Math.max(0, sent.length() - hold));
                            if (cut >= 0) {
                                text[0] = text[0].substring(0, cut);
                                finish[0] = "stop";
                                return false;
                            }
                            int ready = text[0].length() - hold;
                            while (ready > sent.length()
                                    && (Character.isWhitespace(text[0].charAt(ready - 1))
                                            || text[0].charAt(ready - 1) == '\uFFFD')) {
                                ready--;
                            }
                            if (ready > sent.length() && text[0].startsWith(sent.toString())) {
                                String piece = text[0].substring(sent.length(), ready);
                                sent.append(piece);
                                onText.accept(piece);
                            }
                            return true;
                        });
        if (text[0].length() > sent.length() && text[0].startsWith(sent.toString())) {
            onText.accept(text[0].substring(sent.length()));
        }
        return new Generation(
                text[0], prompt.length, generated.length, finish[0] == null ? "length" : finish[0]);
    }

    /** A generation waiting for its batch: {@link CausalLmInference#generate}'s arguments. */
    private record Job(
            long[] prompt,
            int maxTokens,
            CausalLmInference.TokenChooser chooser,
            LongPredicate accepted) {}

    /** A generation's tokens, or what failed it alone (its callback threw: a client went away). */
    private record Decoded(long[] tokens, RuntimeException error) {}

    /**
     * The tokens of one generation, decoded in a batch with the generations that wait with it
     * ({@link EngineBatcher}, {@link CausalLmInference#generateAll}): each gets the tokens it gets
     * alone. A callback that throws stops its own sequence only, and its request gets the error.
     */
    private long[] decode(
            ModelQueue.Ticket ticket,
            long[] prompt,
            int maxTokens,
            CausalLmInference.TokenChooser chooser,
            LongPredicate accepted) {
        Decoded d = batcher.submit(new Job(prompt, maxTokens, chooser, accepted), ticket);
        if (d.error() != null) {
            throw d.error();
        }
        return d.tokens();
    }

    private List<Decoded> decodeAll(List<Job> jobs) {
        RuntimeException[] errors = new RuntimeException[jobs.size()];
        List<CausalLmInference.Sequence> sequences = new ArrayList<>();
        for (int i = 0; i < jobs.size(); i++) {
            Job job = jobs.get(i);
            int index = i;
            sequences.add(
                    new CausalLmInference.Sequence(
                            job.prompt(),
                            job.maxTokens(),
                            job.chooser(),
                            token -> {
                                try {
                                    return job.accepted().test(token);
                                } catch (RuntimeException e) {
                                    errors[index] = e;
                                    return false;
                                }
                            }));
        }
        List<long[]> tokens = inference.generateAll(sequences);
        List<Decoded> out = new ArrayList<>();
        for (int i = 0; i < jobs.size(); i++) {
            out.add(new Decoded(tokens.get(i), errors[i]));
        }
        return out;
    }

    /**
     * Where the first stop string starts in {@code text}, searching from {@code from}; -1 if none.
     */
    static int firstStop(String text, List<String> stops, int from) {
        int best = -1;
        for (String s : stops) {
            int at = text.indexOf(s, from);
            if (at >= 0 && (best < 0 || at < best)) {
                best = at;
            }
        }
        return best;
    }

    /** Tokens as text, special tokens left out. */
    public String decode(List<Long> ids) {
        return ids.isEmpty()
                ? ""
                : tokenizer.decode(ids.stream().mapToLong(Long::longValue).toArray(), true);
    }

    /** Tokens as text, special tokens left out. */
    public String decode(long[] ids) {
        return ids.length == 0 ? "" : tokenizer.decode(Arrays.copyOf(ids, ids.length), true);
    }

    @Override
    public void close() {
        batcher.close();
        // Not under a running generation: it would read freed native memory.
        try (ModelQueue.Turn turn = queue.awaitTurn()) {
            tokenizer.close();
            model.close();
        }
    }
}
