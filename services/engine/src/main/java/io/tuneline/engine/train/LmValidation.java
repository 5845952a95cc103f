package io.tuneline.engine.train;

import java.util.List;

/**
 * How a causal LM run measures itself on held-out examples while it trains (as {@link Validation}
 * for classifiers): the mean next-token loss over every scored token of the split.
 *
 * @param examples the validation split; empty for no validation
 * @param everySteps evaluate after every this many steps (and after the last); 0 for once per epoch
 * @param patience stop after this many evaluations in a row without a lower validation loss; 0
 *     never stops early
 */
public record LmValidation(List<LmExample> examples, long everySteps, int patience) {
    public LmValidation {
        examples = List.copyOf(examples);
        if (everySteps < 0 || patience < 0) {
            throw new IllegalArgumentException(
                    "eval_every_steps and early_stopping_patience must not be negative");
        }
    }

    public static LmValidation none() {
        return new LmValidation(List.of(), 0, 0);
    }

    public boolean enabled() {
        return !examples.isEmpty();
    }
}
