package io.tuneline.engine.bench;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.model.ClassifierHead;
import io.tuneline.engine.model.SequenceClassifier;
import io.tuneline.engine.model.bert.BertEncoder;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.ClassifierTrainer;
import io.tuneline.engine.train.LabelledText;
import io.tuneline.engine.train.TrainingSettings;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.TreeSet;

/**
 * Held-out quality of all-MiniLM-L6-v2 as a classifier on a labelled JSON Lines dataset ({@code
 * {"text", "label"}} per line; one file whose {@code "split"} field says train or test, or a train
 * and a test file), untuned (pretrained encoder, seeded random head: what evaluation scores as the
 * base model) and after LoRA (the job defaults: r 8, alpha 16, dropout 0.05 on query/value; AdamW,
 * linear schedule, warm-up 0.06, weight decay 0.01), with the mean or the Hugging Face head. Prints
 * accuracy and macro-F1 with percentile-bootstrap 95% intervals (1000 resamples of the test set).
 *
 * <pre>
 * java ... io.tuneline.engine.bench.ClassifierQuality DATA.jsonl | TRAIN.jsonl TEST.jsonl \
 *     [head mean|cls_pooler] [epochs 3] [batch 16] [lr 2e-4] [max_seq_length 128] [seed 42] \
 *     [max_train 0 = all]
 * </pre>
 */
public final class ClassifierQuality {
    private static final ObjectMapper JSON = new ObjectMapper();

    private ClassifierQuality() {}

    public static void main(String[] args) throws Exception {
        Path trainFile = Path.of(args[0]);
        // One file with a "split" field (train / validation / test), or a train and a test file.
        boolean twoFiles = args.length > 1 && args[1].endsWith(".jsonl");
        int o = twoFiles ? 1 : 0;
        ClassifierHead head = ClassifierHead.parse(arg(args, 1 + o, "mean"));
        int epochs = Integer.parseInt(arg(args, 2 + o, "3"));
        int batch = Integer.parseInt(arg(args, 3 + o, "16"));
        float lr = Float.parseFloat(arg(args, 4 + o, "2e-4"));
        int maxLen = Integer.parseInt(arg(args, 5 + o, "128"));
        long seed = Long.parseLong(arg(args, 6 + o, "42"));
        int maxTrain = Integer.parseInt(arg(args, 7 + o, "0"));

        List<String> labels = new ArrayList<>(labelsOf(trainFile));
        List<LabelledText> train = read(trainFile, labels, twoFiles ? null : "train");
        if (maxTrain > 0 && maxTrain < train.size()) {
            // The first records in file order: a budget for slow machines (the builders shuffle).
            train = train.subList(0, maxTrain);
        }
        List<LabelledText> test =
                twoFiles ? read(Path.of(args[1]), labels, null) : read(trainFile, labels, "test");
        System.out.printf(
                Locale.ROOT,
                "labels %s; train %d, test %d; head %s, epochs %d, batch %d, lr %s, max_seq_length"
                        + " %d, seed %d%n",
                labels,
                train.size(),
                test.size(),
                head.jobName(),
                epochs,
                batch,
                lr,
                maxLen,
                seed);
        EngineRuntime runtime = EngineRuntime.start(0);
        PretrainedModel base = ModelCatalog.resolve(ModelCatalog.MINILM_L6);
        HuggingFaceTokenizer tokenizer;
        try (InputStream in = base.tokenizer().open()) {
            tokenizer =
                    HuggingFaceTokenizer.newInstance(
                            in,
                            Map.of("truncation", "true", "maxLength", Integer.toString(maxLen)));
        }
        for (boolean tune : new boolean[] {false, true}) {
            try (Model model =
                    Model.newInstance("quality", runtime.device(), EngineRuntime.ENGINE)) {
                ai.djl.engine.Engine.getInstance().setRandomSeed((int) seed);
                SequenceClassifier classifier =
                        classifier(model, base, labels.size(), head, maxLen);
                ClassifierTrainer trainer = new ClassifierTrainer(tokenizer);
                long started = System.nanoTime();
                String what = "untuned (random head)";
                if (tune) {
                    ParameterCounts counts =
                            FineTuningMethod.Lora.defaults()
                                    .apply(classifier, model.getNDManager());
                    trainer.train(
                            model,
                            classifier,
                            train,
                            new TrainingSettings(epochs, batch, lr, 0.01f, 0.06f, 1f, maxLen, seed),
                            r -> {});
                    what =
                            String.format(
                                    Locale.ROOT,
                                    "LoRA r8 q/v, %,d of %,d trainable, %.0f s",
                                    counts.trainable(),
                                    counts.total(),
                                    (System.nanoTime() - started) / 1e9);
                }
                int[] truth = test.stream().mapToInt(LabelledText::label).toArray();
                int[] predicted = predictions(trainer, model, classifier, test, maxLen);
                double[] acc = bootstrap(truth, predicted, labels.size(), false);
                double[] f1 = bootstrap(truth, predicted, labels.size(), true);
                System.out.printf(
                        Locale.ROOT,
                        "%-6s %-50s accuracy %.3f [%.3f, %.3f]  macro-F1 %.3f [%.3f, %.3f]%n",
                        head.jobName(),
                        what,
                        acc[0],
                        acc[1],
                        acc[2],
                        f1[0],
                        f1[1],
                        f1[2]);
            }
        }
        tokenizer.close();
    }

