package io.tuneline.common.messaging;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.Struct;
import com.google.protobuf.util.JsonFormat;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.tuneline.common.event.ContentType;
import io.tuneline.common.event.EventCodec;
import io.tuneline.common.event.IncomingEvent;
import io.tuneline.common.store.ArtifactStore;
import io.tuneline.common.store.LocalS3;
import io.tuneline.proto.v1.JobRequested;
import io.tuneline.proto.v1.Stage;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The stage record as a lease: an instance handed an event whose stage another live instance is
 * doing (its partition moved while the stage ran) waits for it and does not do it twice; a dead
 * holder, or an earlier life of the same instance, does not hold anyone up.
 */
class StageRunnerLeaseTest {
    private static final Duration LEASE = Duration.ofSeconds(2);

    private LocalS3 server;
    private ArtifactStore store;
    private final List<String> ran = new CopyOnWriteArrayList<>();

    @BeforeEach
    void startStore() throws Exception {
        server = LocalS3.start(LocalS3.freePort(), "key", "secret", Optional.empty(), "");
        store = server.store("key", "secret", Duration.ofSeconds(10));
    }

    @AfterEach
    void stopStore() throws Exception {
        store.close();
        server.close();
    }

    @Test
    void aSecondInstanceWaitsForTheLiveOneAndDoesNotRedoItsStage() throws Exception {
        StageRunner first = runner("host-a:8084");
        StageRunner second = runner("host-b:8084");
        CountDownLatch started = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        CompletableFuture<Void> a =
                CompletableFuture.runAsync(
                        () ->
                                first.run(
                                        STAGE,
                                        EVALUATION,
                                        event("ev-1"),
                                        null,
                                        work("a", started, release)));
        assertThat(started.await(10, TimeUnit.SECONDS)).isTrue();

        CompletableFuture<Void> b =
                CompletableFuture.runAsync(
                        () ->
                                second.run(
                                        STAGE,
                                        EVALUATION,
                                        event("ev-1"),
                                        null,
                                        work("b", null, null)));
        // Several leases long: the heartbeats keep the second instance waiting all along.
        Thread.sleep(LEASE.multipliedBy(3).toMillis());
        assertThat(b).as("the second instance waits while the first is at work").isNotDone();

        release.countDown();
        a.get(10, TimeUnit.SECONDS);
        b.get(10, TimeUnit.SECONDS);
        assertThat(ran).containsExactly("a");
        assertThat(record()).containsEntry("state", "finished").containsEntry("event_id", "ev-1");
        first.stopHeartbeats();
        second.stopHeartbeats();
    }

    @Test
    void aHolderThatStoppedBeatingIsTakenForDeadAfterTheLeaseAndTheStageIsRedoneOnce()
            throws Exception {
        StageRunner dying = runner("host-a:8084");
        StageRunner survivor = runner("host-b:8084");
        CountDownLatch started = new CountDownLatch(1);
        CountDownLatch never = new CountDownLatch(1);
        CompletableFuture.runAsync(
                () ->
                        dying.run(
                                STAGE,
                                EVALUATION,
                                event("ev-1"),
                                null,
                                work("dying", started, never)));
        assertThat(started.await(10, TimeUnit.SECONDS)).isTrue();
        dying.stopHeartbeats(); // as SIGKILL would: the record stays "running", nothing beats

        long t0 = System.nanoTime();
        survivor.run(STAGE, EVALUATION, event("ev-1"), null, work("survivor", null, null));
        Duration waited = Duration.ofNanos(System.nanoTime() - t0);

        assertThat(ran).containsExactly("dying", "survivor");
        assertThat(waited).isLessThan(LEASE.multipliedBy(4));
        assertThat(record()).containsEntry("state", "finished");
        never.countDown();
        survivor.stopHeartbeats();
    }

    @Test
    void anEarlierLifeOfTheSameInstanceHoldsNothingUpAndAFinishedEventIsNotRedone()
            throws Exception {
        StageRunner before = runner("host-a:8084");
        CountDownLatch started = new CountDownLatch(1);
        CountDownLatch never = new CountDownLatch(1);
        CompletableFuture.runAsync(
                () ->
                        before.run(
                                STAGE,
                                EVALUATION,
                                event("ev-1"),
                                null,
                                work("before", started, never)));
        assertThat(started.await(10, TimeUnit.SECONDS)).isTrue();

        // The same host and port, another process: the instance was restarted, its lease is
        // still fresh (beaten at most a third of a lease ago), but nobody is behind it.
        before.stopHeartbeats();
        StageRunner restarted = runner("host-a:8084");
        long t0 = System.nanoTime();
        restarted.run(STAGE, EVALUATION, event("ev-1"), null, work("restarted", null, null));
        // Waiting for the lease to lapse would take at least two thirds of it.
        assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(LEASE.dividedBy(2));
        assertThat(record())
                .containsEntry("state", "finished")
                .containsEntry("unfinished_starts", 0.0);

        // The same event again (a redelivery after a rebalance): nothing to do.
        restarted.run(STAGE, EVALUATION, event("ev-1"), null, work("redelivered", null, null));
        // Another event of the job (a new attempt upstream) is work again.
        restarted.run(STAGE, EVALUATION, event("ev-2"), null, work("next", null, null));
        assertThat(ran).containsExactly("before", "restarted", "next");
        never.countDown();
        restarted.stopHeartbeats();
    }

    private static final String STAGE = "evaluation";
    private static final Stage EVALUATION = Stage.STAGE_EVALUATION;

    private StageRunner runner(String instance) {
        StageConfig config =
                new StageConfig() {
                    @Override
                    public int maxAttempts() {
                        return 3;
                    }

                    @Override
                    public Duration lease() {
                        return LEASE;
                    }

                    @Override
                    public Faults faults() {
                        return new Faults() {
                            @Override
                            public Optional<String> delayJobs() {
                                return Optional.empty();
                            }

                            @Override
                            public Duration delay() {
                                return Duration.ZERO;
                            }

                            @Override
                            public Optional<String> delayIn() {
                                return Optional.empty();
                            }

                            @Override
                            public Optional<String> haltJobs() {
                                return Optional.empty();
                            }

                            @Override
                            public Optional<String> haltIn() {
                                return Optional.empty();
                            }
                        };
                    }
                };
        return new StageRunner(
                store,
                new EventPublisher(new EventCodec("/tuneline/test"), new SimpleMeterRegistry()),
                config,
                instance);
    }

    private Runnable work(String name, CountDownLatch started, CountDownLatch release) {
        return () -> {
            ran.add(name);
            if (started != null) {
                started.countDown();
            }
            if (release != null) {
                try {
                    release.await(60, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        };
    }

    private static IncomingEvent<JobRequested> event(String id) {
        return new IncomingEvent<>(
                id,
                "type",
                "/test",
                "job-1",
                Instant.now(),
                ContentType.PROTOBUF,
                JobRequested.getDefaultInstance(),
                "finetune.training.completed",
                0,
                7);
    }

    private java.util.Map<String, Object> record() throws Exception {
        try (var in = store.get(store.uri("stages/job-1/" + STAGE + ".json"))) {
            Struct.Builder b = Struct.newBuilder();
            JsonFormat.parser().merge(new String(in.readAllBytes(), StandardCharsets.UTF_8), b);
            java.util.Map<String, Object> m = new java.util.HashMap<>();
            b.getFieldsMap()
                    .forEach(
                            (k, v) ->
                                    m.put(
                                            k,
                                            v.hasNumberValue()
                                                    ? (Object) v.getNumberValue()
                                                    : v.getStringValue()));
            return m;
        }
    }
}
