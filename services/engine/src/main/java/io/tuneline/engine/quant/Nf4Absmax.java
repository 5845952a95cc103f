package io.tuneline.engine.quant;

/**
 * The per-block scales of an NF4 weight: plain float32 values, or (double quantization,
 * bitsandbytes' {@code compress_statistics}) 8-bit codes with a nested absmax per 256 blocks and
 * one offset.
 */
public sealed interface Nf4Absmax {
    /** Number of 4-bit blocks these scales cover. */
    int blocks();

    /** The scales as float32, computed as bitsandbytes' {@code dequantize_4bit} computes them. */
    float[] values();

    /** Bytes these statistics take in memory (the shared code maps are not counted). */
    long residentBytes();

    /** bitsandbytes' {@code QuantState.absmax} without double quantization: fp32 per block. */
    record Plain(float[] absmax) implements Nf4Absmax {
        @Override
        public int blocks() {
            return absmax.length;
        }

        @Override
        public float[] values() {
            return absmax.clone();
        }

        @Override
        public long residentBytes() {
            return 4L * absmax.length;
        }
    }

    /**
     * Double-quantized scales ({@code functional.py quantize_4bit} with {@code
     * compress_statistics=True}): {@code codes} is {@code QuantState.absmax} (uint8), {@code
     * nestedAbsmax} and {@code nestedMap} are {@code state2.absmax} and {@code state2.code}, {@code
     * offset} is {@code QuantState.offset}.
     */
    record DoubleQuantized(
            byte[] codes,
            float[] nestedAbsmax,
            float offset,
            int nestedBlocksize,
            float[] nestedMap)
            implements Nf4Absmax {
        public DoubleQuantized {
            if (nestedMap.length != 256) {
                throw new IllegalArgumentException(
                        "the nested quant map has " + nestedMap.length + " values, not 256");
            }
            long expected = ((long) codes.length + nestedBlocksize - 1) / nestedBlocksize;
            if (nestedAbsmax.length != expected) {
                throw new IllegalArgumentException(
                        codes.length
                                + " absmax codes in blocks of "
                                + nestedBlocksize
                                + " need "
                                + expected
                                + " nested absmax values, not "
                                + nestedAbsmax.length);
            }
        }

        /**
         * {@code functional.py quantize_4bit}, {@code compress_statistics=True}: {@code offset =
         * _absmax.mean()}, {@code quantize_blockwise(_absmax - offset, blocksize=256)} with the
         * default (signed dynamic) map. The mean is taken in double and rounded once to float32;
         * PyTorch's float32 reduction may differ from it in the last bit.
         */
        static DoubleQuantized of(float[] absmax) {
            double sum = 0;
            for (float a : absmax) {
                sum += a;
            }
            float offset = (float) (sum / absmax.length);
            float[] centred = new float[absmax.length];
            for (int i = 0; i < absmax.length; i++) {
                centred[i] = absmax[i] - offset;
            }
            Blockwise8Bit.Quantized q =
                    Blockwise8Bit.quantize(
                            centred, Blockwise8Bit.DYNAMIC_MAP, Nf4.NESTED_BLOCKSIZE);
            return new DoubleQuantized(
                    q.codes(),
                    q.absmax(),
                    offset,
                    Nf4.NESTED_BLOCKSIZE,
                    Blockwise8Bit.DYNAMIC_MAP.clone());
        }

        @Override
        public int blocks() {
            return codes.length;
        }

        /**
         * {@code functional.py dequantize_4bit}: {@code absmax = dequantize_blockwise(qabsmax,
         * state2)} (code[q] * nested absmax, {@code kernels.cu kDequantizeBlockwise}) then {@code
         * absmax += offset}, each a float32 operation.
         */
        @Override
        public float[] values() {
            float[] out = new float[codes.length];
            for (int i = 0; i < out.length; i++) {
                float v = nestedMap[codes[i] & 0xFF] * nestedAbsmax[i / nestedBlocksize];
                out[i] = v + offset;
            }
            return out;
        }

        @Override
        public long residentBytes() {
            return codes.length + 4L * nestedAbsmax.length + 4L;
        }
    }
}
