package io.tuneline.evaluation.metrics;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Causal language-model quality on one test set, from per-example numbers so the bootstrap can
 * resample examples:
 *
 * <ul>
 *   <li>{@code loss}: the mean negative log-likelihood per scored token (tokens whose label is not
 *       -100), all examples' tokens weighing alike;
 *   <li>{@code perplexity}: {@code exp(loss)};
 *   <li>{@code token_accuracy}: the share of scored tokens that are the model's most likely next
 *       token given the true ones before (teacher forcing);
 *   <li>for instruction data, {@code exact_match} and {@code token_f1} of the model's greedy answer
 *       against the reference completion, after SQuAD's normalisation (lower case, punctuation and
 *       the articles a/an/the removed, whitespace collapsed), averaged over examples.
 * </ul>
 */
public final class CausalLmMetrics {
    private static final Pattern PUNCTUATION = Pattern.compile("\\p{P}|\\p{S}");
    private static final Set<String> ARTICLES = Set.of("a", "an", "the");

    private CausalLmMetrics() {}

    /**
     * One test example scored by one model.
     *
     * @param logLikelihood sum of the natural-log probabilities of its scored tokens
     * @param tokens how many tokens were scored
     * @param correct how many of them were the argmax next token
     */
    public record ExampleScore(double logLikelihood, long tokens, long correct) {}

    /**
     * Exact match and token F1 of one generated answer.
     *
     * @param exactMatch 1 or 0
     */
    public record AnswerScore(double exactMatch, double f1) {
        public static AnswerScore of(String prediction, String reference) {
            return new AnswerScore(
                    CausalLmMetrics.exactMatch(prediction, reference) ? 1 : 0,
                    CausalLmMetrics.tokenF1(prediction, reference));
        }
    }

    /**
     * The metrics over the examples at {@code indices} (repeats allowed, as the bootstrap draws
     * them). {@code answers} is empty, or has one entry per example.
     */
    public static Map<String, Double> compute(
            List<ExampleScore> scores, List<AnswerScore> answers, int[] indices) {
        double ll = 0;
        long tokens = 0;
        long correct = 0;
        double em = 0;
        double f1 = 0;
        for (int i : indices) {
            ExampleScore s = scores.get(i);
            ll += s.logLikelihood();
            tokens += s.tokens();
            correct += s.correct();
            if (!answers.isEmpty()) {
                em += answers.get(i).exactMatch();
                f1 += answers.get(i).f1();
            }
        }
        Map<String, Double> m = new LinkedHashMap<>();
        double loss = tokens == 0 ? Double.NaN : -ll / tokens;
        m.put("perplexity", Math.exp(loss));
        m.put("token_accuracy", tokens == 0 ? Double.NaN : (double) correct / tokens);
        m.put("loss", loss);
        if (!answers.isEmpty()) {
            m.put("exact_match", indices.length == 0 ? Double.NaN : em / indices.length);
            m.put("token_f1", indices.length == 0 ? Double.NaN : f1 / indices.length);
        }
        return m;
    }

    /** Every metric with its percentile bootstrap 95% interval over examples. */
    public static Map<String, Estimate> withIntervals(
            List<ExampleScore> scores, List<AnswerScore> answers, int samples, long seed) {
        if (!answers.isEmpty() && answers.size() != scores.size()) {
            throw new IllegalArgumentException(
                    answers.size() + " answers for " + scores.size() + " examples");
        }
        return Bootstrap.estimate(
                scores.size(), samples, seed, idx -> compute(scores, answers, idx));
    }

    /** SQuAD's answer normalisation, as its tokens. */
    static List<String> normalise(String s) {
        String lower = PUNCTUATION.matcher(s.toLowerCase(Locale.ROOT)).replaceAll(" ");
        List<String> tokens = new ArrayList<>();
        for (String t : lower.trim().split("\\s+")) {
            if (!t.isEmpty() && !ARTICLES.contains(t)) {
                tokens.add(t);
            }
        }
        return tokens;
    }

    public static boolean exactMatch(String prediction, String reference) {
        return normalise(prediction).equals(normalise(reference));
    }

    /**
     * F1 of the normalised tokens' multiset overlap: 2PR / (P + R); 1 when both are empty, 0 when
     * only one is.
     */
    public static double tokenF1(String prediction, String reference) {
        List<String> p = normalise(prediction);
        List<String> r = normalise(reference);
        if (p.isEmpty() || r.isEmpty()) {
            return p.isEmpty() && r.isEmpty() ? 1 : 0;
        }
        Map<String, Integer> counts = new HashMap<>();
        r.forEach(t -> counts.merge(t, 1, Integer::sum));
        int common = 0;
        for (String t : p) {
            Integer c = counts.get(t);
            if (c != null && c > 0) {
                common++;
                counts.put(t, c - 1);
            }
        }
        if (common == 0) {
            return 0;
        }
        double precision = (double) common / p.size();
        double recall = (double) common / r.size();
        return 2 * precision * recall / (precision + recall);
    }
}
