package io.tuneline.ingestion.validate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tuneline.proto.v1.BadRecord;
import io.tuneline.proto.v1.BadRecordAction;
import io.tuneline.proto.v1.BadRecordPolicy;
import io.tuneline.proto.v1.DatasetSpec;
import io.tuneline.proto.v1.FieldMapping;
import io.tuneline.proto.v1.Task;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Every record shape, its canonical form and its bad records, without the service around it. */
class DatasetValidatorTest {
    private static final Task LM = Task.TASK_CAUSAL_LM;
    private static final Task CLS = Task.TASK_SEQUENCE_CLASSIFICATION;

    /** The validation result and the canonical lines it wrote. */
    private record Out(DatasetValidator.Result result, List<String> canonical) {
        List<String> bad() {
            return result.samples().stream().map(b -> b.getLine() + ": " + b.getReason()).toList();
        }
    }

    private static Out run(String data, RecordFormat format, Task task, DatasetSpec spec)
            throws IOException {
        ByteArrayOutputStream canonical = new ByteArrayOutputStream();
        var result =
                DatasetValidator.validate(
                        new ByteArrayInputStream(data.getBytes(StandardCharsets.UTF_8)),
                        format,
                        task,
                        spec,
                        canonical,
                        DatasetValidator.Limits.NONE,
                        DatasetValidator.Progress.NONE);
        return new Out(result, canonical.toString(StandardCharsets.UTF_8).lines().toList());
    }

    private static Out lm(String jsonl) throws IOException {
        return run(jsonl, RecordFormat.JSONL, LM, DatasetSpec.getDefaultInstance());
    }

    private static DatasetSpec fields(FieldMapping.Builder f) {
        return DatasetSpec.newBuilder().setFields(f).build();
    }

    @Test
    void promptCompletionRecordsAreInstructionsAndStayAsTheyAre() throws IOException {
        Out out =
                lm(
                        """
                        {"prompt": "2+2?", "completion": "4", "id": 7}
                        {"prompt": "Capital of France?", "completion": "Paris"}
                        """);
        assertThat(out.result().shape()).isEqualTo(RecordShape.INSTRUCTION);
        assertThat(out.result().valid()).isEqualTo(2);
        assertThat(out.result().labelCounts()).isEmpty();
        assertThat(out.canonical())
                .containsExactly(
                        "{\"prompt\":\"2+2?\",\"completion\":\"4\"}",
                        "{\"prompt\":\"Capital of France?\",\"completion\":\"Paris\"}");
    }

    @Test
    void instructionInputOutputRecordsBecomePromptAndCompletion() throws IOException {
        Out out =
                lm(
                        """
                        {"instruction": "Translate to French", "input": "cat", "output": "chat"}
                        {"instruction": "Say hi", "input": "", "output": "hi"}
                        {"instruction": "Say bye", "output": "bye"}
                        {"prompt": "mixed spellings", "completion": "are both instructions"}
                        {"instruction": "", "output": "x"}
                        {"instruction": "y", "input": 3, "output": "x"}
                        {"instruction": "no output"}
                        """);
        assertThat(out.result().shape()).isEqualTo(RecordShape.INSTRUCTION);
        assertThat(out.canonical())
                .containsExactly(
                        "{\"prompt\":\"Translate to French\\n\\ncat\",\"completion\":\"chat\"}",
                        "{\"prompt\":\"Say hi\",\"completion\":\"hi\"}",
                        "{\"prompt\":\"Say bye\",\"completion\":\"bye\"}",
                        "{\"prompt\":\"mixed spellings\",\"completion\":\"are both instructions\"}");
        assertThat(out.bad())
                .containsExactly(
                        "5: empty text in 'instruction'",
                        "6: field 'input' is number, not a string",
                        "7: missing field 'output'");
    }

