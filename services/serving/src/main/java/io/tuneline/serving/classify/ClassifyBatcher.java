package io.tuneline.serving.classify;

import io.tuneline.serving.api.ServingException;
import io.tuneline.serving.load.ModelQueue;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.function.IntConsumer;

/**
 * Gathers concurrent classify requests to one version into engine batches, as TensorFlow Serving's
 * and Triton's dynamic batchers do: when the engine is free, the first waiting request starts a
 * batch, which takes the requests that follow until it holds {@code max-size} texts or {@code
 * max-wait} has passed since it started. A request is never split across batches (one larger than
 * {@code max-size} forms its own, which the engine runs in slices of {@code max-size}). Each
 * request gets its own rows back. Requests that arrive while a batch runs wait for the next one, so
 * under load batches fill without waiting. Mutiny's {@code group().intoLists().of(size, duration)}
 * counts items, not texts, and cuts on a clock rather than on the engine becoming free, hence this
 * small loop.
 */
final class ClassifyBatcher implements AutoCloseable {
    private final ModelQueue queue;
    private final int maxSize;
    private final long maxWaitNanos;
    private final Function<List<String>, double[][]> engine;
    private final IntConsumer batchInputs;
    private final LinkedBlockingQueue<Pending> pending = new LinkedBlockingQueue<>();
    private final Thread worker;
    private volatile boolean closed;
    // A request that did not fit the last batch; only the worker touches it.
    private Pending carried;

    private record Pending(
            List<String> texts, ModelQueue.Ticket ticket, CompletableFuture<double[][]> result) {}

    /**
     * @param engine class probabilities of a list of texts, one row per text
     * @param batchInputs hears the number of texts of each batch the engine runs
     */
    ClassifyBatcher(
            String name,
            ModelQueue queue,
            int maxSize,
            Duration maxWait,
            Function<List<String>, double[][]> engine,
            IntConsumer batchInputs) {
        this.queue = queue;
        this.maxSize = maxSize;
        this.maxWaitNanos = maxWait.toNanos();
        this.engine = engine;
        this.batchInputs = batchInputs;
        this.worker = new Thread(this::run, "classify-batcher-" + name);
        worker.setDaemon(true);
        worker.start();
    }

    /**
     * The class probabilities of {@code texts}, computed in a batch with other requests' texts.
     *
     * @throws ServingException 429 when too many requests wait for this version already
     */
    double[][] classify(List<String> texts) {
        ModelQueue.Ticket ticket = queue.enter();
        CompletableFuture<double[][]> result = new CompletableFuture<>();
        pending.add(new Pending(List.copyOf(texts), ticket, result));
        if (closed) {
            failWaiting(); // the worker may have stopped before this request was queued
        }
        try {
            return result.join();
        } catch (CompletionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            throw e;
        }
    }

    private void run() {
        while (!closed) {
            Pending first;
            try {
                first = carried != null ? carried : pending.take();
            } catch (InterruptedException e) {
                break;
            }
            carried = null;
            try (ModelQueue.Turn turn = queue.awaitTurn()) {
                List<Pending> batch = gather(first);
                batch.forEach(p -> p.ticket().start());
                compute(batch);
            }
        }
        if (carried != null) {
            pending.add(carried);
            carried = null;
        }
        failWaiting();
    }

    private List<Pending> gather(Pending first) {
        List<Pending> batch = new ArrayList<>(List.of(first));
        int size = first.texts().size();
        long deadline = System.nanoTime() + maxWaitNanos;
        while (size < maxSize) {
            long left = deadline - System.nanoTime();
            Pending next;
            try {
                // Past the deadline, what already waits still joins: no reason to leave it behind.
                next = left > 0 ? pending.poll(left, TimeUnit.NANOSECONDS) : pending.poll();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
            if (next == null) {
                break;
            }
            if (size + next.texts().size() > maxSize) {
                carried = next;
                break;
            }
            batch.add(next);
            size += next.texts().size();
        }
        return batch;
    }

    private void compute(List<Pending> batch) {
        try {
            List<String> texts = new ArrayList<>();
            batch.forEach(p -> texts.addAll(p.texts()));
            batchInputs.accept(texts.size());
            double[][] rows = engine.apply(texts);
            int from = 0;
            for (Pending p : batch) {
                int to = from + p.texts().size();
                p.result().complete(Arrays.copyOfRange(rows, from, to));
                from = to;
            }
        } catch (RuntimeException e) {
            batch.forEach(p -> p.result().completeExceptionally(e));
        } finally {
            batch.forEach(p -> p.ticket().close());
        }
    }

    private void failWaiting() {
        List<Pending> left = new ArrayList<>();
        pending.drainTo(left);
        for (Pending p : left) {
            p.result()
                    .completeExceptionally(
                            new ServingException(
                                    503,
                                    "Model unloaded",
                                    "the model version was unloaded before this request ran;"
                                            + " retry"));
            p.ticket().close();
        }
    }

    @Override
    public void close() {
        closed = true;
        worker.interrupt();
        try {
            worker.join(TimeUnit.SECONDS.toMillis(30));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        failWaiting();
    }
}
