package io.tuneline.engine.io.safetensors;

/**
 * One tensor's entry in a safetensors header.
 *
 * @param begin offset of the first byte in the data section
 * @param end offset after the last byte
 */
public record TensorInfo(String name, Dtype dtype, long[] shape, long begin, long end) {
    public long elements() {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }
}
