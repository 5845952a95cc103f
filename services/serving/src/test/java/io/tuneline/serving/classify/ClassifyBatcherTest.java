package io.tuneline.serving.classify;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import io.tuneline.serving.api.ServingException;
import io.tuneline.serving.load.ModelQueue;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The batching rules, with an engine that answers each text with its length and records the batches
 * it is given: requests are admitted while the test holds the engine, so which requests wait
 * together is known exactly.
 */
class ClassifyBatcherTest {
    private final List<List<String>> batches = new CopyOnWriteArrayList<>();
    private final List<Integer> recorded = new CopyOnWriteArrayList<>();
    private final ExecutorService clients = Executors.newCachedThreadPool();
    private final List<AutoCloseable> open = new ArrayList<>();

    private final Function<List<String>, double[][]> lengths =
            texts -> {
                batches.add(List.copyOf(texts));
                double[][] rows = new double[texts.size()][];
                for (int i = 0; i < rows.length; i++) {
                    rows[i] = new double[] {texts.get(i).length(), -texts.get(i).length()};
                }
                return rows;
            };

    @AfterEach
    void close() throws Exception {
        for (AutoCloseable c : open) {
            c.close();
        }
        clients.shutdownNow();
    }

    private ClassifyBatcher batcher(
            ModelQueue queue, int maxSize, Duration maxWait, Function<List<String>, double[][]> e) {
        ClassifyBatcher b = new ClassifyBatcher("m:1", queue, maxSize, maxWait, e, recorded::add);
        open.add(b);
        return b;
    }

    /** Sends {@code texts} as one request and waits until it is admitted, to fix the order. */
    private CompletableFuture<double[][]> send(
            ClassifyBatcher batcher, ModelQueue queue, List<String> texts) {
        int before = queue.waiting();
        CompletableFuture<double[][]> answer =
                CompletableFuture.supplyAsync(() -> batcher.classify(texts), clients);
        await().atMost(Duration.ofSeconds(10)).until(() -> queue.waiting() == before + 1);
        return answer;
    }

