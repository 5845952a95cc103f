package io.tuneline.serving.load;

import io.tuneline.serving.api.ServingException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.function.IntConsumer;
import java.util.function.ToIntFunction;

/**
 * Gathers concurrent requests to one version into engine batches, as TensorFlow Serving's and
 * Triton's dynamic batchers do: when the engine is free, the first waiting request starts a batch,
 * which takes the requests that follow until it holds {@code max-size} items (a classify request's
 * texts, a generation's one sequence) or {@code max-wait} has passed since it started. A request is
 * never split across batches (one larger than {@code max-size} forms its own). Each request gets
 * its own answer back. Requests that arrive while a batch runs wait for the next one, so under load
 * batches fill without waiting. Mutiny's {@code group().intoLists().of(size, duration)} counts
 * items, not texts, and cuts on a clock rather than on the engine becoming free, hence this small
 * loop.
 *
 * @param <R> a request
 * @param <A> its answer
 */
public final class EngineBatcher<R, A> implements AutoCloseable {
    private final ModelQueue queue;
    private final int maxSize;
    private final long maxWaitNanos;
    private final ToIntFunction<R> size;
    private final Function<List<R>, List<A>> engine;
    private final IntConsumer batchInputs;
    private final LinkedBlockingQueue<Pending<R, A>> pending = new LinkedBlockingQueue<>();
    private final Thread worker;
    private volatile boolean closed;
    // A request that did not fit the last batch; only the worker touches it.
    private Pending<R, A> carried;

    private record Pending<R, A>(
            R request, int size, ModelQueue.Ticket ticket, CompletableFuture<A> result) {}

    /**
     * @param size the items of a request
     * @param engine the answers of a batch of requests, one per request in order (an exception
     *     fails the whole batch)
     * @param batchInputs hears the number of items of each batch the engine runs
     */
    public EngineBatcher(
            String name,
            ModelQueue queue,
            int maxSize,
            Duration maxWait,
            ToIntFunction<R> size,
            Function<List<R>, List<A>> engine,
            IntConsumer batchInputs) {
        this.queue = queue;
        this.maxSize = maxSize;
        this.maxWaitNanos = maxWait.toNanos();
        this.size = size;
        this.engine = engine;
        this.batchInputs = batchInputs;
        this.worker = new Thread(this::run, "batcher-" + name);
        worker.setDaemon(true);
        worker.start();
    }

    /**
     * {@code request}'s answer, computed in a batch with other requests.
     *
     * @throws ServingException 429 when too many requests wait for this version already
     */
    public A submit(R request) {
        return submit(request, queue.enter());
    }

    /**
     * As {@link #submit(Object)}, for a request that entered the version's queue already ({@link
     * ModelQueue#enter()}: a stream is refused before it starts); the batcher closes the ticket.
     */
    public A submit(R request, ModelQueue.Ticket ticket) {
        CompletableFuture<A> result = new CompletableFuture<>();
        pending.add(new Pending<>(request, size.applyAsInt(request), ticket, result));
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
            Pending<R, A> first;
            try {
                first = carried != null ? carried : pending.take();
            } catch (InterruptedException e) {
                break;
            }
            carried = null;
            try (ModelQueue.Turn turn = queue.awaitTurn()) {
                List<Pending<R, A>> batch = gather(first);
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

    private List<Pending<R, A>> gather(Pending<R, A> first) {
        List<Pending<R, A>> batch = new ArrayList<>(List.of(first));
        int items = first.size();
        long deadline = System.nanoTime() + maxWaitNanos;
        while (items < maxSize) {
            long left = deadline - System.nanoTime();
            Pending<R, A> next;
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
            if (items + next.size() > maxSize) {
                carried = next;
                break;
            }
            batch.add(next);
            items += next.size();
        }
        return batch;
    }

    private void compute(List<Pending<R, A>> batch) {
        try {
            batchInputs.accept(batch.stream().mapToInt(Pending::size).sum());
            List<A> answers = engine.apply(batch.stream().map(Pending::request).toList());
            for (int i = 0; i < batch.size(); i++) {
                batch.get(i).result().complete(answers.get(i));
            }
        } catch (RuntimeException e) {
            batch.forEach(p -> p.result().completeExceptionally(e));
        } finally {
            batch.forEach(p -> p.ticket().close());
        }
    }

    private void failWaiting() {
        List<Pending<R, A>> left = new ArrayList<>();
        pending.drainTo(left);
        for (Pending<R, A> p : left) {
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
