package io.tuneline.common.job;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import org.junit.jupiter.api.Test;

class ProgressThrottleTest {
    private long now;

    @Test
    void publishesEveryStepOnceTheIntervalHasPassedAndNever100() {
        ProgressThrottle t = new ProgressThrottle(10, Duration.ofSeconds(2), () -> now);
        now = Duration.ofMillis(500).toNanos();
        assertThat(t.due(30)).as("too soon after the start").isFalse();
        now = Duration.ofSeconds(3).toNanos();
        assertThat(t.due(30)).isTrue();
        assertThat(t.due(35)).as("less than a step more").isFalse();
        now = Duration.ofSeconds(4).toNanos();
        assertThat(t.due(45)).as("a step more but too soon").isFalse();
        now = Duration.ofSeconds(6).toNanos();
        assertThat(t.due(45)).isTrue();
        now = Duration.ofSeconds(60).toNanos();
        assertThat(t.due(100)).as("done is the next state, not progress").isFalse();
    }
}
