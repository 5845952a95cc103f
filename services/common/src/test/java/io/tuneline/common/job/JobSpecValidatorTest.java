package io.tuneline.common.job;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tuneline.proto.v1.BaseModel;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.EvaluationSpec;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.LoraParams;
import io.tuneline.proto.v1.MethodSpec;
import io.tuneline.proto.v1.ScenarioSpec;
import io.tuneline.proto.v1.SplitSpec;
import io.tuneline.proto.v1.Task;
import java.util.List;
import org.junit.jupiter.api.Test;

class JobSpecValidatorTest {
    private static final JobRequested VALID =
            JobRequested.newBuilder()
                    .setJobId("sentiment-1")
                    .setBaseModel(BaseModel.newBuilder().setRef("minilm-l6"))
                    .setTask(Task.TASK_SEQUENCE_CLASSIFICATION)
                    .setDataset(DatasetSpec.newBuilder().setUri("s3://tuneline/uploads/a.jsonl"))
                    .build();

    @Test
    void aCompleteJobHasNoProblems() {
        assertThat(JobSpecValidator.problems(VALID)).isEmpty();
    }

    @Test
    void aScenarioWithBadLimitsOrARequestsFileThatIsNoS3UriIsRefusedNamingEachField() {
        JobRequested bad =
                VALID.toBuilder()
                        .setEvaluation(
                                EvaluationSpec.newBuilder()
                                        .setScenario(
                                                ScenarioSpec.newBuilder()
                                                        .setConcurrency(-1)
                                                        .setMinAgreement(1.5)
                                                        .setRequests("requests.jsonl")))
                        .build();
        assertThat(JobSpecValidator.problems(bad))
                .containsExactly(
                        "evaluation.scenario.concurrency: -1 must not be negative",
                        "evaluation.scenario.min_agreement: 1.5 is outside [0, 1]",
                        "evaluation.scenario.requests: 'requests.jsonl' is not an s3:// URI;"
                                + " expected s3://bucket/key");
        JobRequested good =
                VALID.toBuilder()
                        .setEvaluation(
                                EvaluationSpec.newBuilder()
                                        .setScenario(
                                                ScenarioSpec.newBuilder()
                                                        .setMinAgreement(1.0)
                                                        .setRequests("s3://tuneline/r.jsonl")))
                        .build();
        assertThat(JobSpecValidator.problems(good)).isEmpty();
    }

    @Test
    void jobIdsFollowKubernetesLabelRules() {
        for (String bad : new String[] {"", "Upper", "-lead", "trail-", "a_b", "x".repeat(64)}) {
            assertThat(JobSpecValidator.problems(VALID.toBuilder().setJobId(bad).build()))
                    .as(bad)
                    .singleElement()
                    .asString()
                    .startsWith("job_id:");
        }
        assertThat(JobSpecValidator.problems(VALID.toBuilder().setJobId("a").build())).isEmpty();
        assertThat(JobSpecValidator.problems(VALID.toBuilder().setJobId("x".repeat(63)).build()))
                .isEmpty();
    }

    @Test
    void aModelDropoutOutsideZeroToOneIsRefusedAndZeroIsAllowed() {
        JobRequested bad =
                VALID.toBuilder()
                        .setHyperparameters(
                                VALID.getHyperparameters().toBuilder().setModelDropout(1.0))
                        .build();
        assertThat(JobSpecValidator.problems(bad))
                .containsExactly("hyperparameters.model_dropout: 1.0 is outside [0, 1)");
        JobRequested off =
                VALID.toBuilder()
                        .setHyperparameters(
                                VALID.getHyperparameters().toBuilder().setModelDropout(0))
                        .build();
        assertThat(off.getHyperparameters().hasModelDropout()).isTrue();
        assertThat(JobSpecValidator.problems(off)).isEmpty();
    }

