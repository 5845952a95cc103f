package io.tuneline.engine.io.safetensors;

/** Element types of the safetensors format, with their sizes in bytes. */
public enum Dtype {
    F64(8),
    F32(4),
    F16(2),
    BF16(2),
    I64(8),
    I32(4),
    I16(2),
    I8(1),
    U8(1),
    BOOL(1);

    private final int bytes;

    Dtype(int bytes) {
        this.bytes = bytes;
    }

    public int bytes() {
        return bytes;
    }

    public boolean floating() {
        return this == F64 || this == F32 || this == F16 || this == BF16;
    }
}
