package io.tuneline.engine.train;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;
import ai.djl.pytorch.jni.IValue;
import io.tuneline.engine.nn.TorchScriptFunction;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Data parallelism over the devices of one node, as DJL's multi-device training does it (its {@code
 * ParameterStore}): the same model is loaded on every device (replica 0 is the one the run reports,
 * checkpoints and exports), each batch is split into one contiguous share per device, every replica
 * runs its share's forward and backward pass, the gradients are summed onto replica 0 (each share's
 * loss weighted by its size, so the sum is the whole batch's mean gradient, as PyTorch's
 * DistributedDataParallel averages), replica 0 clips and steps, and its weights are copied back to
 * the others. One process drives all devices; the replicas run one after the other from its thread,
 * which on GPUs overlaps as far as kernel launches are asynchronous.
 *
 * <p>The copies between devices are one native call per direction and step ({@code
 * torch._foreach_add_}, {@code copy_} into each weight's detached view: no autograd record) through
 * {@link TorchScriptFunction}.
 */
final class DataParallel implements AutoCloseable {
    private static final String METHODS =
            """
              def gather(self: __torch__.DataParallelCopies,
                into: List[Tensor],
                grads: List[Tensor]) -> int:
                moved = [grads[i].to(into[i].device) for i in range(len(into))]
                torch._foreach_add_(into, moved)
                torch._foreach_zero_(grads)
                return len(into)
              def scatter(self: __torch__.DataParallelCopies,
                weights: List[Tensor],
                source: List[Tensor]) -> int:
                for i in range(len(weights)):
                  weights[i].detach().copy_(source[i])
                return len(weights)
            """;

    private final List<Map<String, NDArray>> replicas;
    private final TorchScriptFunction copies;

    /**
     * @param replicas the trained weights of each replica by name, replica 0 first; the same names
     *     and shapes on every device
     */
    DataParallel(List<Map<String, NDArray>> replicas) {
        if (replicas.isEmpty()) {
            throw new IllegalArgumentException("no replica");
        }
        for (Map<String, NDArray> r : replicas) {
            if (!r.keySet().equals(replicas.get(0).keySet())) {
                throw new IllegalArgumentException(
                        "the replicas train different parameters: "
                                + r.keySet()
                                + " against "
                                + replicas.get(0).keySet());
            }
        }
        this.replicas = replicas;
        NDArray any = replicas.get(0).values().iterator().next();
        this.copies =
                replicas.size() > 1
                        ? TorchScriptFunction.compile(
                                (PtNDManager) any.getManager(), "DataParallelCopies", METHODS)
                        : null;
    }

    /**
     * The trained weights of {@code task} and {@code others}, each made to record gradients; null
     * when nothing trains.
     */
    static DataParallel of(TrainingLoop.Task<?> task, List<? extends TrainingLoop.Task<?>> others) {
        List<Map<String, NDArray>> replicas = new ArrayList<>();
        replicas.add(trained(task));
        if (replicas.get(0).isEmpty()) {
            return null; // the loop refuses a run with nothing to train, naming it
        }
        for (TrainingLoop.Task<?> other : others) {
            replicas.add(trained(other));
        }
        return new DataParallel(replicas);
    }

    private static Map<String, NDArray> trained(TrainingLoop.Task<?> task) {
        Map<String, NDArray> out = new LinkedHashMap<>();
        task.namedParameters()
                .forEach(
                        (name, p) -> {
                            if (p.requiresGradient()) {
                                p.getArray().setRequiresGradient(true);
                                out.put(name, p.getArray());
                            }
                        });
        return out;
    }

    int devices() {
        return replicas.size();
    }

    /**
     * {@code batch} in {@link #devices()} contiguous shares, the first ones one longer where it
     * does not divide; a share may be empty when the batch is shorter than the device count.
     */
    static <E> List<List<E>> shares(List<E> batch, int devices) {
        List<List<E>> out = new ArrayList<>(devices);
        int from = 0;
        for (int d = 0; d < devices; d++) {
            int size = batch.size() / devices + (d < batch.size() % devices ? 1 : 0);
            out.add(batch.subList(from, from + size));
            from += size;
        }
        return out;
    }

    /**
     * Adds the gradients of every other replica that ran a share ({@code ran[d]}) into replica 0's
     * and zeroes theirs. A replica whose share was empty (a batch shorter than the device count)
     * has nothing to add, and before its first share no gradient at all.
     */
    void gatherGradients(boolean[] ran) {
        for (int d = 1; d < replicas.size(); d++) {
            if (ran[d]) {
                call("gather", replicas.get(0), replicas.get(d), true);
            }
        }
    }

    /** Copies replica 0's weights (just stepped) into every other replica. */
    void scatterWeights() {
        for (int d = 1; d < replicas.size(); d++) {
            call("scatter", replicas.get(d), replicas.get(0), false);
        }
    }

    private void call(
            String method, Map<String, NDArray> into, Map<String, NDArray> from, boolean grads) {
        int n = into.size();
        PtNDArray[] a = new PtNDArray[n];
        PtNDArray[] b = new PtNDArray[n];
        try {
            int i = 0;
            for (Map.Entry<String, NDArray> e : into.entrySet()) {
                NDArray other = from.get(e.getKey());
                a[i] = (PtNDArray) (grads ? e.getValue().getGradient() : e.getValue());
                b[i] = (PtNDArray) (grads ? other.getGradient() : other);
                i++;
            }
            try (IValue x = IValue.listFrom(a);
                    IValue y = IValue.listFrom(b);
                    IValue done = copies.call(method, x, y)) {
                // The method returns how many tensors it moved; nothing else to read.
            }
        } finally {
            if (grads) {
                for (int i = 0; i < n; i++) {
                    closeQuietly(a[i]);
                    closeQuietly(b[i]);
                }
            }
        }
    }

    private static void closeQuietly(NDArray a) {
        if (a != null) {
            a.close();
        }
    }

    /** A step's sub-manager on replica {@code d}'s device. */
    NDManager stepManager(int d) {
        return replicas.get(d).values().iterator().next().getManager().newSubManager();
    }

    @Override
    public void close() {
        if (copies != null) {
            copies.close();
        }
    }
}