    @Test
    void aClassifierHeadIsMeanOrClsPooler() {
        JobRequested bad =
                VALID.toBuilder()
                        .setHyperparameters(
                                VALID.getHyperparameters().toBuilder().setClassifierHead("cls"))
                        .build();
        assertThat(JobSpecValidator.problems(bad))
                .containsExactly(
                        "hyperparameters.classifier_head: \"cls\" is not one of mean, cls_pooler");
        JobRequested pooler =
                VALID.toBuilder()
                        .setHyperparameters(
                                VALID.getHyperparameters().toBuilder()
                                        .setClassifierHead("cls_pooler"))
                        .build();
        assertThat(JobSpecValidator.problems(pooler)).isEmpty();
    }

    @Test
    void precisionIsAutoFp32Bf16OrFp16AndAnythingElseIsRefusedNamingTheField() {
        for (String ok : List.of("", "auto", "fp32", "bf16", "BF16", "fp16", "FP16")) {
            JobRequested job =
                    VALID.toBuilder()
                            .setHyperparameters(
                                    VALID.getHyperparameters().toBuilder().setPrecision(ok))
                            .build();
            assertThat(JobSpecValidator.problems(job)).as(ok).isEmpty();
        }
        JobRequested unknown =
                VALID.toBuilder()
                        .setHyperparameters(
                                VALID.getHyperparameters().toBuilder().setPrecision("float8"))
                        .build();
        assertThat(JobSpecValidator.problems(unknown))
                .containsExactly(
                        "hyperparameters.precision: \"float8\" is not one of auto, fp32, bf16,"
                                + " fp16");
    }

    @Test
    void parameterEfficientMethodSettingsAreCheckedNamingTheField() {
        var cases =
                java.util.Map.of(
                        MethodSpec.newBuilder()
                                .setAdapter(
                                        io.tuneline.proto.v1.AdapterParams.newBuilder()
                                                .setPlacement("parallel"))
                                .build(),
                        "method.adapter.placement: \"parallel\" is not one of",
                        MethodSpec.newBuilder()
                                .setAdapter(
                                        io.tuneline.proto.v1.AdapterParams.newBuilder()
                                                .setActivation("softmax"))
                                .build(),
                        "method.adapter.activation:",
                        MethodSpec.newBuilder()
                                .setAdapter(
                                        io.tuneline.proto.v1.AdapterParams.newBuilder()
                                                .setReductionFactor(-2))
                                .build(),
                        "method.adapter.reduction_factor: -2 must not be negative",
                        MethodSpec.newBuilder()
                                .setPrefix(
                                        io.tuneline.proto.v1.PrefixTuningParams.newBuilder()
                                                .setProjectionHiddenSize(-1))
                                .build(),
                        "method.prefix.projection_hidden_size:",
                        MethodSpec.newBuilder()
                                .setPrompt(
                                        io.tuneline.proto.v1.PromptTuningParams.newBuilder()
                                                .setInit("text"))
                                .build(),
                        "method.prompt.init: \"text\" needs method.prompt.init_text",
                        MethodSpec.newBuilder()
                                .setPrompt(
                                        io.tuneline.proto.v1.PromptTuningParams.newBuilder()
                                                .setInit("vocab")
                                                .setInitText("classify the review"))
                                .build(),
                        "method.prompt.init_text: set, but init is \"vocab\"",
                        MethodSpec.newBuilder()
                                .setPTuning(
                                        io.tuneline.proto.v1.PTuningParams.newBuilder()
                                                .setEncoderType("gru"))
                                .build(),
                        "method.p_tuning.encoder_type: \"gru\" is not one of mlp, lstm",
                        MethodSpec.newBuilder()
                                .setPTuning(
                                        io.tuneline.proto.v1.PTuningParams.newBuilder()
                                                .setEncoderDropout(1.5))
                                .build(),
                        "method.p_tuning.encoder_dropout: 1.5 is outside [0, 1)");
        cases.forEach(
                (method, problem) ->
                        assertThat(
                                        JobSpecValidator.problems(
                                                VALID.toBuilder().setMethod(method).build()))
                                .as(problem)
                                .anySatisfy(p -> assertThat(p).startsWith(problem)));
        // The same methods with their settings in range (choices in any case) have no such
        // problem.
        for (MethodSpec ok :
                new MethodSpec[] {
                    MethodSpec.newBuilder()
                            .setAdapter(
                                    io.tuneline.proto.v1.AdapterParams.newBuilder()
                                            .setPlacement("Houlsby")
                                            .setActivation("swish")
                                            .setReductionFactor(8))
                            .build(),
                    MethodSpec.newBuilder()
                            .setPrompt(
                                    io.tuneline.proto.v1.PromptTuningParams.newBuilder()
                                            .setInitText("classify the review"))
                            .build(),
                    MethodSpec.newBuilder()
                            .setPTuning(
                                    io.tuneline.proto.v1.PTuningParams.newBuilder()
                                            .setEncoderType("LSTM"))
                            .build()
                }) {
            assertThat(JobSpecValidator.problems(VALID.toBuilder().setMethod(ok).build()))
                    .noneMatch(
                            p ->
                                    p.contains(": \"")
                                            || p.contains("must not")
                                            || p.contains("outside"));
        }
    }

