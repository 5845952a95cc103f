package io.tuneline.common.job;

import io.tuneline.common.store.S3Uri;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.Hyperparameters;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.LoraParams;
import io.tuneline.proto.v1.MethodSpec;
import io.tuneline.proto.v1.ScenarioSpec;
import io.tuneline.proto.v1.SplitSpec;
import io.tuneline.proto.v1.Task;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * Checks a {@link JobRequested} for what the schema cannot say: required fields, ranges, and
 * combinations. Every problem is reported at once, each with its field path, so a user fixes the
 * job file in one go.
 */
public final class JobSpecValidator {
    /**
     * Job ids become parts of object keys and Kubernetes object names, so they follow RFC 1123
     * label rules (Kubernetes "DNS label names").
     */
    public static final Pattern JOB_ID = Pattern.compile("[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?");

    private static final double SPLIT_TOLERANCE = 1e-6;

    private JobSpecValidator() {}

    /** The problems of {@code job}; empty when it is valid. */
    public static List<String> problems(JobRequested job) {
        List<String> p = new ArrayList<>();
        if (!JOB_ID.matcher(job.getJobId()).matches()) {
            p.add(
                    "job_id: '"
                            + job.getJobId()
                            + "' is not a valid job id; use 1-63 characters of [a-z0-9-],"
                            + " starting and ending with a letter or digit");
        }
        if (job.getBaseModel().getRef().isBlank()) {
            p.add(
                    "base_model.ref: missing; name a catalogue model (e.g. minilm-l6), a path or s3://");
        }
        if (job.getTask() == Task.TASK_UNSPECIFIED || job.getTask() == Task.UNRECOGNIZED) {
            p.add("task: missing; use TASK_SEQUENCE_CLASSIFICATION or TASK_CAUSAL_LM");
        }
        dataset(job.getDataset(), p);
        split(job.getSplit(), p);
        hyperparameters(job.getHyperparameters(), p);
        method("method", job.getMethod(), p);
        if (job.getMethod().getLearningRate() != 0) {
            p.add(
                    "method.learning_rate: only for the methods of compare_methods; set"
                            + " hyperparameters.learning_rate instead");
        }
        compareMethods(job, p);
        if (job.getEvaluation().hasScenario()) {
            scenario(job.getEvaluation().getScenario(), p);
        }
        if (job.getResources().getGpus() < 0) {
            p.add("resources.gpus: must not be negative");
        }
        return p;
    }

    /** Throws {@link InvalidJobException} listing every problem of {@code job}. */
    public static void requireValid(JobRequested job) {
        List<String> problems = problems(job);
        if (!problems.isEmpty()) {
            throw new InvalidJobException(job.getJobId(), problems);
        }
    }

    private static void dataset(DatasetSpec d, List<String> p) {
        switch (d.getSourceCase()) {
            case URI -> {
                String uri = d.getUri();
                if (!(uri.startsWith("s3://")
                        || uri.startsWith("http://")
                        || uri.startsWith("https://"))) {
                    p.add("dataset.uri: '" + uri + "' must start with s3://, http:// or https://");
                }
            }
            case INLINE -> {
                if (d.getInline().getRecordsCount() == 0) {
                    p.add("dataset.inline.records: empty; give at least one record");
                }
            }
            case SOURCE_NOT_SET -> p.add("dataset: no source; set dataset.uri or dataset.inline");
        }
        double maxBad = d.getBadRecords().getMaxBadFraction();
        if (maxBad < 0 || maxBad > 1) {
            p.add("dataset.bad_records.max_bad_fraction: " + maxBad + " is outside 0..1");
        }
    }

    private static void split(SplitSpec s, List<String> p) {
        double train = s.getTrain();
        double validation = s.getValidation();
        double test = s.getTest();
        if (train == 0 && validation == 0 && test == 0) {
            return;
        }
        if (train < 0 || validation < 0 || test < 0) {
            p.add("split: fractions must not be negative");
        }
        double sum = train + validation + test;
        if (Math.abs(sum - 1.0) > SPLIT_TOLERANCE) {
            p.add("split: train + validation + test = " + sum + "; they must sum to 1");
        }
        if (train <= 0) {
            p.add("split.train: must be positive");
        }
    }

