package io.tuneline.engine.bench;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.io.safetensors.Dtype;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.model.CausalLanguageModel;
import io.tuneline.engine.model.CausalLmCheckpoint;
import io.tuneline.engine.model.ClassifierHead;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.model.llama.LlamaCheckpoint;
import io.tuneline.engine.model.llama.LlamaConfig;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmLoss;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.Checkpointing;
import io.tuneline.engine.train.ClassifierTrainer;
import io.tuneline.engine.train.LabelledText;
import io.tuneline.engine.train.LearningRateSchedule;
import io.tuneline.engine.train.LmExample;
import io.tuneline.engine.train.TrainingListener;
import io.tuneline.engine.train.TrainingOutcome;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.engine.train.Validation;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * One fine-tuning method on the same data and budget as every other, one method per process (so
 * each process's peak resident memory is the method's): held-out quality with a 95% bootstrap
 * interval, trainable parameters, peak memory and tokens/s, printed as one tab-separated row that
 * {@code bench/method-quality.sh} gathers into the tables of {@code docs/methods.md}.
 *
 * <pre>
 * classify DATA.jsonl METHOD [epochs 2] [batch 16] [max_seq_length 64] [max_train 0] [seed 42]
 *     all-MiniLM-L6-v2 on a labelled set with a "split" field (e.g. the Debian sections): macro-F1
 *     and accuracy on its test split; METHOD "untuned" scores the pretrained encoder with a seeded
 *     random head, as evaluation scores the base.
 * lm-base DATA.jsonl DIR [epochs 3]
 *     pretrains a small Llama-layout decoder (4 layers, 64 wide, grouped-query attention, tied
 *     head) on the texts of every label but "net" and saves it in DIR: the base the methods adapt,
 *     since no pretrained causal-LM weights exist offline. Its vocabulary is the MiniLM WordPiece
 *     tokens that occur in DATA, renumbered densely ({@link Vocabulary}): the full 30,522-row
 *     output layer would cost most of each step on two cores and learn nothing for the others.
 * lm DIR DATA.jsonl METHOD [epochs 2] [batch 16] [seed 42]
 *     adapts that base to the "net" texts' train split; held-out perplexity on their test split
 *     (a 95% interval from resampling documents); METHOD "untuned" scores the base.
 * </pre>
 *
 * Methods as in {@code examples/}: full, freeze (top 2 layers), lora (r 8, alpha 16, dropout 0.05
 * on query/value for the classifier, on every linear layer for the decoder, as QLoRA's paper),
 * qlora (the same LoRA on an NF4 base), adapter-houlsby, adapter-pfeiffer (reduction factor 16),
 * prefix (10 tokens), prefix-projection (10 tokens, MLP 128), p-tuning (10 tokens, MLP 128), prompt
 * (10 tokens; from a text for the classifier, from the vocabulary for the decoder), each at its
 * example file's learning rate.
 */
public final class MethodQuality {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String HELD_OUT_DOMAIN = "net";
    private static final int LM_MAX_LENGTH = 64;

    private MethodQuality() {}

    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "classify" -> classify(Arrays.copyOfRange(args, 1, args.length));
            case "lm-base" -> lmBase(Arrays.copyOfRange(args, 1, args.length));
            case "lm" -> lm(Arrays.copyOfRange(args, 1, args.length));
            default -> throw new IllegalArgumentException("unknown task " + args[0]);
        }
    }

    /** The method a benchmark name stands for, with the example files' settings. */
    static FineTuningMethod method(String name, boolean decoder, List<Integer> promptTextIds) {
        FineTuningMethod.Lora lora =
                decoder
                        ? new FineTuningMethod.Lora(
                                8,
                                16f,
                                0.05f,
                                List.of(
                                        "q_proj",
                                        "k_proj",
                                        "v_proj",
                                        "o_proj",
                                        "gate_proj",
                                        "up_proj",
                                        "down_proj"))
                        : FineTuningMethod.Lora.defaults();
        return switch (name) {
            case "full" -> new FineTuningMethod.Full();
            case "freeze" -> new FineTuningMethod.Freeze(2, false, List.of());
            case "lora" -> lora;
            case "qlora" -> new FineTuningMethod.Qlora(lora);
            case "adapter-houlsby" -> FineTuningMethod.Adapter.houlsby();
            case "adapter-pfeiffer" -> FineTuningMethod.Adapter.pfeiffer();
            case "prefix" -> FineTuningMethod.Prefix.of(10);
            case "prefix-projection" -> new FineTuningMethod.Prefix(10, 128);
            case "p-tuning" ->
                    new FineTuningMethod.PTuning(10, FineTuningMethod.PTuning.Encoder.MLP, 128, 0f);
            case "prompt" ->
                    decoder
                            ? new FineTuningMethod.Prompt(
                                    10, FineTuningMethod.Prompt.Init.VOCAB, List.of())
                            : new FineTuningMethod.Prompt(
                                    10,
                                    FineTuningMethod.Prompt.Init.TEXT,
                                    FineTuningMethod.Prompt.textIds(promptTextIds, 10));
            default -> throw new IllegalArgumentException("unknown method " + name);
        };
    }

    /**
     * The learning rate of the method's example file ({@code examples/sentiment-*.json}) for the
     * classifier; for the small decoder, rates that suit a model this size (its base was trained at
     * 5e-3).
     */
    static float learningRate(String name, boolean decoder) {
        if (decoder) {
            return switch (name) {
                case "full", "freeze" -> 1e-3f;
                case "lora", "qlora" -> 5e-3f;
                case "prefix", "prompt" -> 3e-2f;
                default -> 3e-3f;
            };
        }
        return switch (name) {
            case "full" -> 5e-5f;
            case "freeze" -> 5e-4f;
            case "lora", "qlora" -> 2e-3f;
            case "prefix" -> 1e-2f;
            case "prompt" -> 3e-2f;
            default -> 1e-3f;
        };
    }

    private static void classify(String[] args) throws Exception {
        Path data = Path.of(args[0]);
        String name = args[1];
        int epochs = Integer.parseInt(arg(args, 2, "2"));
        int batch = Integer.parseInt(arg(args, 3, "16"));
        int maxLen = Integer.parseInt(arg(args, 4, "64"));
        int maxTrain = Integer.parseInt(arg(args, 5, "0"));
        long seed = Long.parseLong(arg(args, 6, "42"));
        List<String> labels = new ArrayList<>(ClassifierQuality.labelsOf(data));
        List<LabelledText> train = ClassifierQuality.read(data, labels, "train");
        if (maxTrain > 0 && maxTrain < train.size()) {
            train = train.subList(0, maxTrain);
        }
        List<LabelledText> test = ClassifierQuality.read(data, labels, "test");
        EngineRuntime runtime = EngineRuntime.start(0);
        PretrainedModel base = ModelCatalog.resolve(ModelCatalog.MINILM_L6);
        try (HuggingFaceTokenizer tokenizer = tokenizer(base, maxLen);
                Model model =
                        Model.newInstance("quality", runtime.device(), EngineRuntime.ENGINE)) {
            Engine.getInstance().setRandomSeed((int) seed);
            SequenceClassifier classifier =
                    ClassifierQuality.classifier(
                            model, base, labels.size(), ClassifierHead.MEAN, maxLen);
            ClassifierTrainer trainer = new ClassifierTrainer(tokenizer);
            Run run = Run.untuned(classifier);
            if (!name.equals("untuned")) {
                List<Integer> textIds = new ArrayList<>();
                for (long id :
                        tokenizer.encode("Which Debian section is this package in?").getIds()) {
                    textIds.add((int) id);
                }
                ParameterCounts counts =
                        method(name, false, textIds).apply(classifier, model.getNDManager());
                List<TrainingListener.StepReport> steps = new ArrayList<>();
                TrainingOutcome outcome =
                        trainer.train(
                                model,
                                classifier,
                                train,
                                settings(epochs, batch, learningRate(name, false), maxLen, seed),
                                Validation.none(),
                                steps::add,
                                Checkpointing.none());
                run = Run.of(counts, steps, outcome);
            }
            int[] truth = test.stream().mapToInt(LabelledText::label).toArray();
            int[] predicted =
                    ClassifierQuality.predictions(trainer, model, classifier, test, maxLen);
            double[] f1 = ClassifierQuality.bootstrap(truth, predicted, labels.size(), true);
            double[] acc = ClassifierQuality.bootstrap(truth, predicted, labels.size(), false);
            run.print(
                    name,
                    String.format(
                            Locale.ROOT,
                            "%.3f [%.3f, %.3f]\t%.3f [%.3f, %.3f]",
                            f1[0],
                            f1[1],
                            f1[2],
                            acc[0],
                            acc[1],
                            acc[2]));
        }
    }

    private static void lmBase(String[] args) throws Exception {
        Path data = Path.of(args[0]);
        Path dir = Path.of(args[1]);
        int epochs = Integer.parseInt(arg(args, 2, "3"));
        EngineRuntime runtime = EngineRuntime.start(0);
        List<LmExample> corpus = new ArrayList<>();
        Vocabulary vocabulary = Vocabulary.of(data);
        for (JsonNode n : records(data)) {
            if (!n.path("label").asText().equals(HELD_OUT_DOMAIN)
                    && !n.path("split").asText().equals("test")) {
                corpus.add(LmExample.of(vocabulary.ids(n.path("text").asText())));
            }
        }
        LlamaConfig config =
                LlamaConfig.parse(
                        "{\"model_type\": \"llama\", \"vocab_size\": "
                                + vocabulary.size()
                                + ", \"hidden_size\": 64,"
                                + " \"intermediate_size\": 172, \"num_hidden_layers\": 4,"
                                + " \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
                                + " \"max_position_embeddings\": 128, \"rms_norm_eps\": 1e-6,"
                                + " \"hidden_act\": \"silu\", \"bos_token_id\": 1,"
                                + " \"eos_token_id\": 2, \"rope_theta\": 10000.0,"
                                + " \"tie_word_embeddings\": true}");
        Path random = Files.createTempDirectory("method-quality-random");
        LlamaCheckpoint.saveRandom(config, random, 1, 0.02);
        try (Model model = CausalLmCheckpoint.load(random, runtime.device())) {
            CausalLanguageModel lm = (CausalLanguageModel) model.getBlock();
            new FineTuningMethod.Full().apply(lm, model.getNDManager());
            long started = System.nanoTime();
            TrainingOutcome outcome =
                    new CausalLmTrainer()
                            .train(
                                    model,
                                    lm,
                                    corpus,
                                    settings(epochs, 16, 5e-3f, LM_MAX_LENGTH, 42),
                                    r -> {
                                        if (r.step() % 20 == 0) {
                                            System.err.printf(
                                                    Locale.ROOT,
                                                    "step %d/%d loss %.3f%n",
                                                    r.step(),
                                                    r.totalSteps(),
                                                    r.loss());
                                        }
                                    });
            CausalLmCheckpoint.save(lm, dir, Dtype.F32);
            System.out.printf(
                    Locale.ROOT,
                    "base: %d documents, %d steps in %.0f s, last epoch's loss %.3f, saved to %s%n",
                    corpus.size(),
                    outcome.steps(),
                    (System.nanoTime() - started) / 1e9,
                    outcome.finalLoss(),
                    dir);
        }
    }

    private static void lm(String[] args) throws Exception {
        Path baseDir = Path.of(args[0]);
        Path data = Path.of(args[1]);
        String name = args[2];
        int epochs = Integer.parseInt(arg(args, 3, "2"));
        int batch = Integer.parseInt(arg(args, 4, "16"));
        long seed = Long.parseLong(arg(args, 5, "42"));
        List<LmExample> train = new ArrayList<>();
        List<LmExample> test = new ArrayList<>();
        Vocabulary vocabulary = Vocabulary.of(data);
        for (JsonNode n : records(data)) {
            if (n.path("label").asText().equals(HELD_OUT_DOMAIN)) {
                String split = n.path("split").asText();
                LmExample e = LmExample.of(vocabulary.ids(n.path("text").asText()));
                if (split.equals("train")) {
                    train.add(e);
                } else if (split.equals("test")) {
                    test.add(e);
                }
            }
        }
        EngineRuntime runtime = EngineRuntime.start(0);
        try (Model model = CausalLmCheckpoint.load(baseDir, runtime.device())) {
            Engine.getInstance().setRandomSeed((int) seed);
            CausalLanguageModel lm = (CausalLanguageModel) model.getBlock();
            Run run = Run.untuned(lm);
            if (!name.equals("untuned")) {
                ParameterCounts counts =
                        method(name, true, List.of()).apply(lm, model.getNDManager());
                List<TrainingListener.StepReport> steps = new ArrayList<>();
                TrainingOutcome outcome =
                        new CausalLmTrainer()
                                .train(
                                        model,
                                        lm,
                                        train,
                                        settings(
                                                epochs,
                                                batch,
                                                learningRate(name, true),
                                                LM_MAX_LENGTH,
                                                seed),
                                        Validation.none(),
                                        steps::add,
                                        Checkpointing.none());
                run = Run.of(counts, steps, outcome);
            }
            double[][] perDocument = new double[test.size()][];
            for (int i = 0; i < test.size(); i++) {
                perDocument[i] = lossAndTokens(model, lm, test.get(i));
            }
            double[] ppl = perplexity(perDocument);
            run.print(
                    name, String.format(Locale.ROOT, "%.1f [%.1f, %.1f]", ppl[0], ppl[1], ppl[2]));
        }
    }

    /** The summed next-token loss of one document and the number of tokens it scored. */
    private static double[] lossAndTokens(Model model, CausalLanguageModel lm, LmExample e) {
        try (NDManager m = model.getNDManager().newSubManager()) {
            Shape s = new Shape(1, e.inputIds().length);
            NDArray logits =
                    lm.forward(
                                    new ParameterStore(m, false),
                                    new NDList(m.create(e.inputIds(), s)),
                                    false)
                            .singletonOrThrow();
            NDArray[] sc = CausalLmLoss.sumAndCount(logits, m.create(e.labels(), s));
            return new double[] {sc[0].getFloat(), sc[1].getFloat()};
        }
    }

    /**
     * exp(total loss / total tokens) over the documents, then the 2.5% and 97.5% percentiles over
     * 1000 resamples of the documents.
     */
    static double[] perplexity(double[][] perDocument) {
        int n = perDocument.length;
        double[] samples = new double[1000];
        Random random = new Random(7);
        for (int s = 0; s < samples.length; s++) {
            double loss = 0;
            double tokens = 0;
            for (int i = 0; i < n; i++) {
                double[] d = perDocument[random.nextInt(n)];
                loss += d[0];
                tokens += d[1];
            }
            samples[s] = Math.exp(loss / tokens);
        }
        Arrays.sort(samples);
        double loss = 0;
        double tokens = 0;
        for (double[] d : perDocument) {
            loss += d[0];
            tokens += d[1];
        }
        return new double[] {Math.exp(loss / tokens), samples[24], samples[974]};
    }

    private static TrainingSettings settings(
            int epochs, int batch, float lr, int maxLen, long seed) {
        return new TrainingSettings(
                epochs,
                batch,
                lr,
                0.01f,
                0.06f,
                1f,
                maxLen,
                seed,
                LearningRateSchedule.Shape.LINEAR,
                1);
    }

    /** What a run reports besides its quality. */
    private record Run(long trainable, long total, long steps, double tokensPerSecond) {
        static Run untuned(TunableModel model) {
            ParameterCounts counts = ParameterCounts.of(model);
            return new Run(0, counts.total(), 0, 0);
        }

        static Run of(
                ParameterCounts counts,
                List<TrainingListener.StepReport> steps,
                TrainingOutcome outcome) {
            return new Run(
                    counts.trainable(),
                    counts.total(),
                    outcome.steps(),
                    steps.isEmpty() ? 0 : steps.get(steps.size() - 1).tokensPerSecond());
        }

        /** method, trainable, total, steps, peak MiB, tokens/s, quality columns. */
        void print(String method, String quality) throws IOException {
            System.out.printf(
                    Locale.ROOT,
                    "ROW\t%s\t%d\t%d\t%d\t%d\t%.0f\t%s%n",
                    method,
                    trainable,
                    total,
                    steps,
                    peakResidentMiB(),
                    tokensPerSecond,
                    quality);
        }
    }

    /**
     * MiniLM's WordPiece tokens renumbered densely over every text of a file: 0 padding, 1 and 2
     * the [CLS] and [SEP] every text starts and ends with (the decoder's BOS and EOS), then the
     * others in order of first appearance. Deterministic for a file, so the base and every method
     * see the same ids.
     */
    record Vocabulary(HuggingFaceTokenizer tokenizer, Map<Long, Long> dense) {
        static Vocabulary of(Path data) throws IOException {
            HuggingFaceTokenizer tokenizer =
                    MethodQuality.tokenizer(
                            ModelCatalog.resolve(ModelCatalog.MINILM_L6), LM_MAX_LENGTH);
            Map<Long, Long> dense = new java.util.LinkedHashMap<>();
            dense.put(0L, 0L);
            dense.put(101L, 1L);
            dense.put(102L, 2L);
            for (JsonNode n : records(data)) {
                for (long id : tokenizer.encode(n.path("text").asText()).getIds()) {
                    dense.putIfAbsent(id, (long) dense.size());
                }
            }
            return new Vocabulary(tokenizer, dense);
        }

        long[] ids(String text) {
            return Arrays.stream(tokenizer.encode(text).getIds()).map(dense::get).toArray();
        }

        int size() {
            return dense.size();
        }
    }

    /** The process's peak resident memory (VmHWM): the JVM, libtorch and the model. */
    static long peakResidentMiB() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmHWM:")) {
                return Long.parseLong(line.replaceAll("\\D", "")) / 1024;
            }
        }
        return -1;
    }

    private static HuggingFaceTokenizer tokenizer(PretrainedModel base, int maxLen)
            throws IOException {
        try (InputStream in = base.tokenizer().open()) {
            return HuggingFaceTokenizer.newInstance(
                    in, Map.of("truncation", "true", "maxLength", Integer.toString(maxLen)));
        }
    }

    private static List<JsonNode> records(Path file) throws IOException {
        List<JsonNode> out = new ArrayList<>();
        for (String line : Files.readAllLines(file)) {
            if (!line.isBlank()) {
                out.add(JSON.readTree(line));
            }
        }
        return out;
    }

    private static String arg(String[] args, int i, String fallback) {
        return args.length > i ? args[i] : fallback;
    }
}
