package io.tuneline.engine.train;

/** One classification example: a text and the index of its label. */
public record LabelledText(String text, int label) {}
