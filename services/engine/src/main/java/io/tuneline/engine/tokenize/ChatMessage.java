package io.tuneline.engine.tokenize;

/**
 * One turn of a conversation as chat templates read it ({@code message.role}, {@code .content}).
 */
public record ChatMessage(String role, String content) {}
