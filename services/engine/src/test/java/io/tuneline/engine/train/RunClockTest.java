package io.tuneline.engine.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import org.junit.jupiter.api.Test;

/**
 * The time left a run reports in its progress events: the plain pace for the first 10 steps, then
 * the reconciled terms (steps without the first, evaluations and checkpoints at their own cost).
 */
class RunClockTest {

    @Test
    void beforeTenStepsTheMeanOfEverythingSoFarSetsThePace() {
        RunClock clock = new RunClock();
        clock.stepTook(5.0); // a slow first step
        clock.stepTook(1.0);
        clock.evaluationTook(3.0);
        // (5 + 1 + 3) / 2 steps = 4.5 s a step, 90 steps left.
        assertThat(clock.secondsLeft(90, 9, 0, 100)).isCloseTo(405.0, within(1e-9));
    }

    @Test
    void afterTenStepsTheFirstStepIsLeftOutAndEvaluationsAndCheckpointsCountApart() {
        RunClock clock = new RunClock();
        clock.stepTook(20.0);
        for (int i = 0; i < 9; i++) {
            clock.stepTook(1.0 + i % 3); // 1, 2, 3 s: a mean of 2 s over steps 2-10
        }
        // Not yet evaluated nor checkpointed: an evaluation of 30 steps' worth of examples is a
        // forward pass, a third of a step each (20 s); a checkpoint costs nothing yet.
        assertThat(clock.secondsLeft(90, 2, 3, 30)).isCloseTo(90 * 2.0 + 2 * 20.0, within(1e-9));
        clock.evaluationTook(12.0);
        clock.evaluationTook(8.0);
        clock.checkpointTook(4.0);
        // 90 steps at 2 s, 2 evaluations at their mean 10 s, 3 checkpoints at 4 s.
        assertThat(clock.secondsLeft(90, 2, 3, 30)).isCloseTo(180 + 20 + 12, within(1e-9));
        assertThat(clock.secondsLeft(0, 0, 0, 30)).isZero();
    }

    @Test
    void theEvaluationsAndCheckpointsDueAreTheLoopsOwn() {
        // Counted against a plain walk over the steps with the loop's rules: evaluate every
        // `every` steps and after the last; checkpoint every `every` steps but not after the last.
        for (long total = 1; total <= 40; total++) {
            for (long every = 1; every <= 12; every++) {
                for (long step = 0; step <= total; step++) {
                    long evaluations = 0;
                    long checkpoints = 0;
                    for (long s = step + 1; s <= total; s++) {
                        if (s % every == 0 || s == total) {
                            evaluations++;
                        }
                        if (s % every == 0 && s < total) {
                            checkpoints++;
                        }
                    }
                    assertThat(RunClock.evaluationsLeft(step, total, every))
                            .as("evaluations after %d of %d every %d", step, total, every)
                            .isEqualTo(evaluations);
                    assertThat(RunClock.checkpointsLeft(step, total, every))
                            .as("checkpoints after %d of %d every %d", step, total, every)
                            .isEqualTo(checkpoints);
                }
            }
        }
        assertThat(RunClock.checkpointsLeft(3, 100, 0)).isZero();
    }
}