    /**
     * Every example job is read as the CLI reads it (proto JSON) and is valid as it is; together
     * they cover every method of the contract.
     */
    @Test
    void everyExampleJobIsValidAndEveryMethodHasOne() throws Exception {
        java.util.Set<MethodSpec.KindCase> methods =
                java.util.EnumSet.noneOf(MethodSpec.KindCase.class);
        try (var files = java.nio.file.Files.list(java.nio.file.Path.of("../../examples"))) {
            for (java.nio.file.Path file :
                    files.filter(f -> f.toString().endsWith(".json")).sorted().toList()) {
                JobRequested.Builder job = JobRequested.newBuilder();
                com.google.protobuf.util.JsonFormat.parser()
                        .merge(java.nio.file.Files.readString(file), job);
                assertThat(JobSpecValidator.problems(job.build())).as(file.toString()).isEmpty();
                methods.add(job.getMethod().getKindCase());
            }
        }
        methods.add(MethodSpec.KindCase.KIND_NOT_SET);
        assertThat(methods).containsExactlyInAnyOrder(MethodSpec.KindCase.values());
    }

    @Test
    void qloraSettingsBitsandbytesCannotHonourAreRefused() {
        JobRequested bad =
                VALID.toBuilder()
                        .setMethod(
                                MethodSpec.newBuilder()
                                        .setQlora(
                                                io.tuneline.proto.v1.QloraParams.newBuilder()
                                                        .setBits(8)
                                                        .setBlockSize(48)
                                                        .setDoubleQuant(true)
                                                        .setDisableDoubleQuant(true)))
                        .build();
        assertThat(JobSpecValidator.problems(bad))
                .anySatisfy(s -> assertThat(s).startsWith("method.qlora.bits: 8"))
                .anySatisfy(s -> assertThat(s).startsWith("method.qlora.block_size: 48"))
                .anySatisfy(s -> assertThat(s).contains("disable_double_quant"));
    }

    @Test
    void reportsEveryProblemWithItsFieldPath() {
        JobRequested job =
                VALID.toBuilder()
                        .clearTask()
                        .clearDataset()
                        .setSplit(SplitSpec.newBuilder().setTrain(0.8).setTest(0.1))
                        .setMethod(
                                MethodSpec.newBuilder()
                                        .setLora(
                                                LoraParams.newBuilder()
                                                        .setRank(-1)
                                                        .setDropout(1.5)))
                        .build();
        assertThatThrownBy(() -> JobSpecValidator.requireValid(job))
                .isInstanceOfSatisfying(
                        InvalidJobException.class,
                        e ->
                                assertThat(e.problems())
                                        .extracting(p -> p.substring(0, p.indexOf(':')))
                                        .containsExactly(
                                                "task",
                                                "dataset",
                                                "split",
                                                "method.lora.rank",
                                                "method.lora.dropout"));
    }