    @Test
    void chatRecordsKeepRoleAndContentAndEveryMessageIsChecked() throws IOException {
        Out out =
                lm(
                        """
                        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!", "name": "bot"}]}
                        {"messages": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "Hello"}]}
                        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": " "}]}
                        {"messages": [{"role": "user", "content": "Hi"}]}
                        {"messages": []}
                        {"messages": "Hi"}
                        {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "x"}]}
                        {"messages": ["Hi"]}
                        {"prompt": "a", "completion": "b"}
                        """);
        assertThat(out.result().shape()).isEqualTo(RecordShape.CHAT);
        assertThat(out.canonical())
                .containsExactly(
                        "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                                + "{\"role\":\"user\",\"content\":\"Hi\"},"
                                + "{\"role\":\"assistant\",\"content\":\"Hello!\"}]}");
        assertThat(out.bad())
                .containsExactly(
                        "2: message 2: role 'bot' is not system, user or assistant",
                        "3: message 2: empty content",
                        "4: no assistant message in 'messages': a chat needs at least one to"
                                + " learn from",
                        "5: no assistant message in 'messages' (it is empty): a chat needs at"
                                + " least one to learn from",
                        "6: field 'messages' is string, not an array",
                        "7: message 1: content is number, not a string",
                        "8: message 1: not a JSON object",
                        "9: missing field 'messages'");
        assertThat(out.result().rejected())
                .containsEntry(RejectionReason.BAD_MESSAGE, 4L)
                .containsEntry(RejectionReason.NO_ASSISTANT_MESSAGE, 2L)
                .containsEntry(RejectionReason.WRONG_TYPE, 1L)
                .containsEntry(RejectionReason.MISSING_FIELD, 1L);
    }

    @Test
    void textRecordsAndTheShapeIsTheFirstParseableRecords() throws IOException {
        Out out =
                lm(
                        """
                        not json
                        {"id": 1}
                        {"text": "Once upon a time"}
                        {"text": ""}
                        {"messages": [{"role": "assistant", "content": "x"}]}
                        {"text": "The end"}
                        """);
        assertThat(out.result().shape()).isEqualTo(RecordShape.TEXT);
        assertThat(out.canonical())
                .containsExactly("{\"text\":\"Once upon a time\"}", "{\"text\":\"The end\"}");
        assertThat(out.bad()).hasSize(4).element(0).asString().startsWith("1: bad JSON");
        assertThat(out.bad().subList(1, 4))
                .containsExactly(
                        "2: missing field: a causal LM record needs 'messages' (chat), 'prompt'"
                                + " and 'completion' or 'instruction' and 'output' (instruction),"
                                + " or 'text' (text)",
                        "4: empty text",
                        "5: missing field 'text'");
    }

    @Test
    void fieldNamesComeFromTheJob() throws IOException {
        Out qa =
                run(
                        "{\"q\": \"why?\", \"a\": \"because\"}\n",
                        RecordFormat.JSONL,
                        LM,
                        fields(FieldMapping.newBuilder().setPrompt("q").setCompletion("a")));
        assertThat(qa.canonical())
                .containsExactly("{\"prompt\":\"why?\",\"completion\":\"because\"}");

        Out chat =
                run(
                        "{\"conv\": [{\"role\": \"assistant\", \"content\": \"hi\"}]}\n",
                        RecordFormat.JSONL,
                        LM,
                        fields(FieldMapping.newBuilder().setMessages("conv")));
        assertThat(chat.result().shape()).isEqualTo(RecordShape.CHAT);
        assertThat(chat.canonical())
                .containsExactly("{\"messages\":[{\"role\":\"assistant\",\"content\":\"hi\"}]}");

        Out body =
                run(
                        "{\"body\": \"words\"}\n{\"text\": \"not the field\"}\n",
                        RecordFormat.JSONL,
                        LM,
                        fields(FieldMapping.newBuilder().setText("body")));
        assertThat(body.canonical()).containsExactly("{\"text\":\"words\"}");
        assertThat(body.bad()).containsExactly("2: missing field 'body'");
    }

    @Test
    void plainTextIsOneTextRecordPerNonEmptyLineForCausalLmOnly() throws IOException {
        Out out =
                run("First line.\n\n  \nSecond, with a comma.\r\n", RecordFormat.TEXT, LM, spec());
        assertThat(out.result().shape()).isEqualTo(RecordShape.TEXT);
        assertThat(out.canonical())
                .containsExactly(
                        "{\"text\":\"First line.\"}", "{\"text\":\"Second, with a comma.\"}");

        assertThatThrownBy(() -> run("a\nb\n", RecordFormat.TEXT, CLS, spec()))
                .isInstanceOf(DatasetInvalidException.class)
                .hasMessageContaining("plain text has no labels");
    }

    @Test
    void csvForCausalLmIsInstructionWithPromptAndCompletionColumnsElseText() throws IOException {
        Out instruction =
                run(
                        "id,question,answer\n1,\"Why, really?\",Because\n2,Empty answer,\n",
                        RecordFormat.CSV,
                        LM,
                        fields(
                                FieldMapping.newBuilder()
                                        .setPrompt("question")
                                        .setCompletion("answer")));
        assertThat(instruction.result().shape()).isEqualTo(RecordShape.INSTRUCTION);
        assertThat(instruction.canonical())
                .containsExactly("{\"prompt\":\"Why, really?\",\"completion\":\"Because\"}");
        assertThat(instruction.bad()).containsExactly("3: empty text in 'answer'");

        Out defaults = run("prompt\tcompletion\nhi\tthere\n", RecordFormat.TSV, LM, spec());
        assertThat(defaults.canonical())
                .containsExactly("{\"prompt\":\"hi\",\"completion\":\"there\"}");

        Out alpaca =
                run(
                        "instruction,input,output\nTranslate,cat,chat\nSay hi,,hi\n",
                        RecordFormat.CSV,
                        LM,
                        spec());
        assertThat(alpaca.canonical())
                .containsExactly(
                        "{\"prompt\":\"Translate\\n\\ncat\",\"completion\":\"chat\"}",
                        "{\"prompt\":\"Say hi\",\"completion\":\"hi\"}");

        Out text = run("id,text\n1,Some prose.\n2,\n", RecordFormat.CSV, LM, spec());
        assertThat(text.result().shape()).isEqualTo(RecordShape.TEXT);
        assertThat(text.canonical()).containsExactly("{\"text\":\"Some prose.\"}");
        assertThat(text.bad()).containsExactly("3: empty text");

        assertThatThrownBy(() -> run("a,b\n1,2\n", RecordFormat.CSV, LM, spec()))
                .isInstanceOf(DatasetInvalidException.class)
                .hasMessageStartingWith(
                        "the header row has neither columns 'prompt' and 'completion' nor a"
                                + " column 'text' (columns: a, b)");
    }

    @Test
    void aSplitFieldIsCarriedIntoEveryCanonicalRecord() throws IOException {
        DatasetSpec spec =
                DatasetSpec.newBuilder()
                        .setFields(FieldMapping.newBuilder().setSplit("fold"))
                        .build();
        Out out =
                run(
                        """
                        {"text": "a", "label": "x", "fold": "TRAIN"}
                        {"text": "b", "label": "y", "fold": "valid"}
                        {"text": "c", "label": "x", "fold": "Dev"}
                        {"text": "d", "label": "y", "fold": "val"}
                        {"text": "e", "label": "x", "fold": "test"}
                        {"text": "f", "label": "y", "fold": "holdout"}
                        {"text": "g", "label": "y"}
                        {"text": "h", "label": "y", "fold": 1}
                        """,
                        RecordFormat.JSONL,
                        CLS,
                        spec);
        assertThat(out.canonical())
                .containsExactly(
                        "{\"text\":\"a\",\"label\":\"x\",\"split\":\"train\"}",
                        "{\"text\":\"b\",\"label\":\"y\",\"split\":\"validation\"}",
                        "{\"text\":\"c\",\"label\":\"x\",\"split\":\"validation\"}",
                        "{\"text\":\"d\",\"label\":\"y\",\"split\":\"validation\"}",
                        "{\"text\":\"e\",\"label\":\"x\",\"split\":\"test\"}");
        assertThat(out.bad())
                .containsExactly(
                        "6: split 'holdout' is not train, validation (valid, val, dev) or test",
                        "7: missing field 'fold'",
                        "8: field 'fold' is number, not a string");
        // A rejected record's label is not counted.
        assertThat(out.result().labelCounts()).containsEntry("x", 3L).containsEntry("y", 2L);
        assertThat(out.result().rejected())
                .containsEntry(RejectionReason.BAD_SPLIT, 1L)
                .containsEntry(RejectionReason.MISSING_FIELD, 1L)
                .containsEntry(RejectionReason.WRONG_TYPE, 1L);

        Out chat =
                run(
                        "{\"messages\": [{\"role\": \"assistant\", \"content\": \"hi\"}],"
                                + " \"fold\": \"test\"}\n",
                        RecordFormat.JSONL,
                        LM,
                        spec);
        assertThat(chat.canonical())
                .containsExactly(
                        "{\"messages\":[{\"role\":\"assistant\",\"content\":\"hi\"}],"
                                + "\"split\":\"test\"}");

        Out csv = run("prompt,completion,fold\np,c,dev\np,c,other\n", RecordFormat.CSV, LM, spec);
        assertThat(csv.canonical())
                .containsExactly(
                        "{\"prompt\":\"p\",\"completion\":\"c\",\"split\":\"validation\"}");
        assertThat(csv.bad())
                .containsExactly(
                        "3: split 'other' is not train, validation (valid, val, dev) or test");

        assertThatThrownBy(() -> run("prompt,completion\np,c\n", RecordFormat.CSV, LM, spec))
                .isInstanceOf(DatasetInvalidException.class)
                .hasMessageStartingWith("the header row has no column 'fold'");
        assertThatThrownBy(() -> run("some text\n", RecordFormat.TEXT, LM, spec))
                .isInstanceOf(DatasetInvalidException.class)
                .hasMessageContaining("dataset.fields.split");
    }

    @Test
    void theTwoLabelRuleIsForClassificationOnly() throws IOException {
        DatasetSpec spec = spec();
        Out one = lm("{\"text\": \"just one record\"}\n");
        DatasetValidator.enforce(one.result(), spec);

        Out cls = run("{\"text\": \"a\", \"label\": \"x\"}\n", RecordFormat.JSONL, CLS, spec);
        assertThat(cls.result().shape()).isEqualTo(RecordShape.CLASSIFICATION);
        assertThatThrownBy(() -> DatasetValidator.enforce(cls.result(), spec))
                .hasMessageStartingWith("classification needs at least two labels");
    }

    @Test
    void underSkipAnInvalidUtf8LineIsDroppedAndTheOthersAreKept() throws IOException {
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        data.write("{\"text\": \"one\"}\n{\"text\": \"tw".getBytes(StandardCharsets.UTF_8));
        data.write(0xFF);
        data.write(
                "o\"}\n{\"text\": \"three\"}\n{\"text\": \"four\"}\n"
                        .getBytes(StandardCharsets.UTF_8));
        DatasetSpec skip =
                DatasetSpec.newBuilder()
                        .setBadRecords(
                                BadRecordPolicy.newBuilder()
                                        .setAction(BadRecordAction.BAD_RECORD_ACTION_SKIP)
                                        .setMaxBadFraction(0.5))
                        .build();
        var result =
                DatasetValidator.validate(
                        new ByteArrayInputStream(data.toByteArray()),
                        RecordFormat.JSONL,
                        LM,
                        skip,
                        java.io.OutputStream.nullOutputStream(),
                        DatasetValidator.Limits.NONE,
                        DatasetValidator.Progress.NONE);
        DatasetValidator.enforce(result, skip);
        assertThat(result.valid()).isEqualTo(3);
        assertThat(result.samples())
                .containsExactly(
                        BadRecord.newBuilder().setLine(2).setReason("invalid UTF-8").build());
    }

    @Test
    void inCsvAnInvalidUtf8ByteCostsItsRecordOnlyAndReadingGoesOn() throws IOException {
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        data.write("text,label\nfine,pos\ncaf".getBytes(StandardCharsets.UTF_8));
        data.write(0xE9); // Latin-1 é
        data.write(
                ",neg\n\"two\nlines \uFFFD kept\",pos\nalso fine,neg\n\"bad "
                        .getBytes(StandardCharsets.UTF_8));
        data.write(0xFF);
        data.write("\nacross lines\",pos\nlast,neg\nend ".getBytes(StandardCharsets.UTF_8));
        data.write(0xC3); // a truncated sequence at the very end, no line break
        DatasetValidator.Result r =
                DatasetValidator.validate(
                        new ByteArrayInputStream(data.toByteArray()),
                        RecordFormat.CSV,
                        CLS,
                        spec(),
                        java.io.OutputStream.nullOutputStream(),
                        DatasetValidator.Limits.NONE,
                        DatasetValidator.Progress.NONE);
        assertThat(r.valid()).isEqualTo(4);
        assertThat(r.samples().stream().map(b -> b.getLine() + ": " + b.getReason()).toList())
                .containsExactly("3: invalid UTF-8", "8: invalid UTF-8", "10: invalid UTF-8");
    }

    @Test
    void progressIsToldAfterEveryRecordAndOtherTasksAreRefused() throws IOException {
        List<Long> seen = new java.util.ArrayList<>();
        DatasetValidator.validate(
                new ByteArrayInputStream("a\nb\n\nc\n".getBytes(StandardCharsets.UTF_8)),
                RecordFormat.TEXT,
                LM,
                spec(),
                java.io.OutputStream.nullOutputStream(),
                DatasetValidator.Limits.NONE,
                seen::add);
        assertThat(seen).containsExactly(1L, 2L, 3L);

        assertThatThrownBy(() -> run("{}\n", RecordFormat.JSONL, Task.TASK_UNSPECIFIED, spec()))
                .isInstanceOf(DatasetInvalidException.class)
                .hasMessageContaining("TASK_CAUSAL_LM");
    }

    private static DatasetSpec spec() {
        return DatasetSpec.getDefaultInstance();
    }
}