    private static List<String> texts(String prefix, int n) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(prefix + "x".repeat(i));
        }
        return out;
    }

    private static void assertOwnRows(double[][] rows, List<String> texts) {
        assertThat(rows).hasNumberOfRows(texts.size());
        for (int i = 0; i < texts.size(); i++) {
            assertThat(rows[i]).containsExactly(texts.get(i).length(), -texts.get(i).length());
        }
    }

    @Test
    void waitingRequestsShareBatchesUpToMaxSizeAndNoRequestIsSplit() throws Exception {
        ModelQueue queue = new ModelQueue("m:1", 16);
        ClassifyBatcher batcher = batcher(queue, 4, Duration.ofMillis(5), lengths);
        List<List<String>> requests =
                List.of(texts("a", 3), texts("bb", 2), texts("c", 1), texts("dddd", 5));
        List<CompletableFuture<double[][]>> answers = new ArrayList<>();
        try (ModelQueue.Turn held = queue.awaitTurn()) {
            for (List<String> r : requests) {
                answers.add(send(batcher, queue, r));
            }
            assertThat(queue.waiting()).isEqualTo(4);
        }
        for (int i = 0; i < requests.size(); i++) {
            assertOwnRows(answers.get(i).get(10, TimeUnit.SECONDS), requests.get(i));
        }
        // 3 + 2 > 4: the second request starts the next batch, which the third joins; 5 > 4 runs
        // alone.
        List<String> second = new ArrayList<>(requests.get(1));
        second.addAll(requests.get(2));
        assertThat(batches).containsExactly(requests.get(0), second, requests.get(3));
        assertThat(recorded).containsExactly(3, 3, 5);
        assertThat(queue.waiting()).isZero();
    }

    @Test
    void aBatchWaitsUpToMaxWaitForTheNextRequest() throws Exception {
        ModelQueue queue = new ModelQueue("m:1", 16);
        // A long wait: the first request is still waiting when the second arrives, and the batch
        // runs as soon as it is full rather than at the end of the wait.
        ClassifyBatcher batcher = batcher(queue, 2, Duration.ofSeconds(30), lengths);
        long start = System.nanoTime();
        CompletableFuture<double[][]> first = send(batcher, queue, List.of("one"));
        // Not send(): the batch fills and runs at once, so "waiting" may never be seen at 2.
        CompletableFuture<double[][]> second =
                CompletableFuture.supplyAsync(() -> batcher.classify(List.of("three")), clients);
        assertOwnRows(first.get(20, TimeUnit.SECONDS), List.of("one"));
        assertOwnRows(second.get(20, TimeUnit.SECONDS), List.of("three"));
        assertThat(Duration.ofNanos(System.nanoTime() - start)).isLessThan(Duration.ofSeconds(25));
        assertThat(batches).containsExactly(List.of("one", "three"));
    }

    @Test
    void withoutAWaitALoneRequestRunsAtOnce() throws Exception {
        ModelQueue queue = new ModelQueue("m:1", 16);
        ClassifyBatcher batcher = batcher(queue, 32, Duration.ZERO, lengths);
        assertOwnRows(batcher.classify(List.of("alone")), List.of("alone"));
        assertOwnRows(batcher.classify(List.of("again")), List.of("again"));
        assertThat(recorded).containsExactly(1, 1);
    }

    @Test
    void pastMaxQueuedARequestIsRefusedWithA429NamingTheLimit() throws Exception {
        ModelQueue queue = new ModelQueue("m:1", 2);
        ClassifyBatcher batcher = batcher(queue, 32, Duration.ofMillis(5), lengths);
        List<CompletableFuture<double[][]>> answers = new ArrayList<>();
        try (ModelQueue.Turn held = queue.awaitTurn()) {
            answers.add(send(batcher, queue, List.of("a")));
            answers.add(send(batcher, queue, List.of("bb")));
            assertThatThrownBy(() -> batcher.classify(List.of("ccc")))
                    .isInstanceOfSatisfying(
                            ServingException.class,
                            e -> {
                                assertThat(e.status()).isEqualTo(429);
                                assertThat(e.retryAfterSeconds()).isEqualTo(1);
                            })
                    .hasMessageContaining("tuneline.serving.limits.max-queued = 2");
        }
        assertOwnRows(answers.get(0).get(10, TimeUnit.SECONDS), List.of("a"));
        assertOwnRows(answers.get(1).get(10, TimeUnit.SECONDS), List.of("bb"));
        // Room again once the waiting requests ran.
        assertOwnRows(batcher.classify(List.of("ccc")), List.of("ccc"));
    }

    @Test
    void anEngineFailureFailsItsBatchOnlyAndTheNextBatchRuns() throws Exception {
        ModelQueue queue = new ModelQueue("m:1", 16);
        List<Boolean> fail = Collections.synchronizedList(new ArrayList<>(List.of(true)));
        ClassifyBatcher batcher =
                batcher(
                        queue,
                        32,
                        Duration.ofMillis(5),
                        texts -> {
                            if (!fail.isEmpty() && fail.remove(0)) {
                                throw new IllegalStateException("engine broke");
                            }
                            return lengths.apply(texts);
                        });
        assertThatThrownBy(() -> batcher.classify(List.of("a"))).hasMessage("engine broke");
        assertOwnRows(batcher.classify(List.of("bb")), List.of("bb"));
    }

    @Test
    void retiringAVersionRefusesNewRequestsAndWaitsForAdmittedOnes() throws Exception {
        ModelQueue queue = new ModelQueue("m:1", 16);
        ClassifyBatcher batcher = batcher(queue, 32, Duration.ofMillis(5), lengths);
        CompletableFuture<double[][]> admitted;
        CompletableFuture<Void> drained;
        try (ModelQueue.Turn held = queue.awaitTurn()) {
            admitted = send(batcher, queue, List.of("in"));
            queue.retire();
            assertThatThrownBy(() -> batcher.classify(List.of("late")))
                    .isInstanceOf(ModelQueue.Retired.class);
            drained =
                    CompletableFuture.runAsync(
                            () -> {
                                try {
                                    queue.awaitDrained();
                                } catch (InterruptedException e) {
                                    throw new IllegalStateException(e);
                                }
                            },
                            clients);
            assertThat(drained).isNotDone();
        }
        assertOwnRows(admitted.get(10, TimeUnit.SECONDS), List.of("in"));
        drained.get(10, TimeUnit.SECONDS);
    }
}
