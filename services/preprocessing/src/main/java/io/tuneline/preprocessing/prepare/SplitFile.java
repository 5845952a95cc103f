package io.tuneline.preprocessing.prepare;

import it.unimi.dsi.fastutil.longs.LongArrayList;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;

/**
 * One split being written to a local file as JSON Lines, with its statistics: examples, labels,
 * token lengths before truncation, truncations, and for a packed causal split the blocks written.
 *
 * <p>Lines are written by {@link JsonLine}, byte for byte what Jackson wrote from a tree of the
 * same fields (one tree node per token id made that most of the pass that writes the splits).
 */
final class SplitFile implements AutoCloseable {
    /** Hugging Face's ignore index: positions whose label is this add nothing to the loss. */
    static final long IGNORE = -100;

    final String name;
    final Path file;
    final TokenLengths lengths = new TokenLengths();
    final Map<String, Long> labels = new TreeMap<>();
    long examples;
    long truncated;
    long blocks;

    private final OutputStream out;
    private final JsonLine line = new JsonLine();
    private final int maxLength;
    private final boolean pack;
    private final LongArrayList blockIds = new LongArrayList();
    private final LongArrayList blockLabels = new LongArrayList();
    private int blockExamples;

    SplitFile(String name, Path dir, int maxLength, boolean pack) throws IOException {
        this.name = name;
        this.file = dir.resolve(name + ".jsonl");
        this.out = new BufferedOutputStream(Files.newOutputStream(file), 1 << 16);
        this.maxLength = maxLength;
        this.pack = pack;
    }

    /**
     * Adds one example with its tokens; {@code targets} (null for classification) are the
     * per-position labels of a causal example, {@link #IGNORE} where no loss is taken.
     *
     * @param length the example's tokens before truncation; {@code ids} and {@code targets} may be
     *     cut to max_seq_length already
     */
    void add(Example example, int length, long[] ids, long[] targets) throws IOException {
        examples++;
        lengths.add(length);
        if (example instanceof Example.Classification c) {
            labels.merge(c.label(), 1L, Long::sum);
        }
        if (length > maxLength) {
            truncated++;
        }
        if (ids.length > maxLength) {
            ids = java.util.Arrays.copyOf(ids, maxLength);
            targets = targets == null ? null : java.util.Arrays.copyOf(targets, maxLength);
        }
        if (pack) {
            if (!blockIds.isEmpty() && blockIds.size() + ids.length > maxLength) {
                flushBlock();
            }
            blockIds.addElements(blockIds.size(), ids);
            blockLabels.addElements(blockLabels.size(), targets);
            blockExamples++;
            return;
        }
        line.start();
        line.fields(example);
        line.array("input_ids", ids);
        if (targets != null) {
            line.array("labels", targets);
        }
        line.end(out);
    }

    /**
     * Sequence packing for causal LM training: whole examples laid end to end (each ends with the
     * end-of-sequence token) into blocks of at most max_seq_length tokens, so no step is spent on
     * padding. An example never straddles two blocks, so its answer mask stays whole.
     */
    private void flushBlock() throws IOException {
        line.start();
        line.array("input_ids", blockIds.elements(), blockIds.size());
        line.array("labels", blockLabels.elements(), blockLabels.size());
        line.number("examples", blockExamples);
        line.end(out);
        blocks++;
        blockIds.clear();
        blockLabels.clear();
        blockExamples = 0;
    }

    @Override
    public void close() throws IOException {
        if (pack && !blockIds.isEmpty()) {
            flushBlock();
        }
        out.close();
    }
}
