package io.tuneline.common.topic;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class TopicsTest {

    @Test
    void everyEventTopicFollowsTheNamingRuleAndHasADeadLetterTwin() {
        assertThat(Topics.events())
                .allMatch(
                        t -> t.matches("finetune\\.[a-z]+\\.[a-z]+"), "finetune.<entity>.<event>");
        assertThat(Topics.all()).hasSize(2 * Topics.events().size()).doesNotHaveDuplicates();
        assertThat(Topics.all()).contains("finetune.jobs.requested.dlq");
    }
}
