package io.tuneline.engine.nn;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.nn.Parameter;
import ai.djl.training.ParameterStore;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Prompt tuning's soft prompt (Lester et al. 2021, arXiv:2104.08691): N trainable vectors that are
 * the virtual tokens themselves, PEFT's {@code PromptEmbedding} ({@code
 * peft/tuners/prompt_tuning/model.py}: {@code embedding(arange(N))} is the embedding's weight). Its
 * one parameter is named as PEFT's module path names it, {@code prompt_encoder.embedding.weight},
 * and is of type {@code OTHER} so weight decay skips it.
 */
public final class SoftPrompt implements VirtualTokens {
    /** The soft prompt's name, (N, token_dim). */
    public static final String EMBEDDING = "prompt_encoder.embedding.weight";

    private final Parameter embedding;

    /** A soft prompt starting at {@code initial} (N, hidden), which it keeps as its array. */
    public SoftPrompt(NDArray initial) {
        if (initial.getShape().dimension() != 2 || initial.getShape().get(0) < 1) {
            throw new IllegalArgumentException(
                    "a soft prompt is (N, hidden) with N >= 1, was " + initial.getShape());
        }
        embedding = PromptParameters.of(EMBEDDING, Parameter.Type.OTHER, initial);
    }

    public Parameter embedding() {
        return embedding;
    }

    @Override
    public int count() {
        return Math.toIntExact(embedding.getArray().getShape().get(0));
    }

    @Override
    public NDArray embeddings(ParameterStore ps, Device device, boolean training) {
        return ps.getValue(embedding, device, training);
    }

    @Override
    public Map<String, Parameter> namedParameters() {
        Map<String, Parameter> p = new LinkedHashMap<>();
        p.put(EMBEDDING, embedding);
        return p;
    }
}
