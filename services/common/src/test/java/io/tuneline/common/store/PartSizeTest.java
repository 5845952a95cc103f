package io.tuneline.common.store;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** A file's parts: the configured size, unless S3's 10,000 parts would not hold the file. */
class PartSizeTest {
    private static final long MIB = 1024 * 1024;

    @Test
    void theConfiguredSizeWhileTenThousandPartsHoldTheFile() {
        assertThat(ArtifactStore.partSize(16 * MIB, 76_000_000)).isEqualTo(16 * MIB);
        assertThat(ArtifactStore.partSize(16 * MIB, 10_000 * 16 * MIB)).isEqualTo(16 * MIB);
    }

    @Test
    void aFileBeyondTenThousandPartsGetsTheLeastPartThatFits() {
        long size = 10_000 * 16 * MIB + 1;
        long part = ArtifactStore.partSize(16 * MIB, size);
        assertThat(part).isGreaterThan(16 * MIB);
        assertThat((size + part - 1) / part).isLessThanOrEqualTo(10_000);
        assertThat((size + part - 2) / (part - 1)).isGreaterThan(10_000);
    }
}
