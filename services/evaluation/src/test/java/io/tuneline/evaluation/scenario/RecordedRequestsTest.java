package io.tuneline.evaluation.scenario;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.tuneline.engine.tokenize.ChatMessage;
import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class RecordedRequestsTest {
    private static InputStream lines(String... lines) {
        return new ByteArrayInputStream(String.join("\n", lines).getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void classifyRequestsKeepEveryTextAndAreSentAsRecorded() throws Exception {
        List<RecordedRequests.Classify> read =
                RecordedRequests.classify(
                        lines(
                                "{\"inputs\": [\"a fine film\", \"dull\"]}",
                                "",
                                "{\"inputs\": [\"great\"], \"extra\": 1}",
                                "{\"inputs\": [\"over the limit\"]}"),
                        "s3://b/requests.jsonl",
                        2);
        assertThat(read)
                .containsExactly(
                        new RecordedRequests.Classify(1, List.of("a fine film", "dull")),
                        new RecordedRequests.Classify(3, List.of("great")));
        ScenarioRunner.Request r =
                RecordedRequests.request("job-1:candidate", read.get(0), List.of("pos", "neg"));
        assertThat(r.path()).isEqualTo("/v1/models/job-1:candidate/classify");
        assertThat(r.body().toString()).isEqualTo("{\"inputs\":[\"a fine film\",\"dull\"]}");
        assertThat(r.expected()).contains("pos\nneg");
    }

    @Test
    void completionAndChatRequestsAreSentGreedyWithTheirBudgetAndStops() throws Exception {
        List<RecordedRequests.Generate> read =
                RecordedRequests.generate(
                        lines(
                                "{\"prompt\": \"Once\", \"max_tokens\": 5, \"stop\": \".\","
                                        + " \"temperature\": 0.9}",
                                "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}],"
                                        + " \"max_completion_tokens\": 7, \"stop\": [\"\\n\","
                                        + " \"END\"]}",
                                "{\"prompt\": \"no budget\"}"),
                        "requests.jsonl",
                        100,
                        16);
        assertThat(read).hasSize(3);
        assertThat(read.get(0).chat()).isFalse();
        assertThat(read.get(0).maxTokens()).isEqualTo(5);
        assertThat(read.get(1).chat()).isTrue();
        assertThat(read.get(1).messages()).containsExactly(new ChatMessage("user", "Hi"));
        assertThat(read.get(1).maxTokens()).isEqualTo(7);
        assertThat(read.get(1).stops()).containsExactly("\n", "END");
        assertThat(read.get(2).maxTokens()).isEqualTo(16);

        ScenarioRunner.Request completion =
                RecordedRequests.request("m:candidate", read.get(0), Optional.of("upon"));
        assertThat(completion.path()).isEqualTo("/v1/completions");
        // The recorded temperature is replaced: agreement is defined for greedy decoding.
        assertThat(completion.body().toString())
                .isEqualTo(
                        "{\"model\":\"m:candidate\",\"prompt\":\"Once\",\"max_tokens\":5,"
                                + "\"temperature\":0,\"stop\":[\".\"]}");
        ScenarioRunner.Request chat =
                RecordedRequests.request("m:candidate", read.get(1), Optional.empty());
        assertThat(chat.path()).isEqualTo("/v1/chat/completions");
        assertThat(chat.body().path("messages").get(0).path("content").asText()).isEqualTo("Hi");
        assertThat(chat.expected()).isEmpty();
    }

    @Test
    void aBadLineFailsNamingTheFileAndTheLine() {
        assertThatThrownBy(
                        () ->
                                RecordedRequests.classify(
                                        lines("{\"inputs\": [\"ok\"]}", "{\"inputs\": [3]}"),
                                        "s3://b/r.jsonl",
                                        100))
                .hasMessage(
                        "s3://b/r.jsonl line 2: the request has an input that is not a text: 3");
        assertThatThrownBy(() -> RecordedRequests.classify(lines("[1, 2]"), "s3://b/r.jsonl", 100))
                .hasMessage("s3://b/r.jsonl line 1: the request is not a JSON object");
        assertThatThrownBy(
                        () ->
                                RecordedRequests.generate(
                                        lines("{\"prompt\": \"a\", \"messages\": []}"),
                                        "r.jsonl",
                                        100,
                                        16))
                .hasMessageContaining("r.jsonl line 1: the request needs either \"prompt\"");
        assertThatThrownBy(
                        () ->
                                RecordedRequests.generate(
                                        lines("", "{\"prompt\": \"a\", \"max_tokens\": 0}"),
                                        "r.jsonl",
                                        100,
                                        16))
                .hasMessageContaining("r.jsonl line 2: the request has a \"max_tokens\" below 1");
        assertThatThrownBy(
                        () ->
                                RecordedRequests.generate(
                                        lines("{\"prompt\": \"a\"", "x"), "r.jsonl", 100, 16))
                .hasMessageStartingWith("r.jsonl line 1: the request is not JSON");
        assertThatThrownBy(() -> RecordedRequests.classify(lines("", " "), "r.jsonl", 100))
                .hasMessage("r.jsonl holds no request");
    }

    @Test
    void aStopStringCutsTheTextBeforeItsFirstOccurrence() {
        assertThat(RecordedRequests.cutAtStop("one. two\nthree", List.of("\n", ".")))
                .isEqualTo("one");
        assertThat(RecordedRequests.cutAtStop("one two", List.of("END", ""))).isEqualTo("one two");
    }
}
