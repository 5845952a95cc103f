package io.tuneline.engine.train;

import java.util.List;

/**
 * How a run measures itself on held-out data while it trains.
 *
 * @param examples the validation split, in the task's own example type; empty for no validation
 * @param everySteps evaluate after every this many steps (and after the last); 0 for once per epoch
 * @param patience stop after this many evaluations in a row without a lower validation loss; 0
 *     never stops early
 */
public record Validation<E>(List<E> examples, long everySteps, int patience) {
    /** An improvement smaller than this is noise, not progress. */
    public static final double MIN_IMPROVEMENT = 1e-4;

    public Validation {
        examples = List.copyOf(examples);
        if (everySteps < 0 || patience < 0) {
            throw new IllegalArgumentException(
                    "eval_every_steps and early_stopping_patience must not be negative");
        }
    }

    public static <E> Validation<E> none() {
        return new Validation<>(List.of(), 0, 0);
    }

    public boolean enabled() {
        return !examples.isEmpty();
    }
}