    private static void hyperparameters(Hyperparameters h, List<String> p) {
        if (h.getEpochs() < 0) {
            p.add("hyperparameters.epochs: must not be negative");
        }
        if (h.getMaxSteps() < 0) {
            p.add("hyperparameters.max_steps: must not be negative");
        }
        if (h.getBatchSize() < 0) {
            p.add("hyperparameters.batch_size: must not be negative");
        }
        if (h.getGradientAccumulationSteps() < 0) {
            p.add("hyperparameters.gradient_accumulation_steps: must not be negative");
        }
        if (h.getLearningRate() < 0 || Double.isNaN(h.getLearningRate())) {
            p.add("hyperparameters.learning_rate: must be a positive number");
        }
        if (h.getWarmupRatio() < 0 || h.getWarmupRatio() >= 1) {
            p.add("hyperparameters.warmup_ratio: " + h.getWarmupRatio() + " is outside [0, 1)");
        }
        if (h.getMaxSeqLength() < 0) {
            p.add("hyperparameters.max_seq_length: must not be negative");
        }
        if (h.hasModelDropout()) {
            probability("hyperparameters.model_dropout", h.getModelDropout(), p);
        }
        oneOf(
                "hyperparameters.classifier_head",
                h.getClassifierHead(),
                List.of("mean", "cls_pooler"),
                p);
        oneOf(
                "hyperparameters.precision",
                h.getPrecision(),
                List.of("auto", "fp32", "bf16", "fp16"),
                p);
    }

    /**
     * A comparison needs two or more distinct methods and no {@code method} beside them; each
     * method is checked as {@code method} is, at its own index.
     */
    private static void compareMethods(JobRequested job, List<String> p) {
        int n = job.getCompareMethodsCount();
        if (n == 0) {
            return;
        }
        if (job.hasMethod()) {
            p.add(
                    "method and compare_methods: both set; give one method in method, or the"
                            + " methods to compare in compare_methods");
        }
        if (n == 1) {
            p.add(
                    "compare_methods: one method is no comparison; list two or more, or set method"
                            + " instead");
        }
        List<MethodSpec> methods = job.getCompareMethodsList();
        for (int i = 0; i < n; i++) {
            MethodSpec m = methods.get(i);
            method("compare_methods[" + i + "]", m, p);
            if (m.getLearningRate() < 0 || Double.isNaN(m.getLearningRate())) {
                p.add("compare_methods[" + i + "].learning_rate: must be a positive number");
            }
            int first = methods.indexOf(m);
            if (first < i) {
                p.add(
                        "compare_methods["
                                + i
                                + "]: the same "
                                + ComparedMethods.kindName(m)
                                + " method and parameters as compare_methods["
                                + first
                                + "]; each method is trained once, remove one or change its"
                                + " parameters");
            }
        }
    }

    private static void method(String path, MethodSpec m, List<String> p) {
        switch (m.getKindCase()) {
            case LORA -> lora(path + ".lora", m.getLora(), p);
            case QLORA -> {
                lora(path + ".qlora.lora", m.getQlora().getLora(), p);
                int bits = m.getQlora().getBits();
                if (bits != 0 && bits != 4) {
                    p.add(path + ".qlora.bits: " + bits + " is not supported; use 4 (NF4)");
                }
                int block = m.getQlora().getBlockSize();
                // bitsandbytes' blocksizes (quantize_4bit): powers of two from 32 to 4096.
                if (block != 0 && (block < 32 || block > 4096 || Integer.bitCount(block) != 1)) {
                    p.add(
                            path
                                    + ".qlora.block_size: "
                                    + block
                                    + " is not supported; use a power of two from 32 to 4096"
                                    + " (default 64)");
                }
                if (m.getQlora().getDoubleQuant() && m.getQlora().getDisableDoubleQuant()) {
                    p.add(
                            path
                                    + ".qlora: double_quant and disable_double_quant are both set;"
                                    + " set at most one");
                }
            }
            case ADAPTER -> {
                var a = m.getAdapter();
                nonNegative(path + ".adapter.bottleneck_size", a.getBottleneckSize(), p);
                nonNegative(path + ".adapter.reduction_factor", a.getReductionFactor(), p);
                oneOf(
                        path + ".adapter.placement",
                        a.getPlacement(),
                        List.of("pfeiffer", "houlsby", "seq_bn", "double_seq_bn"),
                        p);
                oneOf(
                        path + ".adapter.activation",
                        a.getActivation(),
                        List.of("relu", "swish", "silu", "gelu", "gelu_new", "tanh"),
                        p);
                probability(path + ".adapter.dropout", a.getDropout(), p);
            }
            case PREFIX -> {
                nonNegative(
                        path + ".prefix.num_virtual_tokens",
                        m.getPrefix().getNumVirtualTokens(),
                        p);
                nonNegative(
                        path + ".prefix.projection_hidden_size",
                        m.getPrefix().getProjectionHiddenSize(),
                        p);
            }
            case PROMPT -> {
                var t = m.getPrompt();
                nonNegative(path + ".prompt.num_virtual_tokens", t.getNumVirtualTokens(), p);
                oneOf(path + ".prompt.init", t.getInit(), List.of("random", "vocab", "text"), p);
                if (t.getInit().equalsIgnoreCase("text") && t.getInitText().isBlank()) {
                    p.add(path + ".prompt.init: \"text\" needs method.prompt.init_text");
                }
                if (!t.getInitText().isBlank()
                        && !t.getInit().isEmpty()
                        && !t.getInit().equalsIgnoreCase("text")) {
                    p.add(
                            path
                                    + ".prompt.init_text: set, but init is \""
                                    + t.getInit()
                                    + "\"; drop one of them");
                }
            }
            case P_TUNING -> {
                var t = m.getPTuning();
                nonNegative(path + ".p_tuning.num_virtual_tokens", t.getNumVirtualTokens(), p);
                nonNegative(path + ".p_tuning.encoder_hidden_size", t.getEncoderHiddenSize(), p);
                oneOf(
                        path + ".p_tuning.encoder_type",
                        t.getEncoderType(),
                        List.of("mlp", "lstm"),
                        p);
                probability(path + ".p_tuning.encoder_dropout", t.getEncoderDropout(), p);
            }
            case FREEZE -> {
                if (m.getFreeze().getTrainTopLayers() < 0) {
                    p.add(path + ".freeze.train_top_layers: must not be negative");
                }
            }
            case FULL, KIND_NOT_SET -> {}
        }
    }

