package io.tuneline.engine.model.gpt2;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.Model;
import io.tuneline.engine.runtime.EngineRuntime;
import io.tuneline.engine.train.LmExample;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Scoring and generation against the plain-Java reference. */
class Gpt2InferenceTest {
    @TempDir static Path dir;

    private static Map<String, float[]> weights;
    private static Gpt2Reference reference;
    private static Model model;
    private static Gpt2Inference inference;

    @BeforeAll
    static void load() throws Exception {
        EngineRuntime runtime = EngineRuntime.start(2);
        weights = TinyGpt2.randomWeights(21);
        reference = new Gpt2Reference(TinyGpt2.CONFIG, weights);
        model = Gpt2Checkpoint.load(TinyGpt2.write(dir, weights, false), runtime.device());
        inference = new Gpt2Inference(model);
    }

    @AfterAll
    static void close() {
        model.close();
    }

    /** log softmax(logits)[token] in doubles. */
    private static double logProb(double[] logits, long token) {
        double max = Double.NEGATIVE_INFINITY;
        for (double l : logits) {
            max = Math.max(max, l);
        }
        double sum = 0;
        for (double l : logits) {
            sum += Math.exp(l - max);
        }
        return logits[(int) token] - max - Math.log(sum);
    }

    @Test
    void logLikelihoodAndPerplexityMatchTheReference() {
        long[] ids = {3, 17, 42, 8, 8, 1, 49, 0, 25, 11};
        double[][] logits = reference.logits(ids);
        double expected = 0;
        for (int t = 0; t + 1 < ids.length; t++) {
            expected += logProb(logits[t], ids[t + 1]);
        }
        Gpt2Inference.Score s = inference.score(ids);
        assertThat(s.tokens()).isEqualTo(9);
        assertThat(s.logLikelihood()).isCloseTo(expected, Offset.offset(1e-3));
        assertThat(s.perplexity()).isCloseTo(Math.exp(-expected / 9), Offset.offset(1e-3));

        // Only the labelled tokens count: the prompt's are -100.
        long[] labels = ids.clone();
        java.util.Arrays.fill(labels, 0, 6, -100);
        double answer = 0;
        for (int t = 5; t + 1 < ids.length; t++) {
            answer += logProb(logits[t], ids[t + 1]);
        }
        Gpt2Inference.Score prompted = inference.score(new LmExample(ids, labels));
        assertThat(prompted.tokens()).isEqualTo(4);
        assertThat(prompted.logLikelihood()).isCloseTo(answer, Offset.offset(1e-3));

        Gpt2Inference.Score corpus =
                inference.score(List.of(LmExample.of(ids), new LmExample(ids, labels)));
        assertThat(corpus.tokens()).isEqualTo(13);
        assertThat(corpus.meanLoss()).isCloseTo(-(expected + answer) / 13, Offset.offset(1e-4));
    }

    @Test
    void tokenStatsCountTheScoredPositionsTheReferenceArgmaxGetsRight() {
        long[] ids = {3, 17, 42, 8, 8, 1, 49, 0, 25, 11};
        long[] labels = {-100, -100, -100, 8, 8, 1, 49, 0, 25, 11};
        double[][] logits = reference.logits(ids);
        long correct = 0;
        double ll = 0;
        for (int t = 3; t < ids.length; t++) {
            int best = 0;
            for (int v = 1; v < logits[t - 1].length; v++) {
                if (logits[t - 1][v] > logits[t - 1][best]) {
                    best = v;
                }
            }
            correct += best == labels[t] ? 1 : 0;
            ll += logProb(logits[t - 1], labels[t]);
        }
        // Teacher forcing with the model's own greedy continuation: every position is right.
        long[] greedy = reference.greedy(new long[] {5, 9}, 6);
        long[] generatedOnly = greedy.clone();
        generatedOnly[0] = -100;
        generatedOnly[1] = -100;
        Gpt2Inference.TokenStats own = inference.tokenStats(new LmExample(greedy, generatedOnly));
        assertThat(own.correct()).isEqualTo(own.tokens()).isEqualTo(6);

        Gpt2Inference.TokenStats stats = inference.tokenStats(new LmExample(ids, labels));
        assertThat(stats.tokens()).isEqualTo(7);
        assertThat(stats.correct()).isEqualTo(correct);
        assertThat(stats.logLikelihood()).isCloseTo(ll, Offset.offset(1e-3));
    }

