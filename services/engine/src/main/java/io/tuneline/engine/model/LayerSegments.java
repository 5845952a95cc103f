package io.tuneline.engine.model;

import ai.djl.ndarray.NDArray;

/**
 * One forward pass of a layered model cut at its layer boundaries: the embeddings, each transformer
 * layer on its own, then what sits above the last layer (a causal LM's final norm and head, a
 * classifier's pooling and head). What activation checkpointing (Chen et al. 2016,
 * arXiv:1604.06174; PyTorch's {@code torch.utils.checkpoint}) drives: it runs the layers without
 * recording, keeps only each layer's input, and re-runs one layer at a time with recording during
 * backward. Each call is the family's own code for that part, so running the parts in order
 * computes exactly what the model's {@code forward} does; masks and position tables are made once,
 * when the segments are.
 */
public interface LayerSegments {
    /** The input of layer 0: the token embeddings (B, T, H), arrays in the ids' manager. */
    NDArray embed();

    /** Whether a parameter of the embedding takes a gradient (it trains). */
    boolean embeddingTrains();

    int layers();

    /** Layer {@code i} on hidden states (B, T, H); its arrays are made in {@code x}'s manager. */
    NDArray layer(int i, NDArray x);

    /**
     * What sits above the last layer, over its output: a causal LM's final norm and head (logits
     * (B, T, vocab)), a classifier's pooling and head (logits (B, labels)).
     */
    NDArray output(NDArray x);
}
