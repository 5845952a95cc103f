package io.tuneline.training.worker;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

class StartupMarksTest {
    /** The pattern bench/overhead.py reads the line with. */
    private static final Pattern READ_BY_BENCH =
            Pattern.compile("worker start-up of (\\S+): jvm start (\\S+); (.*)");

    @Test
    void theLineCarriesTheJvmStartAndEveryMilestoneInOrder() {
        Map<String, Long> marks = new LinkedHashMap<>();
        marks.put("main", 412L);
        marks.put("libtorch loaded", 2_050L);
        marks.put("first step", 6_175L);

        String line = StartupMarks.line("job-1", 1_764_878_400_000L, marks);

        var m = READ_BY_BENCH.matcher(line);
        assertThat(m.matches()).as(line).isTrue();
        assertThat(m.group(1)).isEqualTo("job-1");
        assertThat(m.group(2)).isEqualTo("2025-12-04T20:00:00Z");
        assertThat(m.group(3))
                .isEqualTo("main +0.41 s, libtorch loaded +2.05 s, first step +6.18 s");
    }
}
