package io.tuneline.engine.model.llama;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import io.tuneline.engine.model.CausalLmInference;
import io.tuneline.engine.train.CausalLmLoss;
import io.tuneline.engine.train.LmExample;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Greedy generation with a Llama-family model, with a key/value cache (each step computes only the
 * new token) or without (each step reruns the whole sequence, quadratic in length). Both give the
 * same tokens; the cache is what makes generation from a real checkpoint affordable.
 */
public final class LlamaInference implements CausalLmInference {
    private final Model model;
    private final LlamaLmModel lm;

    /** Scoring and greedy answers with the model {@link LlamaCheckpoint#load} returned. */
    public LlamaInference(Model model) {
        if (!(model.getBlock() instanceof LlamaLmModel block)) {
            throw new IllegalArgumentException("the model's block is not a LlamaLmModel");
        }
        this.model = model;
        this.lm = block;
    }

    @Override
    public int maxPositions() {
        return lm.maxPositions();
    }

    /** One forward pass without cache; positions whose label is -100 are not scored. */
    @Override
    public TokenStats tokenStats(LmExample example) {
        int t = example.inputIds().length;
        try (NDManager m = model.getNDManager().newSubManager()) {
            Shape s = new Shape(1, t);
            NDArray logits =
                    lm.logits(
                            new ParameterStore(m, false),
                            m.create(example.inputIds(), s),
                            null,
                            null,
                            false);
            NDArray[] sc = CausalLmLoss.sumAndCount(logits, m.create(example.labels(), s));
            long[] predicted =
                    logits.get(new NDIndex("0, 0:" + (t - 1) + ", :"))
                            .argMax(-1)
                            .toType(DataType.INT64, false)
                            .toLongArray();
            long correct = 0;
            for (int i = 1; i < t; i++) {
                long label = example.labels()[i];
                if (label != CausalLmLoss.IGNORE && predicted[i - 1] == label) {
                    correct++;
                }
            }
            return new TokenStats(-sc[0].getFloat(), Math.round(sc[1].getFloat()), correct);
        }
    }

    /**
     * Greedy generation with the key/value cache: the prompt in one pass, then one token per step;
     * stops after {@code stop} (included), after {@code maxNewTokens}, or at {@code
     * max_position_embeddings}.
     */
    @Override
    public long[] greedyUntil(long[] prompt, int maxNewTokens, long stop) {
        return generate(prompt, maxNewTokens, CausalLmInference::argmax, t -> t != stop);
    }