    @Test
    void greedyUntilStopsAfterTheStopToken() {
        long[] prompt = {5, 9};
        long[] chain = reference.greedy(prompt, 8);
        long stop = chain[4];
        int first = 2;
        while (chain[first] != stop) {
            first++;
        }
        long[] expected = java.util.Arrays.copyOfRange(chain, 2, first + 1);
        assertThat(inference.greedyUntil(prompt, 8, stop)).containsExactly(expected);
        assertThat(inference.greedyUntil(prompt, 3, -1))
                .containsExactly(java.util.Arrays.copyOfRange(chain, 2, 5));
        // 16 positions: a 14-token prompt leaves room for 2.
        assertThat(inference.greedyUntil(new long[14], 8, -1)).hasSize(2);
    }

    @Test
    void greedyGenerationFollowsTheReferenceArgmaxChain() {
        for (long[] prompt : new long[][] {{1}, {3, 17, 42}, {49, 2, 7, 7, 30}}) {
            long[] expected = reference.greedy(prompt, 8);
            System.out.println("greedy " + java.util.Arrays.toString(expected));
            assertThat(inference.greedy(prompt, 8)).containsExactly(expected);
        }
        assertThat(inference.greedy(new long[] {4, 5}, 0)).containsExactly(4, 5);
        assertThatThrownBy(() -> inference.greedy(new long[] {1, 2}, 15))
                .hasMessageContaining("16 positions");
        assertThatThrownBy(() -> inference.greedy(new long[0], 3))
                .isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void samplingIsSeededAndFollowsTheTemperature() {
        long[] prompt = {3, 17, 42};
        long[] a = inference.sample(prompt, 10, 1.0, 7);
        assertThat(inference.sample(prompt, 10, 1.0, 7)).containsExactly(a);
        assertThat(a).startsWith(prompt).hasSize(13);
        Set<List<Long>> outputs = new HashSet<>();
        for (long seed = 0; seed < 5; seed++) {
            outputs.add(
                    java.util.Arrays.stream(inference.sample(prompt, 10, 1.0, seed))
                            .boxed()
                            .toList());
        }
        assertThat(outputs).hasSizeGreaterThan(1);
        // A temperature near zero is greedy.
        assertThat(inference.sample(prompt, 6, 1e-4, 3))
                .containsExactly(inference.greedy(prompt, 6));

        // The first token's frequencies follow softmax(logits / T).
        float[] next = inference.nextTokenLogits(prompt);
        double[] refNext = reference.logits(prompt)[2];
        for (int v = 0; v < next.length; v++) {
            assertThat((double) next[v]).isCloseTo(refNext[v], Offset.offset(1e-4));
        }
        double temperature = 0.7;
        int top = Gpt2Inference.argmax(next);
        double z = 0;
        for (float l : next) {
            z += Math.exp((l - next[top]) / temperature);
        }
        double pTop = 1 / z;
        Random random = new Random(1);
        int hits = 0;
        int draws = 20_000;
        for (int i = 0; i < draws; i++) {
            if (Gpt2Inference.draw(next, temperature, random) == top) {
                hits++;
            }
        }
        assertThat((double) hits / draws).isCloseTo(pTop, Offset.offset(0.02));
        assertThatThrownBy(() -> inference.sample(prompt, 2, 0, 1))
                .hasMessageContaining("temperature");
    }
}