    /** PEFT takes a list of names or one regular expression, not both. */
    @Test
    void aTargetRegexMustCompileAndComeWithoutATargetList() {
        JobRequested regex =
                VALID.toBuilder()
                        .setMethod(
                                MethodSpec.newBuilder()
                                        .setLora(
                                                LoraParams.newBuilder()
                                                        .setTargetModulesRegex(
                                                                ".*\\.layer\\.(10|11)\\..*dense")))
                        .build();
        assertThat(JobSpecValidator.problems(regex)).isEmpty();
        JobRequested both =
                regex.toBuilder()
                        .setMethod(
                                MethodSpec.newBuilder()
                                        .setLora(
                                                LoraParams.newBuilder()
                                                        .setTargetModulesRegex("(unclosed")
                                                        .addTargetModules("query")))
                        .build();
        assertThat(JobSpecValidator.problems(both))
                .hasSize(2)
                .anyMatch(p -> p.contains("set together with target_modules"))
                .anyMatch(p -> p.contains("not a regular expression"));
    }

    @Test
    void rejectsADatasetUriWithAnUnsupportedScheme() {
        JobRequested job =
                VALID.toBuilder()
                        .setDataset(DatasetSpec.newBuilder().setUri("file:///etc/passwd"))
                        .build();
        assertThat(JobSpecValidator.problems(job))
                .containsExactly(
                        "dataset.uri: 'file:///etc/passwd' must start with s3://, http:// or https://");
    }

    private static MethodSpec lora(int rank) {
        return MethodSpec.newBuilder().setLora(LoraParams.newBuilder().setRank(rank)).build();
    }

    private static final MethodSpec FULL =
            MethodSpec.newBuilder()
                    .setFull(io.tuneline.proto.v1.FullFineTuning.getDefaultInstance())
                    .build();

    @Test
    void aComparisonOfDistinctMethodsIsValidAndNamesItsRunsByKind() {
        JobRequested job =
                VALID.toBuilder()
                        .addCompareMethods(FULL)
                        .addCompareMethods(lora(8))
                        .addCompareMethods(lora(16))
                        .addCompareMethods(
                                MethodSpec.newBuilder()
                                        .setPTuning(
                                                io.tuneline.proto.v1.PTuningParams.newBuilder()))
                        .build();
        assertThat(JobSpecValidator.problems(job)).isEmpty();
        assertThat(ComparedMethods.names(job))
                .containsExactly("full", "lora", "lora-2", "p-tuning");
        JobRequested second = ComparedMethods.memberJob(job, ComparedMethods.of(job).get(2));
        assertThat(second.getMethod()).isEqualTo(lora(16));
        assertThat(second.getHyperparameters()).isEqualTo(job.getHyperparameters());
        JobRequested fast =
                ComparedMethods.memberJob(
                        job,
                        new ComparedMethods.Member(
                                "lora", lora(8).toBuilder().setLearningRate(2e-3).build()));
        // The method's own rate becomes the run's; the method it trains carries none.
        assertThat(fast.getHyperparameters().getLearningRate()).isEqualTo(2e-3);
        assertThat(fast.getMethod()).isEqualTo(lora(8));
        assertThat(second.getCompareMethodsCount()).isZero();
        assertThat(second.getDataset()).isEqualTo(job.getDataset());
    }

    @Test
    void aComparisonRefusesDuplicatesASingleMethodMethodBesideItAndBadParametersByIndex() {
        JobRequested job =
                VALID.toBuilder()
                        .setMethod(lora(4))
                        .addCompareMethods(lora(8))
                        .addCompareMethods(lora(-1))
                        .addCompareMethods(lora(8))
                        .build();
        assertThat(JobSpecValidator.problems(job))
                .containsExactly(
                        "method and compare_methods: both set; give one method in method, or the"
                                + " methods to compare in compare_methods",
                        "compare_methods[1].lora.rank: must not be negative",
                        "compare_methods[2]: the same lora method and parameters as"
                                + " compare_methods[0]; each method is trained once, remove one"
                                + " or change its parameters");
        assertThat(JobSpecValidator.problems(VALID.toBuilder().addCompareMethods(lora(8)).build()))
                .singleElement()
                .asString()
                .startsWith("compare_methods: one method is no comparison");
    }
}
