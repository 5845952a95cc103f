package io.tuneline.engine.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.training.GradientCollector;
import io.tuneline.engine.model.TunableModel;
import io.tuneline.engine.nn.Dense;
import io.tuneline.engine.quant.Nf4Weight;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What the QLoRA memory-lever tests of every family share: one batch's gradients of every trained
 * parameter after a pass and their comparison, a run's losses and resume with and without
 * activation checkpointing, and a streamed NF4 load against quantizing after a full load.
 */
public final class CheckpointingChecks {
    private CheckpointingChecks() {}

    /** One batch's forward and backward pass, its arrays in {@code manager}. */
    public interface Pass {
        void run(NDManager manager, GradientCollector collector);
    }

    /**
     * Runs {@code pass} inside a gradient collector and returns the gradient of every parameter of
     * {@code model} that requires one, by name, then zeroes them for the next pass.
     */
    public static Map<String, float[]> collect(Model model, TunableModel tunable, Pass pass) {
        Map<String, Parameter> trained = new LinkedHashMap<>();
        tunable.namedParameters()
                .forEach(
                        (name, p) -> {
                            if (p.requiresGradient()) {
                                p.getArray().setRequiresGradient(true);
                                trained.put(name, p);
                            }
                        });
        try (NDManager m = model.getNDManager().newSubManager();
                GradientCollector collector = Engine.getInstance().newGradientCollector()) {
            pass.run(m, collector);
        }
        Map<String, float[]> out = new LinkedHashMap<>();
        trained.forEach(
                (name, p) -> {
                    try (NDArray g = p.getArray().getGradient()) {
                        out.put(name, g.toFloatArray());
                        g.set(new NDIndex("..."), 0f);
                    }
                });
        return out;
    }

    /** A training run of the family's test, its step reports added to {@code steps}. */
    public interface Run {
        void train(
                TrainingSettings settings,
                List<TrainingListener.StepReport> steps,
                Checkpointing checkpointing)
                throws Exception;
    }

    /**
     * {@code settings} (six steps) with activation checkpointing has the losses of the run without
     * (within {@code tol}), and a run resumed from its step-4 checkpoint continues it exactly.
     */
    public static void assertSameLossesAndExactResume(
            Run run, TrainingSettings settings, Path dir, double tol) throws Exception {
        List<TrainingListener.StepReport> plain = new ArrayList<>();
        run.train(settings, plain, Checkpointing.none());
        List<TrainingListener.StepReport> full = new ArrayList<>();
        run.train(
                settings.withActivationCheckpointing(true),
                full,
                ResumeRuns.every(dir.resolve("ckpt"), 2));
        assertThat(full).hasSize(plain.size());
        for (int i = 0; i < plain.size(); i++) {
            assertThat(full.get(i).loss())
                    .as("step %d", i + 1)
                    .isCloseTo(plain.get(i).loss(), within(tol));
        }
        List<TrainingListener.StepReport> resumed = new ArrayList<>();
        run.train(
                settings.withActivationCheckpointing(true),
                resumed,
                ResumeRuns.resumeFrom(dir.resolve("ckpt"), 4, dir.resolve("ckpt2")));
        ResumeRuns.assertContinues(full, resumed, 6, 4);
    }

    /**
     * Each linear layer's NF4 base weight, by module path: copies on the heap, still readable after
     * the model is closed.
     */
    public static Map<String, Nf4Weight> nf4Bases(TunableModel model) {
        Map<String, Nf4Weight> out = new LinkedHashMap<>();
        model.linears().forEach((m, d) -> out.put(m, ((Dense.WeightStore.Nf4) d.base()).weight()));
        return out;
    }

