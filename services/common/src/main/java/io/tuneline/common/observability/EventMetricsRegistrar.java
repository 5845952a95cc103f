package io.tuneline.common.observability;

import com.google.protobuf.Message;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.StartupEvent;
import io.tuneline.common.event.EventTypes;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Singleton;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.eclipse.microprofile.config.Config;

/**
 * Creates the event counters of every Kafka channel at start-up, at zero. A counter that first
 * appears already incremented hides its first events from {@code increase()} and {@code rate()}, so
 * dashboards and alerts would miss the first job, failure or dead letter of a service's life.
 */
@Singleton
public class EventMetricsRegistrar {
    private static final Pattern CHANNEL_TOPIC =
            Pattern.compile("mp\\.messaging\\.(incoming|outgoing)\\.([^.]+)\\.topics?");
    private static final List<String> OUTCOMES =
            List.of(
                    MetricNames.OUTCOME_PROCESSED,
                    MetricNames.OUTCOME_DUPLICATE,
                    MetricNames.OUTCOME_INVALID,
                    MetricNames.OUTCOME_FAILED);

    void onStart(@Observes StartupEvent event, Config config, MeterRegistry registry) {
        for (String property : config.getPropertyNames()) {
            Matcher m = CHANNEL_TOPIC.matcher(property);
            if (!m.matches()) {
                continue;
            }
            boolean incoming = m.group(1).equals("incoming");
            for (String topic : config.getValue(property, String.class).split(",")) {
                register(registry, topic.trim(), incoming);
            }
        }
    }

    private static void register(MeterRegistry registry, String topic, boolean incoming) {
        for (Message type : EventTypes.forTopic(topic)) {
            String typeName = EventTypes.typeOf(type);
            if (incoming) {
                for (String outcome : OUTCOMES) {
                    registry.counter(
                            MetricNames.EVENTS_CONSUMED,
                            MetricNames.TAG_TOPIC,
                            topic,
                            MetricNames.TAG_TYPE,
                            typeName,
                            MetricNames.TAG_OUTCOME,
                            outcome);
                }
            } else {
                registry.counter(MetricNames.EVENTS_PUBLISHED, MetricNames.TAG_TYPE, typeName);
            }
        }
    }
}
