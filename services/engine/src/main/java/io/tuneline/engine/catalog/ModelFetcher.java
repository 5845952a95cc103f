package io.tuneline.engine.catalog;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/**
 * Copies files of a remote model directory (an {@code s3://bucket/prefix/} URI) to a local one. The
 * engine has no object-store client: services that have one pass an implementation to {@link
 * ModelCatalog#resolve(String, ModelFetcher, Path)}.
 */
@FunctionalInterface
public interface ModelFetcher {
    /**
     * Copies each of {@code files} that exists below {@code uri} into {@code into} under the same
     * name; files that do not exist are skipped (the catalogue names what is missing).
     */
    void fetch(String uri, List<String> files, Path into) throws IOException;

    /** For callers without a store: an s3:// reference fails saying so. */
    ModelFetcher NONE =
            (uri, files, into) -> {
                throw new UnknownModelException(
                        "base model '"
                                + uri
                                + "' is in the object store, but this caller cannot read it (no"
                                + " model fetcher)");
            };
}
