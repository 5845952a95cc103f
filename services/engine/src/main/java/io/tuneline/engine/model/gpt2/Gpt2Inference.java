package io.tuneline.engine.model.gpt2;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import io.tuneline.engine.model.CausalLmInference;
import io.tuneline.engine.train.CausalLmLoss;
import io.tuneline.engine.train.LmExample;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

/**
 * Inference with a {@link Gpt2LmModel}: log-likelihood and perplexity of sequences, greedy
 * generation and seeded sampling with a temperature. No dropout, no gradients; arrays live in a
 * sub-manager per call. Generation runs the whole sequence through the model for every new token
 * (no key/value cache), which is fine for evaluation-sized outputs but quadratic in length; several
 * sequences can run as one batch ({@link #generateAll}).
 */
public final class Gpt2Inference implements CausalLmInference {
    private final Model model;
    private final Gpt2LmModel lm;

    public Gpt2Inference(Model model) {
        if (!(model.getBlock() instanceof Gpt2LmModel block)) {
            throw new IllegalArgumentException("the model's block is not a Gpt2LmModel");
        }
        this.model = model;
        this.lm = block;
    }

    /**
     * Log-likelihood of the scored tokens (natural log) and how many there were.
     *
     * @param logLikelihood sum over scored tokens of {@code log p(token | earlier tokens)}
     */
    public record Score(double logLikelihood, long tokens) {
        /** {@code exp(-logLikelihood / tokens)}; NaN when nothing was scored. */
        public double perplexity() {
            return tokens == 0 ? Double.NaN : Math.exp(-logLikelihood / tokens);
        }

        /** Mean negative log-likelihood per scored token: the causal LM loss. */
        public double meanLoss() {
            return tokens == 0 ? Double.NaN : -logLikelihood / tokens;
        }

        Score plus(Score other) {
            return new Score(logLikelihood + other.logLikelihood, tokens + other.tokens);
        }
    }

    /** Every token after the first is scored given the ones before it. */
    public Score score(long[] ids) {
        return score(LmExample.of(ids));
    }

    /** Tokens whose label is -100 are not scored (prompts). */
    public Score score(LmExample example) {
        checkLength(example.inputIds().length);
        try (NDManager m = model.getNDManager().newSubManager()) {
            Shape s = new Shape(1, example.inputIds().length);
            NDArray logits = logits(m, example.inputIds());
            NDArray[] sc = CausalLmLoss.sumAndCount(logits, m.create(example.labels(), s));
            return new Score(-sc[0].getFloat(), Math.round(sc[1].getFloat()));
        }
    }

    /** {@link #score(LmExample)} plus next-token argmax accuracy over the scored positions. */
    @Override
    public TokenStats tokenStats(LmExample example) {
        checkLength(example.inputIds().length);
        try (NDManager m = model.getNDManager().newSubManager()) {
            int t = example.inputIds().length;
            Shape s = new Shape(1, t);
            NDArray logits = logits(m, example.inputIds());
            NDArray[] sc = CausalLmLoss.sumAndCount(logits, m.create(example.labels(), s));
            long[] predicted =
                    logits.get(new NDIndex("0, 0:" + (t - 1) + ", :"))
                            .argMax(-1)
                            .toType(ai.djl.ndarray.types.DataType.INT64, false)
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
     * Greedy generation that stops after {@code stop} (included) or {@code maxNewTokens} tokens, or
     * where the model's positions run out; returns the new tokens only.
     */
    @Override
    public long[] greedyUntil(long[] prompt, int maxNewTokens, long stop) {
        return generate(prompt, maxNewTokens, CausalLmInference::argmax, t -> t != stop);
    }

    /** Each step reruns the whole sequence (no key/value cache), as {@link #greedyUntil}. */
    @Override
    public long[] generate(
            long[] prompt,
            int maxNewTokens,
            TokenChooser chooser,
            java.util.function.LongPredicate accepted) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("generation needs a prompt of at least one token");
        }
        checkLength(prompt.length);
        int room = Math.max(0, Math.min(maxNewTokens, lm.maxPositions() - prompt.length));
        long[] seq = Arrays.copyOf(prompt, prompt.length + room);
        int n = 0;
        while (n < room) {
            long next = chooser.choose(nextTokenLogits(Arrays.copyOf(seq, prompt.length + n)));
            seq[prompt.length + n++] = next;
            if (!accepted.test(next)) {
                break;
            }
        }
        return Arrays.copyOfRange(seq, prompt.length, prompt.length + n);
    }

