package io.tuneline.training.worker;

import ai.djl.Model;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.engine.catalog.ModelCatalog;
import io.tuneline.engine.catalog.PretrainedModel;
import io.tuneline.engine.method.FineTuningMethod;
import io.tuneline.engine.method.JobMethods;
import io.tuneline.engine.method.ParameterCounts;
import io.tuneline.engine.method.Precision;
import io.tuneline.engine.model.CausalLanguageModel;
import io.tuneline.engine.model.CausalLmCheckpoint;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.CausalLmTrainer;
import io.tuneline.engine.train.Checkpointing;
import io.tuneline.engine.train.LmExample;
import io.tuneline.engine.train.TrainingOutcome;
import io.tuneline.engine.train.TrainingSettings;
import io.tuneline.engine.train.Validation;
import io.tuneline.proto.v1.ArtifactRef;
import io.tuneline.proto.v1.DatasetPrepared;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.Task;
import io.tuneline.proto.v1.TrainingCompleted;
import io.tuneline.training.run.RunStore;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.function.BooleanSupplier;

/**
 * One training attempt of a causal language-modelling job: a GPT-2 or Llama-family (Llama, Mistral,
 * Qwen2, Qwen3) base model (a Hugging Face directory, local or in the store) fine-tuned with the
 * full, freeze, LoRA or QLoRA method on the packed training blocks ({@code
 * {"input_ids","labels","examples"}}), the validation loss measured on the validation split (one
 * example per line), progress and checkpoints as in {@link ClassificationRun}. The tuned model is
 * written as a Hugging Face directory ({@code config.json}, {@code model.safetensors} with LoRA
 * merged, in BF16 when the base is stored in BF16, the base model's {@code tokenizer.json}) and,
 * for LoRA, the PEFT adapter under {@code adapter/}.
 */
public final class CausalLmRun {
    private final ArtifactStore store;
    private final ProgressSink progress;
    private final Path scratch;
    private final BooleanSupplier stopRequested;

    public CausalLmRun(ArtifactStore store, ProgressSink progress, Path scratch) {
        this(store, progress, scratch, () -> false);
    }

    public CausalLmRun(
            ArtifactStore store,
            ProgressSink progress,
            Path scratch,
            BooleanSupplier stopRequested) {
        this.store = store;
        this.progress = progress;
        this.scratch = scratch;
        this.stopRequested = stopRequested;
    }

