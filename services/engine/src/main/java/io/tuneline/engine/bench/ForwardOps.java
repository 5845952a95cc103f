package io.tuneline.engine.bench;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.ndarray.types.SparseFormat;
import ai.djl.nn.Activation;
import ai.djl.nn.core.Embedding;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.Dropout;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import io.tuneline.engine.model.bert.BertConfig;
import io.tuneline.engine.model.bert.BertLayer;
import io.tuneline.engine.nn.NativeOps;
import io.tuneline.engine.nn.Scalars;
import io.tuneline.engine.nn.TrainingDropout;
import io.tuneline.engine.runtime.EngineRuntime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;

/**
 * The time of each operation of one MiniLM encoder layer at the training benchmark's shapes (8 x 32
 * tokens, hidden 384, 12 heads, intermediate 1536), in training mode (dropout 0.1) with gradient
 * recording on, as the engine calls them; {@code bench/forward_ops.py} times the same operations as
 * the PyTorch peer ({@code bench/torch_minilm_train.py}) calls them. Where the forward pass's gap
 * to the peer is, op by op (docs/benchmarks.md, issue 17). Prints one JSON line: the first decile
 * of each operation's microseconds over {@code reps} calls after 30 untimed ones (on a shared
 * machine a median catches other processes' time slices: an operation whose second thread is
 * descheduled waits whole milliseconds), and the whole layer ({@link BertLayer#forward}) beside the
 * sum of its parts.
 *
 * <p>"libtorch's dropout" is libtorch's own {@code dropout} at the hidden states' shape, what
 * {@link TrainingDropout} ran until 2026-12-05 and the peer runs; the two dropout lines above it
 * are {@link TrainingDropout} itself.
 *
 * <p>Usage: {@code ForwardOps [reps] [threads]} (defaults 300 and 2).
 */
public final class ForwardOps {
    private static final int B = 8;
    private static final int T = 32;
    private static final int H = 384;
    private static final int HEADS = 12;
    private static final int D = H / HEADS;
    private static final int I = 1536;
    private static final float DROP = 0.1f;

    private static NDManager inputs;

    private ForwardOps() {}

