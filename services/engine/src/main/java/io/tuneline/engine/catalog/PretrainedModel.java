package io.tuneline.engine.catalog;

import io.tuneline.engine.model.bert.BertConfig;
import java.io.IOException;
import java.io.InputStream;

/**
 * A base model the catalogue resolved: its architecture, weights and tokenizer.
 *
 * @param name the reference it was resolved from, e.g. {@code minilm-l6}
 */
public record PretrainedModel(String name, BertConfig config, Source weights, Source tokenizer) {

    /** Where bytes come from: a class-path resource, a file, an object in the store. */
    public interface Source {
        InputStream open() throws IOException;

        String describe();
    }
}