    public TrainingCompleted run(String jobId, int attempt) throws IOException {
        RunStore runs = new RunStore(store);
        DatasetPrepared input = runs.input(jobId);
        JobRequested job = input.getJob();
        if (job.getTask() != Task.TASK_CAUSAL_LM) {
            throw new IllegalArgumentException(
                    "task " + job.getTask() + " is not causal language modelling");
        }
        Files.createDirectories(scratch);
        List<LmExample> train = read(input.getTrain(), "train");
        List<LmExample> validationSplit =
                input.getValidation().getUri().isEmpty()
                        ? List.of()
                        : read(input.getValidation(), "validation");
        Validation<LmExample> validation =
                new Validation<>(
                        validationSplit,
                        Math.max(0, job.getHyperparameters().getEvalEverySteps()),
                        Math.max(0, job.getHyperparameters().getEarlyStoppingPatience()));
        TrainingSettings settings = JobSettings.settings(job.getHyperparameters(), job.getMethod());
        String ref = job.getBaseModel().getRef();
        StartupMarks.mark("data read");
        PretrainedModel base = ModelCatalog.resolve(ref, store::download, scratch);
        StartupMarks.mark("base model fetched");
        JobSettings.requireMergedBase(ref, base);
        if (base.architecture() != PretrainedModel.Architecture.GPT2
                && base.architecture() != PretrainedModel.Architecture.LLAMA) {
            throw new IllegalArgumentException(
                    "base model '"
                            + ref
                            + "' is "
                            + base.architecture()
                            + "; causal language modelling needs a GPT-2 or Llama-family"
                            + " (llama, mistral, qwen2, qwen3) model directory"
                            + " (config.json, model.safetensors, tokenizer.json)");
        }
        Path baseDir = base.directory().orElseThrow();

        long started = System.currentTimeMillis();
        EngineRuntime runtime = EngineRuntime.start(0);
        StartupMarks.mark("libtorch loaded");
        try (Model model =
                CausalLmCheckpoint.load(
                        baseDir,
                        runtime.device(),
                        JobSettings.modelDropout(job.getHyperparameters()),
                        // QLoRA: the base is quantized as it is read, never whole in fp32.
                        JobMethods.nf4Loading(job.getMethod()))) {
            CausalLanguageModel lm = (CausalLanguageModel) model.getBlock();
            StartupMarks.mark("model loaded");
            // LoRA matrices start random: seeding first makes the same job train the same model.
            ai.djl.engine.Engine.getInstance().setRandomSeed((int) settings.seed());
            FineTuningMethod method =
                    JobSettings.method(
                            job.getMethod(),
                            lm.defaultLoraTargets(),
                            text -> tokenIds(baseDir, text));
            ParameterCounts counts = method.apply(lm, model.getNDManager());

            Attempt run =
                    new Attempt(
                            store, progress, jobId, input.getJobId(), attempt, runtime, started);
            Precision precision = run.applyPrecision(job.getHyperparameters(), lm);
            TrainingSettings runSettings = JobSettings.forPrecision(settings, precision);
            Checkpointing checkpointing =
                    run.checkpointing(scratch, job.getHyperparameters(), stopRequested);
            TrainingOutcome outcome;
            try (Replicas replicas =
                    Replicas.load(
                            jobId,
                            runtime.devices(job.getResources().getGpus()),
                            job.getResources().getGpus(),
                            device -> {
                                Model m =
                                        CausalLmCheckpoint.load(
                                                baseDir,
                                                device,
                                                JobSettings.modelDropout(job.getHyperparameters()),
                                                JobMethods.nf4Loading(job.getMethod()));
                                CausalLanguageModel r = (CausalLanguageModel) m.getBlock();
                                JobSettings.method(
                                                job.getMethod(),
                                                r.defaultLoraTargets(),
                                                text -> tokenIds(baseDir, text))
                                        .apply(r, m.getNDManager());
                                precision.apply(r);
                                return m;
                            })) {
                outcome =
                        new CausalLmTrainer()
                                .train(
                                        model,
                                        lm,
                                        replicas.blocks(CausalLanguageModel.class),
                                        train,
                                        runSettings,
                                        validation,
                                        run,
                                        checkpointing);
            }

            Path out = scratch.resolve("model");
            // A BF16 base is written back in BF16 (as published Llama checkpoints are), else F32.
            CausalLmCheckpoint.save(lm, out, CausalLmCheckpoint.savedDtype(baseDir));
            // The tokenizer travels with the model, with its special tokens and chat template
            // when the base has them (evaluation and the next job read them: ModelTokens).
            List<String> others =
                    new java.util.ArrayList<>(
                            List.of(CausalLmCheckpoint.CONFIG, ModelCatalog.TOKENIZER));
            for (String f :
                    List.of(
                            ModelCatalog.TOKENIZER,
                            ModelCatalog.TOKENIZER_CONFIG,
                            ModelCatalog.SPECIAL_TOKENS_MAP)) {
                if (Files.isRegularFile(baseDir.resolve(f))) {
                    Files.copy(
                            baseDir.resolve(f),
                            out.resolve(f),
                            StandardCopyOption.REPLACE_EXISTING);
                    if (!others.contains(f)) {
                        others.add(f);
                    }
                }
            }
            // One model.safetensors, or (above the shard size) the index and its shards.
            List<String> weights = CausalLmCheckpoint.weightFiles(out);
            others.addAll(weights.subList(1, weights.size()));
            List<ArtifactRef> files =
                    run.uploadTuned(
                            lm,
                            method,
                            job.getMethod(),
                            ref,
                            List.of(),
                            out,
                            weights.get(0),
                            others,
                            scratch.resolve("adapter"));
            return run.complete(outcome, counts, files);
        }
    }

    /** The base's tokenizer's ids for {@code text} (prompt tuning's text init). */
    private static List<Integer> tokenIds(Path baseDir, String text) {
        try (HuggingFaceTokenizer tokenizer =
                HuggingFaceTokenizer.newInstance(baseDir.resolve(ModelCatalog.TOKENIZER))) {
            return JobSettings.tokenIds(tokenizer).apply(text);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(
                    "cannot read the base model's tokenizer for the prompt's init text", e);
        }
    }

    private List<LmExample> read(ArtifactRef split, String name) throws IOException {
        Path file = scratch.resolve("data").resolve(name + ".jsonl");
        Files.createDirectories(file.getParent());
        try (InputStream in = store.get(split)) {
            Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
        }
        List<LmExample> examples = LmExample.readJsonl(file);
        if (examples.isEmpty() && name.equals("train")) {
            throw new IllegalArgumentException(
                    "the prepared training split " + split.getUri() + " has no examples");
        }
        return examples;
    }
}
