package io.tuneline.common.event;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class IdempotencyGuardTest {

    @Test
    void runsTheWorkOfAnEventIdOnce() {
        IdempotencyGuard guard = new IdempotencyGuard(10);
        AtomicInteger runs = new AtomicInteger();
        assertThat(guard.runOnce("e1", runs::incrementAndGet)).isTrue();
        assertThat(guard.runOnce("e1", runs::incrementAndGet)).isFalse();
        assertThat(guard.runOnce("e2", runs::incrementAndGet)).isTrue();
        assertThat(runs).hasValue(2);
    }

    @Test
    void failedWorkIsNotRememberedSoARedeliveryRetriesIt() {
        IdempotencyGuard guard = new IdempotencyGuard(10);
        assertThatThrownBy(
                        () ->
                                guard.runOnce(
                                        "e1",
                                        () -> {
                                            throw new IllegalStateException("store down");
                                        }))
                .hasMessage("store down");
        assertThat(guard.seen("e1")).isFalse();
        assertThat(guard.runOnce("e1", () -> {})).isTrue();
    }

    @Test
    void forgetsTheOldestIdsBeyondItsCapacity() {
        IdempotencyGuard guard = new IdempotencyGuard(2);
        guard.runOnce("a", () -> {});
        guard.runOnce("b", () -> {});
        guard.runOnce("c", () -> {});
        assertThat(guard.seen("a")).isFalse();
        assertThat(guard.seen("b")).isTrue();
        assertThat(guard.seen("c")).isTrue();
    }

    @Test
    void aConcurrentDuplicateWaitsForTheFirstDeliveryAndIsThenSkipped() throws Exception {
        IdempotencyGuard guard = new IdempotencyGuard(10);
        CountDownLatch started = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        AtomicInteger runs = new AtomicInteger();
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            Future<Boolean> first =
                    pool.submit(
                            () ->
                                    guard.runOnce(
                                            "e1",
                                            () -> {
                                                runs.incrementAndGet();
                                                started.countDown();
                                                await(release);
                                            }));
            assertThat(started.await(10, TimeUnit.SECONDS)).isTrue();
            Future<Boolean> second = pool.submit(() -> guard.runOnce("e1", runs::incrementAndGet));
            release.countDown();
            assertThat(first.get(10, TimeUnit.SECONDS)).isTrue();
            assertThat(second.get(10, TimeUnit.SECONDS)).isFalse();
            assertThat(runs).hasValue(1);
        } finally {
            pool.shutdownNow();
        }
    }

    /**
     * A duplicate that arrives while the first delivery runs really waits for it: when the first
     * then fails, the duplicate does the work (a guard that skipped in-flight keys at once would
     * lose the event).
     */
    @Test
    void aDuplicateWaitingForAFailedFirstDeliveryThenRunsItself() throws Exception {
        IdempotencyGuard guard = new IdempotencyGuard(10);
        CountDownLatch started = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        AtomicInteger runs = new AtomicInteger();
        java.util.concurrent.atomic.AtomicReference<Throwable> firstFailure =
                new java.util.concurrent.atomic.AtomicReference<>();
        Thread first =
                new Thread(
                        () -> {
                            try {
                                guard.runOnce(
                                        "e1",
                                        () -> {
                                            started.countDown();
                                            await(release);
                                            throw new IllegalStateException("store down");
                                        });
                            } catch (IllegalStateException e) {
                                firstFailure.set(e);
                            }
                        });
        first.start();
        assertThat(started.await(10, TimeUnit.SECONDS)).isTrue();
        java.util.concurrent.atomic.AtomicBoolean secondRan =
                new java.util.concurrent.atomic.AtomicBoolean();
        Thread second = new Thread(() -> secondRan.set(guard.runOnce("e1", runs::incrementAndGet)));
        second.start();
        // The duplicate is parked in the guard (not finished, not skipped) before the first fails.
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (second.getState() != Thread.State.WAITING && System.nanoTime() < deadline) {
            Thread.onSpinWait();
        }
        assertThat(second.getState()).isEqualTo(Thread.State.WAITING);
        assertThat(runs).hasValue(0);
        release.countDown();
        first.join(10_000);
        second.join(10_000);
        assertThat(firstFailure.get()).hasMessage("store down");
        assertThat(secondRan).isTrue();
        assertThat(runs).hasValue(1);
    }

    private static void await(CountDownLatch latch) {
        try {
            latch.await(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
