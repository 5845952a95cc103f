package io.tuneline.preprocessing.prepare;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
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
 */
final class SplitFile implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();

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
        ObjectNode n = example.toJson();
        put(n.putArray("input_ids"), ids);
        if (targets != null) {
            put(n.putArray("labels"), targets);
        }
        write(n);
    }

    /**
     * Sequence packing for causal LM training: whole examples laid end to end (each ends with the
     * end-of-sequence token) into blocks of at most max_seq_length tokens, so no step is spent on
     * padding. An example never straddles two blocks, so its answer mask stays whole.
     */
    private void flushBlock() throws IOException {
        ObjectNode n = JSON.createObjectNode();
        put(n.putArray("input_ids"), blockIds.toLongArray());
        put(n.putArray("labels"), blockLabels.toLongArray());
        n.put("examples", blockExamples);
        write(n);
        blocks++;
        blockIds.clear();
        blockLabels.clear();
        blockExamples = 0;
    }

    private static void put(ArrayNode a, long[] values) {
        for (long v : values) {
            a.add(v);
        }
    }

    private void write(ObjectNode n) throws IOException {
        out.write(JSON.writeValueAsBytes(n));
        out.write('\n');
    }

    @Override
    public void close() throws IOException {
        if (pack && !blockIds.isEmpty()) {
            flushBlock();
        }
        out.close();
    }
}
