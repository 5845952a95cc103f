package io.tuneline.serving.registry;

import java.util.List;
import java.util.OptionalInt;

/**
 * What serving needs of a registry version: its number, base model reference, the maximum sequence
 * length it was trained with (when the job set one) and the model directory's files.
 */
public record RegisteredVersion(
        String model,
        long version,
        String baseModel,
        String method,
        OptionalInt maxSeqLength,
        List<ModelFile> files) {

    /**
     * A file of the model directory: its path inside the directory ({@code config.json}, {@code
     * adapter/adapter_config.json}), where it is stored and its checksum.
     */
    public record ModelFile(String path, String uri, String sha256, long sizeBytes) {}

    /** The version number of a candidate: a run loaded for testing before it is registered. */
    public static final long CANDIDATE = -1;

    /** The name a candidate is served under: {@code NAME:candidate}. */
    public static final String CANDIDATE_SUFFIX = ":candidate";

    /**
     * {@code name:version}, how the API names a loaded version; {@code name:candidate} for a
     * candidate.
     */
    public String id() {
        return version == CANDIDATE ? model + CANDIDATE_SUFFIX : model + ":" + version;
    }

    /** Whether this is a candidate rather than a registered version. */
    public boolean candidate() {
        return version == CANDIDATE;
    }
}
