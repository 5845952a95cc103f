package io.tuneline.engine.train;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.data.Offset.offset;

import org.junit.jupiter.api.Test;

/** Hand-computed values of each schedule: peak 1e-3, 10 warm-up steps of 110. */
class LearningRateScheduleTest {
    private static final double PEAK = 1e-3;

    @Test
    void everyScheduleWarmsUpLinearlyFromZero() {
        for (var shape : LearningRateSchedule.Shape.values()) {
            var s = LearningRateSchedule.of(shape, PEAK, 10, 110);
            assertThat(s.at(1)).as(shape.name()).isCloseTo(1e-4, offset(1e-12));
            assertThat(s.at(5)).as(shape.name()).isCloseTo(5e-4, offset(1e-12));
            assertThat(s.at(10)).as(shape.name()).isCloseTo(PEAK, offset(1e-12));
        }
    }

    @Test
    void linearDecaysToZeroAtTheLastStep() {
        var s = LearningRateSchedule.of(LearningRateSchedule.Shape.LINEAR, PEAK, 10, 110);
        assertThat(s.at(60)).isCloseTo(5e-4, offset(1e-12)); // half-way through the decay
        assertThat(s.at(110)).isZero();
    }

    @Test
    void cosineFollowsHalfACosineToZero() {
        var s = LearningRateSchedule.of(LearningRateSchedule.Shape.COSINE, PEAK, 10, 110);
        assertThat(s.at(35)).isCloseTo(PEAK * 0.5 * (1 + Math.cos(Math.PI / 4)), offset(1e-12));
        assertThat(s.at(60)).isCloseTo(5e-4, offset(1e-12));
        assertThat(s.at(110)).isCloseTo(0, offset(1e-12));
    }

    @Test
    void constantStaysAtThePeakAfterWarmUp() {
        var s = LearningRateSchedule.of(LearningRateSchedule.Shape.CONSTANT, PEAK, 10, 110);
        assertThat(s.at(11)).isEqualTo(PEAK);
        assertThat(s.at(110)).isEqualTo(PEAK);
    }

    @Test
    void withoutWarmUpTheFirstStepUsesThePeak() {
        var s = LearningRateSchedule.of(LearningRateSchedule.Shape.LINEAR, PEAK, 0, 100);
        assertThat(s.at(1)).isCloseTo(PEAK * 99 / 100, offset(1e-12));
    }
}
