package io.tuneline.preprocessing.prepare;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tuneline.proto.v1.LengthStats;
import java.util.Arrays;

/**
 * A distribution of token lengths kept as a histogram (one counter per length), so exact
 * percentiles of millions of examples cost a few kilobytes.
 */
final class TokenLengths {
    private long[] counts = new long[512];
    private long n;
    private long sum;
    private int min = Integer.MAX_VALUE;
    private int max;

    void add(int length) {
        if (length >= counts.length) {
            counts = Arrays.copyOf(counts, Math.max(length + 1, counts.length * 2));
        }
        counts[length]++;
        n++;
        sum += length;
        min = Math.min(min, length);
        max = Math.max(max, length);
    }

    long count() {
        return n;
    }

    /**
     * Nearest-rank percentile: the smallest length with at least {@code p} of examples at most it.
     */
    int percentile(double p) {
        if (n == 0) {
            return 0;
        }
        long rank = (long) Math.ceil(p * n);
        long seen = 0;
        for (int length = 0; length < counts.length; length++) {
            seen += counts[length];
            if (seen >= Math.max(1, rank)) {
                return length;
            }
        }
        return max;
    }

    double mean() {
        return n == 0 ? 0 : (double) sum / n;
    }

    LengthStats proto() {
        return LengthStats.newBuilder()
                .setMin(n == 0 ? 0 : min)
                .setMax(max)
                .setMean(mean())
                .setP50(percentile(0.5))
                .setP95(percentile(0.95))
                .build();
    }

    ObjectNode json() {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.put("examples", n);
        o.put("min", n == 0 ? 0 : min);
        o.put("mean", Math.round(mean() * 100) / 100.0);
        o.put("p50", percentile(0.5));
        o.put("p90", percentile(0.9));
        o.put("p95", percentile(0.95));
        o.put("p99", percentile(0.99));
        o.put("max", max);
        return o;
    }
}
