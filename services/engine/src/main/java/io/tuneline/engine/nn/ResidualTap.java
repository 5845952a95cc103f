package io.tuneline.engine.nn;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.UnaryOperator;

/**
 * Where a layer closes a sub-layer's residual connection: after the attention output and after the
 * feed-forward output. With nothing attached it computes exactly what the layer did before, {@code
 * residual + out} (pre-LN: GPT-2, Llama) or {@code LayerNorm(out + residual)} (post-LN: BERT). A
 * method attaches {@link Module}s here (bottleneck adapters), which then take over the residual sum
 * and the layer's own LayerNorm, as the {@code adapters} library's {@code BottleneckLayer} does
 * ({@code methods/bottleneck.py}, {@code bottleneck_layer_forward}).
 *
 * <p>A tap is a child block of its layer, and what is attached a child of the tap, so DJL's
 * parameter walk sees the attached parameters too. Each family places its taps at the module paths
 * the {@code adapters} library uses for its {@code BottleneckLayer}s ({@code attention.output} and
 * {@code output} in BERT, {@code attention_adapters} and {@code output_adapters} in GPT-2 and
 * Llama), so parameter names are the library's: {@code
 * <tap>.adapters.<name>.adapter_down.0.weight}.
 */
public final class ResidualTap extends AbstractBlock {
    /** Which residual connection of a layer: the library's location keys. */
    public enum Point {
        /** After the attention output projection ({@code mh_adapter}). */
        ATTENTION,
        /** After the feed-forward output projection ({@code output_adapter}). */
        FEED_FORWARD
    }

    /** What a method attaches at a tap. */
    public interface Module extends Block {
        /** Parameters under names relative to the module ({@code adapter_down.0.weight}). */
        Map<String, Parameter> namedParameters();

        /**
         * The sub-layer's residual connection with the module in it.
         *
         * @param out the sub-layer's output (after its dropout), (N, width)
         * @param residual the sub-layer's input, the residual stream (N, width)
         * @param layerNorm the layer's own LayerNorm after the sum (post-LN), or null (pre-LN)
         */
        NDArray apply(
                ParameterStore ps,
                NDArray out,
                NDArray residual,
                UnaryOperator<NDArray> layerNorm,
                boolean training);
    }

    private final Point point;
    private final int width;
    private final Map<String, Module> attached = new LinkedHashMap<>();

    public ResidualTap(Point point, int width) {
        this.point = point;
        this.width = width;
    }

    public Point point() {
        return point;
    }

    /** The hidden size of the residual stream at this tap. */
    public int width() {
        return width;
    }

    /**
     * Attaches {@code module} under {@code name}; its parameters are then {@code adapters.<name>.*}
     * relative to the tap.
     *
     * @throws IllegalStateException when the tap holds a module already (one at a time: the library
     *     composes several with Stack/Fuse, which the engine does not)
     */
    public void attach(String name, Module module) {
        if (!attached.isEmpty()) {
            throw new IllegalStateException(
                    "this residual tap already holds " + attached.keySet().iterator().next());
        }
        addChildBlock(name, module);
        attached.put(name, module);
    }

    public Map<String, Module> attached() {
        return Collections.unmodifiableMap(attached);
    }

    /** The attached modules' parameters relative to the tap: {@code adapters.<name>.<param>}. */
    public Map<String, Parameter> namedParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>();
        attached.forEach(
                (name, m) ->
                        m.namedParameters()
                                .forEach(
                                        (param, value) ->
                                                p.put("adapters." + name + "." + param, value)));
        return p;
    }

    /**
     * Closes the residual connection: through the attached module if any, else as the layer always
     * did ({@code bottleneck_layer_forward} with no active adapter).
     */
    public NDArray apply(
            ParameterStore ps,
            NDArray out,
            NDArray residual,
            UnaryOperator<NDArray> layerNorm,
            boolean training) {
        if (attached.isEmpty()) {
            NDArray sum = out.add(residual);
            return layerNorm == null ? sum : layerNorm.apply(sum);
        }
        return attached.values().iterator().next().apply(ps, out, residual, layerNorm, training);
    }

    @Override
    protected NDList forwardInternal(
            ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> params) {
        return new NDList(apply(ps, inputs.get(0), inputs.get(1), null, training));
    }

    @Override
    public Shape[] getOutputShapes(Shape[] inputShapes) {
        return new Shape[] {inputShapes[0]};
    }

    /** The parameters attached at {@code taps} (by module path) under their full names. */
    public static Map<String, Parameter> parameters(Map<String, ResidualTap> taps) {
        Map<String, Parameter> p = new LinkedHashMap<>();
        taps.forEach(
                (module, tap) ->
                        tap.namedParameters().forEach((name, v) -> p.put(module + "." + name, v)));
        return p;
    }
}
