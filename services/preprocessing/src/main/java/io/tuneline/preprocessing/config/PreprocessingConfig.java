package io.tuneline.preprocessing.config;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import io.tuneline.preprocessing.prepare.DatasetPreparation;
import io.tuneline.preprocessing.prepare.NearDuplicates;
import java.time.Duration;

/** {@code tuneline.preprocessing.*}. */
@ConfigMapping(prefix = "tuneline.preprocessing")
public interface PreprocessingConfig {
    NearDuplicateConfig nearDuplicates();

    /** Pack causal LM training examples into blocks of max_seq_length tokens. */
    @WithDefault("true")
    boolean packing();

    /**
     * Records per batch: parsed and worked on by one worker thread, and one call into the
     * tokenizer, which spreads a batch over every core too.
     */
    @WithDefault("256")
    int tokenizerBatch();

    /**
     * Least time between two PREPROCESSING progress events of one job (each also needs 10 more
     * percent done), so a big dataset reports progress without flooding the status topic.
     */
    @WithDefault("PT2S")
    Duration progressInterval();

    default DatasetPreparation.Settings settings() {
        return new DatasetPreparation.Settings(
                nearDuplicates().settings(), packing(), tokenizerBatch());
    }

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
