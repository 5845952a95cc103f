package io.tuneline.preprocessing.config;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import io.tuneline.preprocessing.prepare.NearDuplicates;

/** {@code tuneline.preprocessing.*}. */
@ConfigMapping(prefix = "tuneline.preprocessing")
public interface PreprocessingConfig {
    NearDuplicateConfig nearDuplicates();

    /** MinHash near-duplicate removal; see {@link NearDuplicates.Settings} for the numbers. */
    interface NearDuplicateConfig {
        @WithDefault("true")
        boolean enabled();

        @WithDefault("0.85")
        double threshold();

        @WithDefault("5")
        int shingleSize();

        @WithDefault("128")
        int permutations();

        @WithDefault("16")
        int bands();

        /** The settings; a disabled filter gets a threshold no estimate can reach. */
        default NearDuplicates.Settings settings() {
            return new NearDuplicates.Settings(
                    permutations(), bands(), shingleSize(), enabled() ? threshold() : 2.0);
        }
    }
}
