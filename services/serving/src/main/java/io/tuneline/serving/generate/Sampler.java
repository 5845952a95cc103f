package io.tuneline.serving.generate;

import io.tuneline.engine.model.CausalLmInference;
import java.util.Arrays;
import java.util.Random;

/**
 * How the next token is picked: the argmax at temperature 0 (greedy, the engine's offline
 * decoding), else a draw from {@code softmax(logits / temperature)} restricted to the smallest set
 * of most likely tokens whose probabilities sum to at least {@code top_p} (nucleus sampling,
 * Holtzman et al. 2020), as OpenAI's parameters are documented.
 */
public final class Sampler implements CausalLmInference.TokenChooser {
    private final double temperature;
    private final double topP;
    private final Random random;

    public Sampler(double temperature, double topP, long seed) {
        this.temperature = temperature;
        this.topP = topP;
        this.random = new Random(seed);
    }

    public boolean greedy() {
        return temperature == 0;
    }

    @Override
    public long choose(float[] logits) {
        if (greedy()) {
            return CausalLmInference.argmax(logits);
        }
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
        if (topP >= 1) {
            double u = random.nextDouble() * sum;
            for (int v = 0; v < p.length; v++) {
                u -= p[v];
                if (u < 0) {
                    return v;
                }
            }
            return CausalLmInference.argmax(logits);
        }
        Integer[] order = new Integer[p.length];
        for (int v = 0; v < order.length; v++) {
            order[v] = v;
        }
        Arrays.sort(order, (a, b) -> Double.compare(p[b], p[a]));
        double kept = 0;
        int n = 0;
        while (n < order.length && (n == 0 || kept < topP * sum)) {
            kept += p[order[n++]];
        }
        double u = random.nextDouble() * kept;
        for (int i = 0; i < n; i++) {
            u -= p[order[i]];
            if (u < 0) {
                return order[i];
            }
        }
        return order[n - 1];
    }
}