    /**
     * The sequences decoded together: each step runs every sequence still going as one batch,
     * padded on the left to the longest (masked, each row numbered from its first real token), and
     * reads each row's last logits; a sequence that stops (its {@code accepted} says no, its budget
     * or the model's positions are spent) leaves the batch. Like {@link #generate}, each step
     * reruns the whole sequences (no key/value cache). With virtual tokens or a key/value prefix
     * attached the sequences run one after the other.
     */
    @Override
    public List<long[]> generateAll(List<Sequence> sequences) {
        if (sequences.size() < 2 || !lm.takesPositionIds()) {
            return CausalLmInference.super.generateAll(sequences);
        }
        int count = sequences.size();
        long[][] seq = new long[count][];
        int[] room = new int[count];
        int[] made = new int[count];
        List<Integer> active = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            long[] prompt = sequences.get(i).prompt();
            if (prompt.length == 0) {
                throw new IllegalArgumentException(
                        "generation needs a prompt of at least one token (sequence " + i + ")");
            }
            checkLength(prompt.length);
            room[i] =
                    Math.max(
                            0,
                            Math.min(
                                    sequences.get(i).maxNewTokens(),
                                    lm.maxPositions() - prompt.length));
            seq[i] = Arrays.copyOf(prompt, prompt.length + room[i]);
            if (room[i] > 0) {
                active.add(i);
            }
        }
        while (!active.isEmpty()) {
            int rows = active.size();
            int width = 0;
            for (int i : active) {
                width = Math.max(width, sequences.get(i).prompt().length + made[i]);
            }
            long[] ids = new long[rows * width];
            float[] mask = new float[rows * width];
            long[] positions = new long[rows * width];
            for (int r = 0; r < rows; r++) {
                int i = active.get(r);
                int length = sequences.get(i).prompt().length + made[i];
                int pad = width - length;
                System.arraycopy(seq[i], 0, ids, r * width + pad, length);
                for (int j = 0; j < length; j++) {
                    mask[r * width + pad + j] = 1f;
                    positions[r * width + pad + j] = j;
                }
            }
            float[] logits;
            try (NDManager m = model.getNDManager().newSubManager()) {
                Shape shape = new Shape(rows, width);
                NDList in =
                        new NDList(
                                m.create(ids, shape),
                                m.create(mask, shape),
                                m.create(positions, shape));
                logits =
                        lm.forward(new ParameterStore(m, false), in, false)
                                .singletonOrThrow()
                                .get(new NDIndex(":, -1, :"))
                                .toFloatArray();
            }
            int vocab = logits.length / rows;
            List<Integer> going = new ArrayList<>();
            for (int r = 0; r < rows; r++) {
                int i = active.get(r);
                Sequence s = sequences.get(i);
                long next =
                        s.chooser().choose(Arrays.copyOfRange(logits, r * vocab, (r + 1) * vocab));
                seq[i][s.prompt().length + made[i]++] = next;
                if (s.accepted().test(next) && made[i] < room[i]) {
                    going.add(i);
                }
            }
            active = going;
        }
        List<long[]> out = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            int from = sequences.get(i).prompt().length;
            out.add(Arrays.copyOfRange(seq[i], from, from + made[i]));
        }
        return out;
    }

    @Override
    public int maxPositions() {
        return lm.maxPositions();
    }

    /** Summed over {@code examples}: the corpus perplexity weights every scored token alike. */
    public Score score(List<LmExample> examples) {
        Score total = new Score(0, 0);
        for (LmExample e : examples) {
            total = total.plus(score(e));
        }
        return total;
    }

    /** The next-token distribution's logits after {@code ids} (V values). */
    public float[] nextTokenLogits(long[] ids) {
        checkLength(ids.length);
        try (NDManager m = model.getNDManager().newSubManager()) {
            return logits(m, ids).get(new NDIndex("0, -1, :")).toFloatArray();
        }
    }

    /** {@code prompt} followed by {@code newTokens} tokens, each the most likely next one. */
    public long[] greedy(long[] prompt, int newTokens) {
        return generate(prompt, newTokens, 0, null);
    }

    /**
     * {@code prompt} followed by {@code newTokens} tokens drawn from {@code softmax(logits /
     * temperature)} with a generator seeded by {@code seed}: the same seed gives the same text.
     */
    public long[] sample(long[] prompt, int newTokens, double temperature, long seed) {
        if (!(temperature > 0)) {
            throw new IllegalArgumentException(
                    "temperature must be positive (use greedy), was " + temperature);
        }
        return generate(prompt, newTokens, temperature, new Random(seed));
    }

    private long[] generate(long[] prompt, int newTokens, double temperature, Random random) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("generation needs a prompt of at least one token");
        }
        if (newTokens < 0) {
            throw new IllegalArgumentException("newTokens must not be negative");
        }
        checkLength(prompt.length + newTokens);
        long[] seq = Arrays.copyOf(prompt, prompt.length + newTokens);
        for (int i = prompt.length; i < seq.length; i++) {
            float[] next = nextTokenLogits(Arrays.copyOf(seq, i));
            seq[i] = random == null ? argmax(next) : draw(next, temperature, random);
        }
        return seq;
    }

    static int argmax(float[] logits) {
        return (int) CausalLmInference.argmax(logits);
    }

    static int draw(float[] logits, double temperature, Random random) {
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l / temperature);
        }
        double[] p = new double[logits.length];
        double sum = 0;
        for (int v = 0; v < p.length; v++) {
            p[v] = Math.exp(logits[v] / temperature - max);
            sum += p[v];
        }
        double u = random.nextDouble() * sum;
        for (int v = 0; v < p.length; v++) {
            u -= p[v];
            if (u < 0) {
                return v;
            }
        }
        return argmax(logits);
    }

    private NDArray logits(NDManager m, long[] ids) {
        NDArray input = m.create(ids, new Shape(1, ids.length));
        return lm.forward(new ParameterStore(m, false), new NDList(input), false)
                .singletonOrThrow();
    }

    private void checkLength(int length) {
        // Virtual tokens (prompt tuning, P-tuning) take the first positions: lm.maxPositions()
        // is what they leave; every forward pass here prepends them, so generation honours them.
        if (length > lm.maxPositions()) {
            throw new IllegalArgumentException(
                    length
                            + " tokens do not fit the model's "
                            + lm.maxPositions()
                            + " positions (n_positions"
                            + lm.virtualTokens()
                                    .map(v -> " less " + v.count() + " virtual tokens")
                                    .orElse("")
                            + ")");
        }
    }
}