    /**
     * With the key/value cache: the prompt in one pass, then one token per step; the last
     * position's logits are copied out for {@code chooser}.
     */
    @Override
    public long[] generate(
            long[] prompt,
            int maxNewTokens,
            TokenChooser chooser,
            java.util.function.LongPredicate accepted) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("generation needs a prompt of at least one token");
        }
        int room = Math.max(0, Math.min(maxNewTokens, lm.maxPositions() - prompt.length));
        long[] out = new long[room];
        int n = 0;
        try (NDManager m = model.getNDManager().newSubManager();
                LlamaKvCache cache = new LlamaKvCache(m, lm.config().layers())) {
            ParameterStore ps = new ParameterStore(m, false);
            long[] input = prompt;
            while (n < room) {
                float[] logits;
                try (NDManager step = m.newSubManager()) {
                    NDArray ids = step.create(input, new Shape(1, input.length));
                    NDArray hidden = lm.decoder().hidden(ps, ids, null, cache, false);
                    logits =
                            lm.head(ps, hidden.get(new NDIndex(":, -1:, :")), false)
                                    .reshape(-1)
                                    .toType(DataType.FLOAT32, false)
                                    .toFloatArray();
                }
                long next = chooser.choose(logits);
                out[n++] = next;
                if (!accepted.test(next)) {
                    break;
                }
                input = new long[] {next};
            }
        }
        return Arrays.copyOf(out, n);
    }

    /**
     * The sequences decoded together through one key/value cache: the prompts padded on the left to
     * the longest (masked, each row's positions from its first real token: {@link
     * LlamaDecoder#hiddenLeftPadded}) in one pass, then one token per sequence per step; a sequence
     * that stops (its {@code accepted} says no, its budget or the model's positions are spent)
     * leaves the batch and its rows leave the cache. With virtual tokens or a key/value prefix
     * attached the sequences run one after the other.
     */
    @Override
    public List<long[]> generateAll(List<Sequence> sequences) {
        if (sequences.size() < 2 || !lm.decoder().takesLeftPaddedBatches()) {
            return CausalLmInference.super.generateAll(sequences);
        }
        int count = sequences.size();
        long[][] out = new long[count][];
        int[] room = new int[count];
        int longest = 0;
        for (int i = 0; i < count; i++) {
            Sequence s = sequences.get(i);
            if (s.prompt().length == 0) {
                throw new IllegalArgumentException(
                        "generation needs a prompt of at least one token (sequence " + i + ")");
            }
            room[i] =
                    Math.max(0, Math.min(s.maxNewTokens(), lm.maxPositions() - s.prompt().length));
            out[i] = new long[room[i]];
            longest = Math.max(longest, s.prompt().length);
        }
        int[] made = new int[count];
        List<Integer> active = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            if (room[i] > 0) {
                active.add(i);
            }
        }
        // Each active row's mask: its padding (0), then its prompt and generated tokens (1).
        List<float[]> masks = new ArrayList<>();
        long[] input = new long[active.size() * longest];
        for (int r = 0; r < active.size(); r++) {
            long[] prompt = sequences.get(active.get(r)).prompt();
            int pad = longest - prompt.length;
            System.arraycopy(prompt, 0, input, r * longest + pad, prompt.length);
            float[] mask = new float[longest];
            Arrays.fill(mask, pad, longest, 1f);
            masks.add(mask);
        }
        int width = longest;
        try (NDManager m = model.getNDManager().newSubManager();
                LlamaKvCache cache = new LlamaKvCache(m, lm.config().layers())) {
            ParameterStore ps = new ParameterStore(m, false);
            while (!active.isEmpty()) {
                int rows = active.size();
                float[] logits;
                try (NDManager step = m.newSubManager()) {
                    float[] flatMask = new float[rows * masks.get(0).length];
                    long[] pads = new long[rows];
                    for (int r = 0; r < rows; r++) {
                        float[] mask = masks.get(r);
                        System.arraycopy(mask, 0, flatMask, r * mask.length, mask.length);
                        pads[r] = longest - sequences.get(active.get(r)).prompt().length;
                    }
                    NDArray ids = step.create(input, new Shape(rows, width));
                    NDArray mask = step.create(flatMask, new Shape(rows, masks.get(0).length));
                    NDArray hidden = lm.decoder().hiddenLeftPadded(ps, ids, mask, cache, pads);
                    logits =
                            lm.head(ps, hidden.get(new NDIndex(":, -1:, :")), false)
                                    .toType(DataType.FLOAT32, false)
                                    .toFloatArray();
                }
                int vocab = logits.length / rows;
                List<Integer> going = new ArrayList<>();
                List<Long> rowsKept = new ArrayList<>();
                List<Long> next = new ArrayList<>();
                for (int r = 0; r < rows; r++) {
                    int i = active.get(r);
                    Sequence s = sequences.get(i);
                    long token =
                            s.chooser()
                                    .choose(Arrays.copyOfRange(logits, r * vocab, (r + 1) * vocab));
                    out[i][made[i]++] = token;
                    if (s.accepted().test(token) && made[i] < room[i]) {
                        going.add(i);
                        rowsKept.add((long) r);
                        next.add(token);
                    }
                }
                if (going.size() < rows && !going.isEmpty()) {
                    cache.keepRows(rowsKept.stream().mapToLong(Long::longValue).toArray());
                }
                List<float[]> kept = new ArrayList<>();
                for (long r : rowsKept) {
                    float[] mask = masks.get((int) r);
                    float[] grown = Arrays.copyOf(mask, mask.length + 1);
                    grown[mask.length] = 1f;
                    kept.add(grown);
                }
                masks = kept;
                active = going;
                input = next.stream().mapToLong(Long::longValue).toArray();
                width = 1;
            }
        }
        List<long[]> result = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            result.add(Arrays.copyOf(out[i], made[i]));
        }
        return result;
    }

    /**
     * Appends {@code newTokens} argmax tokens to {@code prompt} (one sequence, no padding) and
     * returns the generated tokens only.
     */
    public static long[] greedy(
            LlamaLmModel model, NDManager manager, long[] prompt, int newTokens, boolean useCache) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("greedy generation needs at least one prompt token");
        }
        long[] out = new long[newTokens];
        long[] sequence = Arrays.copyOf(prompt, prompt.length + newTokens);
        try (NDManager m = manager.newSubManager();
                LlamaKvCache cache =
                        useCache ? new LlamaKvCache(m, model.config().layers()) : null) {
            ParameterStore ps = new ParameterStore(m, false);
            for (int step = 0; step < newTokens; step++) {
                int length = prompt.length + step;
                try (NDManager stepManager = m.newSubManager()) {
                    long[] input =
                            useCache && step > 0
                                    ? new long[] {sequence[length - 1]}
                                    : Arrays.copyOf(sequence, length);
                    NDArray ids = stepManager.create(input, new Shape(1, input.length));
                    NDArray hidden = model.decoder().hidden(ps, ids, null, cache, false);
                    NDArray last = hidden.get(new NDIndex(":, -1:, :"));
                    NDArray logits = model.head(ps, last, false);
                    long next = logits.reshape(-1).argMax().toType(DataType.INT64, false).getLong();
                    sequence[length] = next;
                    out[step] = next;
                }
            }
        }
        return out;
    }
}