    private static void scenario(ScenarioSpec s, List<String> p) {
        String path = "evaluation.scenario.";
        nonNegative(path + "max_requests", s.getMaxRequests(), p);
        nonNegative(path + "concurrency", s.getConcurrency(), p);
        nonNegative(path + "max_tokens", s.getMaxTokens(), p);
        if (s.getRatePerSecond() < 0) {
            p.add(path + "rate_per_second: " + s.getRatePerSecond() + " must not be negative");
        }
        if (s.getMaxP95LatencyMs() < 0) {
            p.add(path + "max_p95_latency_ms: " + s.getMaxP95LatencyMs() + " must not be negative");
        }
        share(path + "max_error_rate", s.getMaxErrorRate(), p);
        share(path + "min_agreement", s.getMinAgreement(), p);
        if (!s.getRequests().isBlank()) {
            try {
                S3Uri.parse(s.getRequests());
            } catch (IllegalArgumentException e) {
                p.add(path + "requests: " + e.getMessage());
            }
        }
    }

    private static void share(String path, double value, List<String> p) {
        if (value < 0 || value > 1) {
            p.add(path + ": " + value + " is outside [0, 1]");
        }
    }

    private static void nonNegative(String path, long value, List<String> p) {
        if (value < 0) {
            p.add(path + ": " + value + " must not be negative");
        }
    }

    private static void probability(String path, double value, List<String> p) {
        if (value < 0 || value >= 1) {
            p.add(path + ": " + value + " is outside [0, 1)");
        }
    }

    /** An optional choice: empty means the default; otherwise one of {@code allowed}, any case. */
    private static void oneOf(String path, String value, List<String> allowed, List<String> p) {
        if (!value.isEmpty() && !allowed.contains(value.toLowerCase(Locale.ROOT))) {
            p.add(path + ": \"" + value + "\" is not one of " + String.join(", ", allowed));
        }
    }

    private static void lora(String path, LoraParams l, List<String> p) {
        if (l.getRank() < 0) {
            p.add(path + ".rank: must not be negative");
        }
        if (l.getDropout() < 0 || l.getDropout() >= 1) {
            p.add(path + ".dropout: " + l.getDropout() + " is outside [0, 1)");
        }
        if (!l.getTargetModulesRegex().isEmpty()) {
            if (l.getTargetModulesCount() > 0) {
                p.add(
                        path
                                + ".target_modules_regex: set together with target_modules;"
                                + " give one of them");
            }
            try {
                java.util.regex.Pattern.compile(l.getTargetModulesRegex());
            } catch (java.util.regex.PatternSyntaxException e) {
                p.add(
                        path
                                + ".target_modules_regex: not a regular expression ("
                                + e.getDescription()
                                + ")");
            }
        }
    }
}