    public static void main(String[] args) {
        int reps = args.length > 0 ? Integer.parseInt(args[0]) : 300;
        int threads = args.length > 1 ? Integer.parseInt(args[1]) : 2;
        EngineRuntime runtime = EngineRuntime.start(threads);
        Map<String, Double> micros = new LinkedHashMap<>();
        try (NDManager m = NDManager.newBaseManager(runtime.device(), EngineRuntime.ENGINE);
                GradientCollector gc = Engine.getInstance().newGradientCollector()) {
            inputs = m;
            Engine.getInstance().setRandomSeed(1);
            NDArray ids = m.randomInteger(0, 30522, new Shape(B, T), DataType.INT64);
            NDArray words = leaf(m.randomNormal(new Shape(30522, H)));
            NDArray positions = leaf(m.randomNormal(new Shape(T, H)));
            NDArray tokenType = leaf(m.randomNormal(new Shape(H)));
            NDArray x = leaf(m.randomNormal(new Shape(B * T, H)));
            NDArray wq = leaf(m.randomNormal(0, 0.05f, new Shape(H, H), DataType.FLOAT32));
            NDArray bq = leaf(m.zeros(new Shape(H)));
            NDArray wi = leaf(m.randomNormal(0, 0.05f, new Shape(I, H), DataType.FLOAT32));
            NDArray bi = leaf(m.zeros(new Shape(I)));
            NDArray wo = leaf(m.randomNormal(0, 0.05f, new Shape(H, I), DataType.FLOAT32));
            NDArray gamma = leaf(m.ones(new Shape(H)));
            NDArray beta = leaf(m.zeros(new Shape(H)));
            NDArray heads = leaf(m.randomNormal(new Shape(B, HEADS, T, D)));
            NDArray headsT = leaf(m.randomNormal(new Shape(B, HEADS, D, T)));
            NDArray scores = leaf(m.randomNormal(new Shape(B, HEADS, T, T)));
            NDArray inter = leaf(m.randomNormal(new Shape(B * T, I)));
            NDArray mask =
                    m.zeros(new Shape(B, 1, 1, T)); // as BertEncoder's additive mask: no gradient
            Shape ln = new Shape(H);

            time(
                    micros,
                    "embeddings (gather + 2 adds)",
                    reps,
                    () -> {
                        NDArray e =
                                Embedding.embedding(ids, words, SparseFormat.DENSE)
                                        .singletonOrThrow();
                        return e.add(positions).add(tokenType);
                    });
            time(
                    micros,
                    "LayerNorm (384)",
                    reps,
                    () -> LayerNorm.layerNorm(x, ln, gamma, beta, 1e-12f).singletonOrThrow());
            time(
                    micros,
                    "linear 384->384 (each of Q, K, V, out)",
                    reps,
                    () -> Linear.linear(x, wq, bq).singletonOrThrow());
            time(
                    micros,
                    "split heads (reshape + transpose)",
                    reps,
                    () -> NativeOps.swapAxes(x.reshape(B, T, HEADS, D), 1, 2));
            time(micros, "scores q @ k^T", reps, () -> NativeOps.matMul(heads, headsT));
            time(micros, "scale (* 1/sqrt(d))", reps, () -> Scalars.mul(scores, 1 / Math.sqrt(D)));
            time(micros, "mask add", reps, () -> scores.add(mask));
            time(micros, "softmax", reps, () -> scores.softmax(-1));
            time(
                    micros,
                    "dropout (probs, 8x12x32x32)",
                    reps,
                    () -> TrainingDropout.apply(scores, DROP, true));
            time(micros, "context probs @ v", reps, () -> NativeOps.matMul(scores, heads));
            time(
                    micros,
                    "merge heads (transpose + reshape copy)",
                    reps,
                    () -> NativeOps.swapAxes(heads, 1, 2).reshape(B * T, H));
            time(
                    micros,
                    "dropout (hidden, 256x384)",
                    reps,
                    () -> TrainingDropout.apply(x, DROP, true));
            time(
                    micros,
                    "libtorch's dropout (bernoulli_ mask; not in the sum)",
                    reps,
                    () -> Dropout.dropout(x, DROP, true).singletonOrThrow());
            time(micros, "residual add", reps, () -> x.add(x));
            time(
                    micros,
                    "linear 384->1536",
                    reps,
                    () -> Linear.linear(x, wi, bi).singletonOrThrow());
            time(micros, "GELU (256x1536)", reps, () -> Activation.gelu(inter));
            time(
                    micros,
                    "linear 1536->384",
                    reps,
                    () -> Linear.linear(inter, wo, bq).singletonOrThrow());

            BertConfig config = BertConfig.miniLmL6();
            BertLayer layer = new BertLayer(config);
            layer.initialize(m, DataType.FLOAT32, new Shape(-1, -1, H));
            ParameterStore ps = new ParameterStore(m, false);
            NDArray x3 = x.reshape(B, T, H);
            time(
                    micros,
                    "whole BertLayer.forward",
                    reps,
                    () -> layer.forward(ps, new NDList(x3, mask), true).singletonOrThrow());
        }
        double sum =
                micros.entrySet().stream()
                        .filter(e -> !e.getKey().startsWith("whole"))
                        .mapToDouble(e -> weight(e.getKey()) * e.getValue())
                        .sum();
        micros.put("sum of the ops, as a layer calls them", sum);
        StringBuilder json = new StringBuilder("{\"impl\": \"djl\", \"reps\": " + reps);
        json.append(", \"libtorch\": \"").append(runtime.version()).append('"');
        micros.forEach((k, v) -> json.append(String.format(Locale.ROOT, ", \"%s\": %.1f", k, v)));
        System.out.println(json.append('}'));
    }

    /** How often one layer calls the operation timed under {@code name}. */
    static double weight(String name) {
        if (name.startsWith("embeddings") || name.startsWith("libtorch's")) {
            return 0; // once per model, not per layer
        }
        if (name.startsWith("LayerNorm")
                || name.startsWith("dropout (hidden")
                || name.startsWith("residual")) {
            return 2;
        }
        if (name.startsWith("linear 384->384")) {
            return 4;
        }
        if (name.startsWith("split heads")) {
            return 3;
        }
        return 1;
    }

    private static NDArray leaf(NDArray a) {
        a.setRequiresGradient(true);
        return a;
    }

    /**
     * The first decile of {@code op}'s microseconds. What each call made (its result and
     * intermediates, all in the inputs' manager) is closed straight after it is timed, as the
     * step's manager closes it; the close is not timed.
     */
    private static void time(Map<String, Double> out, String name, int reps, Supplier<NDArray> op) {
        NDManager manager = inputs;
        Set<NDArray> kept = Collections.newSetFromMap(new IdentityHashMap<>());
        kept.addAll(manager.getManagedArrays());
        List<Long> nanos = new ArrayList<>();
        for (int i = -30; i < reps; i++) {
            long start = System.nanoTime();
            op.get();
            long took = System.nanoTime() - start;
            for (NDArray a : manager.getManagedArrays()) {
                if (!kept.contains(a)) {
                    a.close();
                }
            }
            if (i >= 0) {
                nanos.add(took);
            }
        }
        long[] sorted = nanos.stream().mapToLong(Long::longValue).toArray();
        Arrays.sort(sorted);
        out.put(name, sorted[sorted.length / 10] / 1000.0);
    }
}
