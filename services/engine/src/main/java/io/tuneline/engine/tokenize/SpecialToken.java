package io.tuneline.engine.tokenize;

/** A special token of a tokenizer: its text and its id. */
public record SpecialToken(String content, long id) {}
