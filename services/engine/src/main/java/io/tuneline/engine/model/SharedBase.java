package io.tuneline.engine.model;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import ai.djl.util.PairList;
import io.tuneline.engine.nn.Dense;
import java.lang.reflect.Field;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.Set;

/**
 * Lets a tuned model compute with the frozen weights of a base loaded once, instead of a copy of
 * them: serving holds one base per base model and several versions (LoRA adapters, prompts,
 * prefixes, bottleneck adapters) on top, as vLLM and PEFT's multi-adapter inference do. The tuned
 * model is built from the same configuration as the base but not initialized; {@link #share} then
 * points each of its parameters at the base's array in the same place, so that initializing it
 * allocates nothing for them. Methods attach afterwards (their own parameters are new arrays) and
 * freeze the base as they always do, which changes nothing for an array that is frozen already.
 *
 * <p>The arrays stay owned by the base's manager: closing the tuned model's manager leaves them
 * alone, and the base must outlive every tuned model that shares it.
 */
public final class SharedBase {
    private static final Field ARRAY = arrayField();

    private SharedBase() {}

    /**
     * Points every parameter of {@code tuned} at the array of {@code base}'s parameter in the same
     * place of the same structure; returns how many. {@code base} is initialized and loaded, {@code
     * tuned} is built alike and not initialized yet.
     *
     * @throws IllegalArgumentException when the two blocks differ in a parameter's place or shape
     *     (another configuration), naming it
     * @throws IllegalStateException when a parameter of {@code tuned} holds an array already
     */
    public static int share(Block base, Block tuned) {
        PairList<String, Parameter> from = base.getParameters();
        PairList<String, Parameter> to = tuned.getParameters();
        if (from.size() != to.size()) {
            throw new IllegalArgumentException(
                    "the base has "
                            + from.size()
                            + " parameters, the tuned model "
                            + to.size()
                            + ": they are not built from the same configuration");
        }
        for (int i = 0; i < to.size(); i++) {
            Pair<String, Parameter> b = from.get(i);
            Pair<String, Parameter> t = to.get(i);
            if (!b.getKey().equals(t.getKey())) {
                throw new IllegalArgumentException(
                        "parameter "
                                + i
                                + " is "
                                + b.getKey()
                                + " in the base and "
                                + t.getKey()
                                + " in the tuned model");
            }
            NDArray array = b.getValue().getArray();
            long[] want = t.getValue().getShape().getShape();
            if (!Arrays.equals(array.getShape().getShape(), want)) {
                throw new IllegalArgumentException(
                        "parameter "
                                + t.getKey()
                                + " has shape "
                                + Arrays.toString(array.getShape().getShape())
                                + " in the base and "
                                + Arrays.toString(want)
                                + " in the tuned model");
            }
            if (t.getValue().isInitialized()) {
                throw new IllegalStateException(
                        "parameter " + t.getKey() + " of the tuned model holds an array already");
            }
        }
        for (int i = 0; i < to.size(); i++) {
            Parameter t = to.get(i).getValue();
            // Parameter.setArray refuses a parameter whose shape the block declared (every layer
            // of the engine declares its shapes, so that checkpoints load before a forward pass),
            // and DJL has no other way to hand a parameter an existing array.
            try {
                ARRAY.set(t, from.get(i).getValue().getArray());
            } catch (IllegalAccessException e) {
                throw new IllegalStateException("cannot set the array of " + t.getName(), e);
            }
        }
        return to.size();
    }

    /** The arrays of {@code block}'s parameters that are {@code base}'s own arrays. */
    public static Set<NDArray> sharedArrays(Block base, Block block) {
        Set<NDArray> ofBase = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Parameter p : base.getParameters().values()) {
            if (p.isInitialized()) {
                ofBase.add(p.getArray());
            }
        }
        Set<NDArray> shared = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Parameter p : block.getParameters().values()) {
            if (p.isInitialized() && ofBase.contains(p.getArray())) {
                shared.add(p.getArray());
            }
        }
        return shared;
    }

    /** The tensor where two models differ most, and by how much (largest absolute difference). */
    public record Difference(String name, double value) {}

    /**
     * Where {@code onBase} (a version built on a shared base with its method on top) differs most
     * from {@code whole} (the same version loaded from its own merged weights and method state),
     * tensor by tensor under the Hugging Face names of {@code whole}: a linear layer with deltas is
     * compared as its merged weight ({@link Dense#mergedWeight}), every other tensor as it is.
     * Serving keeps a version on the shared base only when this is at rounding level: a base that
     * is not the one the version was trained on (a re-uploaded base directory, a base held in bf16
     * while training) shows here, before any request is answered.
     *
     * @throws IllegalArgumentException when a tensor of {@code whole} has no counterpart
     */
    public static Difference largestDifference(TunableModel whole, TunableModel onBase) {
        Map<String, Parameter> mine = onBase.namedParameters();
        Map<String, Dense> linears = onBase.linears();
        Difference worst = new Difference("", 0);
        for (Map.Entry<String, Parameter> e : whole.namedParameters().entrySet()) {
            String name = e.getKey();
            NDArray expected = e.getValue().getArray();
            String module = name.endsWith(".weight") ? name.substring(0, name.length() - 7) : "";
            Dense dense = linears.get(module);
            double diff;
            if (dense != null && !dense.deltas().isEmpty()) {
                try (NDArray merged = dense.mergedWeight();
                        NDArray d = merged.sub(expected).abs().max()) {
                    diff = d.getFloat();
                }
            } else {
                Parameter p = mine.get(name);
                if (p == null) {
                    throw new IllegalArgumentException(
                            "the model built on the base has no tensor " + name);
                }
                if (!Arrays.equals(
                        p.getArray().getShape().getShape(), expected.getShape().getShape())) {
                    return new Difference(name, Double.POSITIVE_INFINITY);
                }
                try (NDArray d = p.getArray().sub(expected).abs().max()) {
                    diff = d.getFloat();
                }
            }
            if (!(diff <= worst.value())) {
                worst = new Difference(name, diff);
            }
        }
        return worst;
    }

    private static Field arrayField() {
        try {
            Field f = Parameter.class.getDeclaredField("array");
            f.setAccessible(true);
            return f;
        } catch (NoSuchFieldException e) {
            throw new ExceptionInInitializerError(
                    "DJL's Parameter has no field 'array' any more; SharedBase needs another way"
                            + " to share arrays: "
                            + e);
        }
    }
}