    /**
     * {@code base}'s pretrained encoder with a new head of {@code labels} classes (random, from the
     * engine's generator) as {@code model}'s block, for inputs of up to {@code maxLen} tokens.
     */
    static SequenceClassifier classifier(
            Model model, PretrainedModel base, int labels, ClassifierHead head, int maxLen)
            throws IOException {
        SequenceClassifier classifier =
                new SequenceClassifier(new BertEncoder(base.config()), labels, 0.1f, head);
        classifier.initialize(
                model.getNDManager(), DataType.FLOAT32, new Shape(1, maxLen), new Shape(1, maxLen));
        base.loadInto(classifier);
        model.setBlock(classifier);
        return classifier;
    }

    /** The most probable label of each test text. */
    static int[] predictions(
            ClassifierTrainer trainer,
            Model model,
            SequenceClassifier classifier,
            List<LabelledText> test,
            int maxLen) {
        float[][] probs =
                trainer.predict(
                        model, classifier, test.stream().map(LabelledText::text).toList(), maxLen);
        int[] predicted = new int[probs.length];
        for (int i = 0; i < probs.length; i++) {
            for (int j = 1; j < probs[i].length; j++) {
                if (probs[i][j] > probs[i][predicted[i]]) {
                    predicted[i] = j;
                }
            }
        }
        return predicted;
    }

    private static String arg(String[] args, int i, String fallback) {
        return args.length > i ? args[i] : fallback;
    }

    static TreeSet<String> labelsOf(Path file) throws IOException {
        TreeSet<String> labels = new TreeSet<>();
        for (String line : Files.readAllLines(file)) {
            if (!line.isBlank()) {
                labels.add(JSON.readTree(line).path("label").asText());
            }
        }
        return labels;
    }

    /** The records of {@code split} (every record when null). */
    static List<LabelledText> read(Path file, List<String> labels, String split)
            throws IOException {
        List<LabelledText> out = new ArrayList<>();
        for (String line : Files.readAllLines(file)) {
            if (line.isBlank()) {
                continue;
            }
            JsonNode n = JSON.readTree(line);
            if (split != null && !split.equals(n.path("split").asText())) {
                continue;
            }
            int label = labels.indexOf(n.path("label").asText());
            if (label < 0) {
                throw new IllegalArgumentException(file + ": unknown label in " + line);
            }
            out.add(new LabelledText(n.path("text").asText(), label));
        }
        return out;
    }

    /** The metric on the whole set, then the 2.5% and 97.5% percentiles over resamples. */
    static double[] bootstrap(int[] truth, int[] predicted, int k, boolean macroF1) {
        int n = truth.length;
        double whole = metric(truth, predicted, k, macroF1, null);
        Random random = new Random(7);
        double[] samples = new double[1000];
        int[] pick = new int[n];
        for (int s = 0; s < samples.length; s++) {
            for (int i = 0; i < n; i++) {
                pick[i] = random.nextInt(n);
            }
            samples[s] = metric(truth, predicted, k, macroF1, pick);
        }
        java.util.Arrays.sort(samples);
        return new double[] {whole, samples[24], samples[974]};
    }

    private static double metric(int[] truth, int[] predicted, int k, boolean macroF1, int[] pick) {
        int n = pick == null ? truth.length : pick.length;
        long[] tp = new long[k];
        long[] fp = new long[k];
        long[] fn = new long[k];
        long correct = 0;
        for (int s = 0; s < n; s++) {
            int i = pick == null ? s : pick[s];
            if (truth[i] == predicted[i]) {
                correct++;
                tp[truth[i]]++;
            } else {
                fp[predicted[i]]++;
                fn[truth[i]]++;
            }
        }
        if (!macroF1) {
            return (double) correct / n;
        }
        double sum = 0;
        for (int c = 0; c < k; c++) {
            double denominator = 2.0 * tp[c] + fp[c] + fn[c];
            sum += denominator == 0 ? 0 : 2.0 * tp[c] / denominator;
        }
        return sum / k;
    }
}
