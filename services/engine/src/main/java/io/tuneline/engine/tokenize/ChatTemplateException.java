package io.tuneline.engine.tokenize;

/** A chat template that cannot render a conversation, or whose answers cannot be located. */
public final class ChatTemplateException extends IllegalArgumentException {
    public ChatTemplateException(String message) {
        super(message);
    }
}
