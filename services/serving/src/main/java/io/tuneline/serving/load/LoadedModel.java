package io.tuneline.serving.load;

import io.tuneline.serving.registry.RegisteredVersion;

/**
 * A version in memory: a sequence classifier ({@code ClassifierModel}) or a causal LM ({@code
 * LanguageModel}).
 */
public interface LoadedModel extends AutoCloseable {

    RegisteredVersion version();

    /** {@code classification} or {@code causal_lm}, as {@code GET /v1/models} shows it. */
    String task();

    /** Who uses this version's engine now and who waits for it. */
    ModelQueue queue();

    @Override
    void close();
}
