package io.tuneline.engine.model.gpt2;

import java.util.Map;

/**
 * GPT-2's forward pass in plain Java loops over the Hugging Face checkpoint tensors (Conv1D weights
 * (in, out), {@code y = x W + b}), written from the paper and {@code modeling_gpt2.py}, sharing no
 * code with the DJL model: the independent reference the model's logits are checked against.
 */
final class Gpt2Reference {
    private final Gpt2Config c;
    private final Map<String, float[]> w;

    /**
     * @param weights tensors by their name without the {@code transformer.} prefix
     */
    Gpt2Reference(Gpt2Config config, Map<String, float[]> weights) {
        this.c = config;
        this.w = weights;
    }

    /** Logits (T, V) for one sequence, all tokens real. */
    double[][] logits(long[] ids) {
        long[] mask = new long[ids.length];
        java.util.Arrays.fill(mask, 1);
        return logits(ids, mask);
    }

    /** Logits (T, V); {@code mask[j] == 0} hides key j from every query. */
    double[][] logits(long[] ids, long[] mask) {
        int t = ids.length;
        int h = c.hiddenSize();
        double[][] x = new double[t][h];
        float[] wte = w.get("wte.weight");
        float[] wpe = w.get("wpe.weight");
        for (int i = 0; i < t; i++) {
            for (int k = 0; k < h; k++) {
                x[i][k] = wte[(int) ids[i] * h + k] + wpe[i * h + k];
            }
        }
        for (int l = 0; l < c.layers(); l++) {
            String p = "h." + l + ".";
            double[][] a = layerNorm(x, p + "ln_1");
            double[][] qkv = conv1d(a, p + "attn.c_attn", h, 3 * h);
            double[][] ctx = attention(qkv, mask);
            double[][] proj = conv1d(ctx, p + "attn.c_proj", h, h);
            for (int i = 0; i < t; i++) {
                for (int k = 0; k < h; k++) {
                    x[i][k] += proj[i][k];
                }
            }
            double[][] m = conv1d(layerNorm(x, p + "ln_2"), p + "mlp.c_fc", h, c.innerSize());
            for (double[] row : m) {
                for (int k = 0; k < row.length; k++) {
                    double v = row[k];
                    row[k] =
                            0.5
                                    * v
                                    * (1
                                            + Math.tanh(
                                                    Math.sqrt(2 / Math.PI)
                                                            * (v + 0.044715 * v * v * v)));
                }
            }
            double[][] down = conv1d(m, p + "mlp.c_proj", c.innerSize(), h);
            for (int i = 0; i < t; i++) {
                for (int k = 0; k < h; k++) {
                    x[i][k] += down[i][k];
                }
            }
        }
        double[][] f = layerNorm(x, "ln_f");
        double[][] out = new double[t][c.vocabSize()];
        for (int i = 0; i < t; i++) {
            for (int v = 0; v < c.vocabSize(); v++) {
                double s = 0;
                for (int k = 0; k < h; k++) {
                    s += f[i][k] * wte[v * h + k];
                }
                out[i][v] = s;
            }
        }
        return out;
    }

    private double[][] attention(double[][] qkv, long[] mask) {
        int t = qkv.length;
        int h = c.hiddenSize();
        int d = c.headSize();
        double[][] ctx = new double[t][h];
        for (int head = 0; head < c.heads(); head++) {
            int qo = head * d;
            int ko = h + head * d;
            int vo = 2 * h + head * d;
            for (int i = 0; i < t; i++) {
                double[] score = new double[t];
                double max = Double.NEGATIVE_INFINITY;
                boolean any = false;
                for (int j = 0; j <= i; j++) {
                    if (mask[j] == 0) {
                        continue;
                    }
                    double s = 0;
                    for (int k = 0; k < d; k++) {
                        s += qkv[i][qo + k] * qkv[j][ko + k];
                    }
                    score[j] = s / Math.sqrt(d);
                    max = Math.max(max, score[j]);
                    any = true;
                }
                if (!any) {
                    continue; // a padded query with nothing to see; its output is not checked
                }
                double sum = 0;
                for (int j = 0; j <= i; j++) {
                    if (mask[j] != 0) {
                        score[j] = Math.exp(score[j] - max);
                        sum += score[j];
                    }
                }
                for (int j = 0; j <= i; j++) {
                    if (mask[j] != 0) {
                        for (int k = 0; k < d; k++) {
                            ctx[i][qo + k] += score[j] / sum * qkv[j][vo + k];
                        }
                    }
                }
            }
        }
        return ctx;
    }

    /** {@code x W + b} with W stored (in, out), as Conv1D stores it. */
    private double[][] conv1d(double[][] x, String name, int in, int out) {
        float[] weight = w.get(name + ".weight");
        float[] bias = w.get(name + ".bias");
        double[][] y = new double[x.length][out];
        for (int i = 0; i < x.length; i++) {
            for (int o = 0; o < out; o++) {
                double s = bias[o];
                for (int k = 0; k < in; k++) {
                    s += x[i][k] * weight[k * out + o];
                }
                y[i][o] = s;
            }
        }
        return y;
    }

    private double[][] layerNorm(double[][] x, String name) {
        float[] g = w.get(name + ".weight");
        float[] b = w.get(name + ".bias");
        double[][] y = new double[x.length][];
        for (int i = 0; i < x.length; i++) {
            int n = x[i].length;
            double mean = 0;
            for (double v : x[i]) {
                mean += v;
            }
            mean /= n;
            double var = 0;
            for (double v : x[i]) {
                var += (v - mean) * (v - mean);
            }
            var /= n;
            y[i] = new double[n];
            for (int k = 0; k < n; k++) {
                y[i][k] = (x[i][k] - mean) / Math.sqrt(var + c.layerNormEps()) * g[k] + b[k];
            }
        }
        return y;
    }

    /** Greedy decoding: append the argmax of the last position's logits, {@code n} times. */
    long[] greedy(long[] prompt, int n) {
        long[] seq = java.util.Arrays.copyOf(prompt, prompt.length + n);
        for (int s = 0; s < n; s++) {
            long[] prefix = java.util.Arrays.copyOf(seq, prompt.length + s);
            double[] last = logits(prefix)[prefix.length - 1];
            int best = 0;
            for (int v = 1; v < last.length; v++) {
                if (last[v] > last[best]) {
                    best = v;
                }
            }
            seq[prompt.length + s] = best;
        }
        return seq;
    }
}