    /**
     * Every linear layer of {@code streamed} (a model loaded with QLoRA's streaming load) holds in
     * NF4 the packed codes, scales, shape and original dtype of {@code reference} (the same model
     * quantized after a full load), and its float32 weight is no parameter.
     */
    public static void assertSameNf4(
            TunableModel streamed, Map<String, Nf4Weight> reference, int linears) {
        assertThat(streamed.linears()).hasSize(linears);
        assertThat(streamed.linears().keySet()).isEqualTo(reference.keySet());
        streamed.linears()
                .forEach(
                        (m, d) -> {
                            var nf4 = ((Dense.WeightStore.Nf4) d.base()).weight();
                            var ref = reference.get(m);
                            assertThat(nf4.packed()).as(m).isEqualTo(ref.packed());
                            assertThat(nf4.absmax())
                                    .as(m)
                                    .usingRecursiveComparison()
                                    .isEqualTo(ref.absmax());
                            assertThat(nf4.shape()).as(m).isEqualTo(ref.shape());
                            assertThat(nf4.dtype()).as(m).isEqualTo(ref.dtype());
                            // Never allocated in float32: no array, no parameter.
                            assertThat(streamed.namedParameters()).doesNotContainKey(m + ".weight");
                        });
    }

    /** Sets every LoRA B to normal(0, 0.1): B starts at zero, which would zero A's gradient. */
    public static void randomizeLoraB(TunableModel model) {
        model.namedParameters()
                .forEach(
                        (name, p) -> {
                            if (name.endsWith("lora_B.weight")) {
                                NDArray a = p.getArray();
                                try (NDArray r =
                                        a.getManager()
                                                .randomNormal(
                                                        0f, 0.1f, a.getShape(), a.getDataType())) {
                                    a.set(new NDIndex("..."), r);
                                }
                            }
                        });
    }

    /** Ids, mask and labels of causal-LM examples, right-padded with id 0, mask 0, label -100. */
    public static NDArray[] lmBatch(NDManager m, List<LmExample> examples) {
        int t = examples.stream().mapToInt(e -> e.inputIds().length).max().orElseThrow();
        long[] ids = new long[examples.size() * t];
        long[] mask = new long[ids.length];
        long[] labels = new long[ids.length];
        Arrays.fill(labels, -100);
        for (int i = 0; i < examples.size(); i++) {
            LmExample e = examples.get(i);
            System.arraycopy(e.inputIds(), 0, ids, i * t, e.inputIds().length);
            System.arraycopy(e.labels(), 0, labels, i * t, e.labels().length);
            Arrays.fill(mask, i * t, i * t + e.inputIds().length, 1);
        }
        Shape s = new Shape(examples.size(), t);
        return new NDArray[] {m.create(ids, s), m.create(mask, s), m.create(labels, s)};
    }

    /**
     * The two maps have the same names and gradients within {@code tol}, and some gradient is not
     * zero (so the comparison means something).
     */
    public static void assertEqual(Map<String, float[]> a, Map<String, float[]> b, double tol) {
        assertThat(b.keySet()).isEqualTo(a.keySet());
        a.forEach(
                (name, g) -> {
                    float[] h = b.get(name);
                    double max = 0;
                    for (int i = 0; i < g.length; i++) {
                        max = Math.max(max, Math.abs(g[i] - h[i]));
                    }
                    assertThat(max).as(name).isLessThanOrEqualTo(tol);
                });
        assertThat(a.values().stream().anyMatch(g -> maxAbs(g) > 1e-4)).isTrue();
    }

    /** The largest difference between the two maps' gradients. */
    public static double maxDiff(Map<String, float[]> a, Map<String, float[]> b) {
        double max = 0;
        for (String name : a.keySet()) {
            float[] g = a.get(name);
            float[] h = b.get(name);
            for (int i = 0; i < g.length; i++) {
                max = Math.max(max, Math.abs(g[i] - h[i]));
            }
        }
        return max;
    }

    private static double maxAbs(float[] g) {
        double max = 0;
        for (float v : g) {
            max = Math.max(max, Math.abs(v));
        }
        return max;
    }
}
